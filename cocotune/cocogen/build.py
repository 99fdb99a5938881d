"""Compile generated C sources into a shared library with the system C compiler.

Local builds use ``-O3 -march=native -fopenmp`` (AVX-512VL on this Zen 4 machine, AVX2 + FMA on
Zen 3); if the compiler rejects ``-march=native`` the portable fallback is ``-O3 -fopenmp`` (the
GCC vector types then lower to SSE2 or scalars). ``CC`` and ``COCOGEN_CFLAGS`` (appended) override the defaults.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

from cocotune.cocogen.errors import BuildError

__all__ = [
    "compiler",
    "native_flags",
    "portable_flags",
    "isa_tag",
    "build_library",
    "compile_objects",
    "link_library",
]

_COMMON = ["-O3", "-std=gnu11", "-fPIC", "-fopenmp", "-ffp-contract=fast", "-fno-math-errno"]


def compiler() -> str:
    """Path of the C compiler (``$CC``, else gcc, else cc).

    Raises:
        BuildError: none is installed.
    """
    for name in (os.environ.get("CC"), "gcc", "cc"):
        if name:
            path = shutil.which(name)
            if path:
                return path
    raise BuildError("no C compiler found (install gcc or set CC)")


def native_flags() -> list[str]:
    return _COMMON + ["-march=native"] + shlex.split(os.environ.get("COCOGEN_CFLAGS", ""))


def portable_flags() -> list[str]:
    return _COMMON + shlex.split(os.environ.get("COCOGEN_CFLAGS", ""))


@cache
def _macros(cc: str, flags: tuple[str, ...]) -> str:
    try:
        r = subprocess.run(
            [cc, *flags, "-dM", "-E", "-x", "c", os.devnull],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return r.stdout if r.returncode == 0 else ""


@cache
def isa_tag(native: bool = True) -> str:
    """The instruction set the flags target, part of every kernel name: 'avx512' (AVX-512VL:
    the 8-float vectors get EVEX encodings such as embedded broadcasts), 'avx2' (AVX2 + FMA),
    else 'generic'. A library built for one does not run on a CPU without it."""
    cc = compiler()
    m = _macros(cc, tuple(native_flags() if native else portable_flags()))
    if not m and native:
        return isa_tag(False)
    if "__AVX512F__" in m and "__AVX512VL__" in m:
        return "avx512"
    return "avx2" if ("__AVX2__" in m and "__FMA__" in m) else "generic"


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)


def _flags(native: bool) -> tuple[str, list[str]]:
    cc = compiler()
    flags = native_flags() if native else portable_flags()
    if native and not _macros(cc, tuple(flags)):
        flags = portable_flags()
    return cc, flags


def compile_objects(
    files: dict[str, str],
    out_dir: str | Path,
    native: bool = True,
    jobs: int = 2,
    static: dict[str, str] | None = None,
) -> dict[str, Path]:
    """Write ``files`` (name -> C text; ``static``: headers and other files that are only
    written) into ``out_dir`` and compile every ``.c`` file; returns name -> object path.

    Raises:
        BuildError: the compiler failed (the message holds its first error lines).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cc, flags = _flags(native)
    sources = []
    for name, text in {**(static or {}), **files}.items():
        p = out / name
        if not p.exists() or p.read_text() != text:
            p.write_text(text)
        if name in files and name.endswith(".c"):
            sources.append(p)

    def compile_one(src: Path) -> tuple[Path, subprocess.CompletedProcess]:
        obj = src.with_suffix(".o")
        return obj, _run([cc, *flags, "-c", src.name, "-o", obj.name], out)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(compile_one, sources))
    for obj, r in results:
        if r.returncode != 0:
            raise BuildError(
                f"the C compiler failed on {obj.with_suffix('.c').name}",
                notes=r.stderr.strip().splitlines()[:12],
            )
    return {src.name: obj for src, (obj, _) in zip(sources, results)}


def link_library(
    objects: list[Path],
    out_dir: str | Path,
    lib_name: str,
    native: bool = True,
    extra: list[str] | None = None,
) -> Path:
    """Link ``objects`` into the shared library ``out_dir/lib_name`` (``extra``: more linker
    arguments, e.g. ``-Wl,-Bsymbolic``)."""
    out = Path(out_dir)
    cc, flags = _flags(native)
    lib = out / lib_name
    r = _run(
        [
            cc,
            *flags,
            "-shared",
            "-o",
            lib.name,
            *[str(Path(o).name) for o in objects],
            *(extra or []),
        ],
        out,
    )
    if r.returncode != 0:
        raise BuildError(f"linking {lib_name} failed", notes=r.stderr.strip().splitlines()[:12])
    return lib


def build_library(
    files: dict[str, str],
    out_dir: str | Path,
    lib_name: str = "libcocogen.so",
    native: bool = True,
    jobs: int = 2,
) -> Path:
    """Write ``files`` (name -> C text) into ``out_dir`` and link them into ``lib_name``.

    Returns the path of the shared library.

    Raises:
        BuildError: the compiler failed (the message holds its first error lines).
    """
    objs = compile_objects(files, out_dir, native, jobs)
    try:
        lib = link_library(list(objs.values()), out_dir, lib_name, native)
    except BuildError as exc:
        raise BuildError("linking the kernel library failed", notes=exc.notes) from None
    for obj in objs.values():
        obj.unlink(missing_ok=True)
    return lib
