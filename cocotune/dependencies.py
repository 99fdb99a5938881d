"""Dependencies that the package metadata cannot require, checked where they are first needed.

TensorFlow comes in two distributions with the same import name: ``tensorflow`` (the general
build, GPU-capable on Linux) and ``tensorflow-cpu``. Requiring either one in the metadata
would make pip install it next to (or over) the other one in an environment that already
has TensorFlow, so cocotune names neither: the user picks one (``cocotune[cpu]``,
``cocotune[gpu]``, or an existing installation), and the first command that needs TensorFlow
checks here that one is importable and from the series cocotune is tested with. Other
optional pieces (MPI, plots) are extras; :func:`missing_extra` words the message for them.
"""

from __future__ import annotations

import os
import re
from types import ModuleType

from cocotune.errors import CocotuneError

# The TensorFlow releases cocotune is tested with: [lowest, highest) as (major, minor).
# Keep in step with the ``cpu``/``gpu`` extras in setup.cfg and with constraints.txt.
TENSORFLOW_TESTED = ((2, 21), (2, 22))
TENSORFLOW_TESTED_TEXT = "2.21.x"
# Set to 1 to use a TensorFlow outside the tested series anyway (at your own risk).
ALLOW_UNTESTED_ENV = "COCOTUNE_ALLOW_UNTESTED_TENSORFLOW"

INSTALL_HINT = (
    "install one TensorFlow build: pip install 'cocotune[cpu]' (tensorflow-cpu) or "
    "pip install 'cocotune[gpu]' (tensorflow with CUDA), or pip install tensorflow~=2.21.0"
)


class MissingDependencyError(CocotuneError):
    """A package that a command needs is not installed, or not a version cocotune supports."""


def missing_extra(what: str, extra: str, needed_for: str) -> MissingDependencyError:
    """The error for an optional dependency that is absent: what, why, and how to get it."""
    return MissingDependencyError(
        f"{needed_for} needs {what}, which is not installed",
        notes=[f"install it with: pip install 'cocotune[{extra}]'"],
    )


def check_tensorflow_version(version: str) -> None:
    """Raise :class:`MissingDependencyError` unless ``version`` is in the tested series."""
    match = re.match(r"(\d+)\.(\d+)", version)
    series = (int(match[1]), int(match[2])) if match else None
    low, high = TENSORFLOW_TESTED
    if series is not None and low <= series < high:
        return
    if os.environ.get(ALLOW_UNTESTED_ENV) == "1":
        return
    raise MissingDependencyError(
        f"TensorFlow {version} is installed, but cocotune is tested with TensorFlow "
        f"{TENSORFLOW_TESTED_TEXT} only",
        notes=[
            INSTALL_HINT,
            f"or set {ALLOW_UNTESTED_ENV}=1 to run with TensorFlow {version} anyway (untested)",
        ],
    )


def import_tensorflow() -> ModuleType:
    """``import tensorflow`` with a one-line message (exit code 2) when that cannot work."""
    try:
        import tensorflow
    except ModuleNotFoundError as exc:
        if exc.name != "tensorflow":
            raise MissingDependencyError(
                f"TensorFlow is installed but cannot be imported: {exc}", notes=[INSTALL_HINT]
            ) from exc
        raise MissingDependencyError(
            "this command needs TensorFlow, which is not installed", notes=[INSTALL_HINT]
        ) from exc
    except ImportError as exc:
        raise MissingDependencyError(
            f"TensorFlow is installed but cannot be imported: {exc}", notes=[INSTALL_HINT]
        ) from exc
    check_tensorflow_version(str(getattr(tensorflow, "__version__", "unknown")))
    return tensorflow
