"""Files that appear whole or not at all: every file cocotune writes goes through here.

A file is written to a temporary name in the same directory (a rename is atomic only within
one file system), flushed to disk and renamed over the target, so a reader -- or a run killed
half-way and resumed -- sees the old version or the new one, never half of one. The writer
creates the temporary file itself, so it gets the permissions a plain ``open`` would give
(0666 minus the umask), not ``mkstemp``'s private 0600: generated packages stay readable to
the rest of a team.

This module imports nothing from cocotune, so the compiler (convert, gen), the runtime and the
generated scripts can all use it.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = [
    "atomic_save",
    "import_generated",
    "save_weights_atomic",
    "write_bytes_atomic",
    "write_text_atomic",
]


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable (the directory entry), where the platform allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def current_umask() -> int:
    """The process umask (read without changing it where /proc allows; else set and restore)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_save(path: str | os.PathLike[str], writer_fn: Callable[[Path], Any]) -> Path:
    """Write ``path`` through ``writer_fn(temp_path)`` and rename it into place.

    The temporary name *ends with* the target's name, so suffix-checking writers such as
    Keras' ``save_weights`` (which insists on ``.weights.h5``) accept it. Missing parent
    directories are created. If ``writer_fn`` raises, the temporary file is removed and
    ``path`` is left as it was.

    Example:
        >>> atomic_save(out / "best.weights.h5", model.save_weights)
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # reserve a unique name, then let the writer create the file (some writers refuse to
    # overwrite, and a file the writer creates gets the umask's permissions)
    fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix="-" + target.name, dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        tmp.unlink()
        writer_fn(tmp)
        if not tmp.exists():
            raise FileNotFoundError(f"{writer_fn!r} did not write {tmp}")
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)
    return target


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Replace ``path`` with ``text`` (UTF-8, newlines as given), atomically."""
    return atomic_save(path, lambda tmp: tmp.write_bytes(text.encode("utf-8")))


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Replace ``path`` with ``data``, atomically."""
    return atomic_save(path, lambda tmp: tmp.write_bytes(data))


def save_weights_atomic(model: Any, path: str | os.PathLike[str]) -> Path:
    """``model.save_weights(path)``, atomically (the path must end in ``.weights.h5``)."""
    return atomic_save(path, lambda tmp: model.save_weights(str(tmp)))


def import_generated(path: str | os.PathLike[str]) -> ModuleType:
    """Import a generated model.py as a fresh module (exactly what a user's import gets).

    Each call gets its own module name, so two packages' model.py files never share one
    ``sys.modules`` entry.
    """
    name = f"cocotune_generated_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
