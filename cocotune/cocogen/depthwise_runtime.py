"""Build, call (ctypes) and autotune the generated depthwise 3×3 kernels.

C signature::

    int k(const float* in_hwc, float* out_hwc, const float* w, const float* bias, int nthreads)

``w``: per channel group its 4 taps (the pattern's order) × 16 channels, 64-byte aligned, a
narrower last group zero-padded (:func:`depthwise_data`); ``bias``: padded to whole groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cocotune.cocogen.autotune import time_interleaved
from cocotune.cocogen.build import build_library, isa_tag
from cocotune.cocogen.depthwise import GROUP
from cocotune.cocogen.emit_depthwise import (
    DepthwiseSpec,
    candidate_tiles,
    render_depthwise_library,
)
from cocotune.cocogen.runtime import aligned_empty, kernel_function, open_library

__all__ = [
    "DepthwiseData",
    "depthwise_data",
    "DepthwiseLibrary",
    "DepthwiseKernel",
    "build_depthwise",
    "tune_depthwise",
    "spec_for",
]


def spec_for(
    h: int,
    w: int,
    c: int,
    patterns: tuple[tuple[int, ...], ...],
    stride: int = 1,
    padding: str = "same",
    act: str = "none",
    index: int = 0,
    native: bool = True,
) -> DepthwiseSpec:
    """The spec (first candidate tile) of a kernel for an ``h × w × c`` input."""
    spec = DepthwiseSpec(
        h=h,
        w=w,
        c=c,
        patterns=patterns,
        stride=stride,
        padding=padding,
        act=act,
        index=index,
        isa=isa_tag(native),
    )
    return spec.with_tile(candidate_tiles(spec, 1)[0])


@dataclass
class DepthwiseData:
    w: np.ndarray
    bias: np.ndarray


def depthwise_data(
    spec: DepthwiseSpec, kernel: np.ndarray, bias: np.ndarray | None
) -> DepthwiseData:
    """A ``(3, 3, C, 1)`` kernel (zero outside each group's pattern) and bias packed for
    ``spec``'s kernel.

    Raises:
        ValueError: the kernel's shape differs from the spec's, or it has a non-zero weight
            outside its group's pattern (the kernel would silently drop it).
    """
    k = np.asarray(kernel, np.float32)
    if k.ndim == 4:
        k = k[..., 0]
    if k.shape != (3, 3, spec.c):
        raise ValueError(
            f"{spec.name}: kernel shape {np.shape(kernel)}, expected (3, 3, {spec.c}, 1)"
        )
    taps = k.reshape(9, spec.c)  # (tap, channel)
    w = aligned_empty(spec.ng * 4 * GROUP)
    w[:] = 0
    for g, p in enumerate(spec.patterns):
        c0, c1 = g * GROUP, min(spec.c, (g + 1) * GROUP)
        outside = np.delete(taps[:, c0:c1], list(p), axis=0)
        if np.any(outside != 0):
            raise ValueError(
                f"{spec.name}: channel group {g} has non-zero weights outside its pattern {p}"
            )
        for j, t in enumerate(p):
            w[(g * 4 + j) * GROUP : (g * 4 + j) * GROUP + c1 - c0] = taps[t, c0:c1]
    b = aligned_empty(spec.ng * GROUP)
    b[:] = 0
    if bias is not None:
        b[: spec.c] = np.asarray(bias, np.float32)
    return DepthwiseData(w=w, bias=b)


class DepthwiseLibrary:
    """A built ``.so`` holding depthwise kernels.

    Raises:
        CocogenError: the file is missing or cannot be loaded.
    """

    def __init__(self, path: str | Path) -> None:
        self.path, self.lib = open_library(path)

    def kernel(self, spec: DepthwiseSpec, data: DepthwiseData) -> DepthwiseKernel:
        fn = kernel_function(self.lib, self.path, spec.name, 4)
        return DepthwiseKernel(fn, spec, data)


class DepthwiseKernel:
    """``k(x_hwc, nthreads=1, out=None) -> out_hwc`` for one image (HWC, or NHWC with N = 1)."""

    def __init__(self, fn, spec: DepthwiseSpec, data: DepthwiseData) -> None:
        self.fn = fn
        self.spec = spec
        self.data = data

    @property
    def out_shape(self) -> tuple[int, int, int]:
        return (self.spec.ho, self.spec.wo, self.spec.c)

    def __call__(
        self, x: np.ndarray, nthreads: int = 1, out: np.ndarray | None = None
    ) -> np.ndarray:
        s = self.spec
        if x.dtype != np.float32 or not x.flags.c_contiguous or x.size != s.h * s.w * s.c:
            raise ValueError(
                f"{s.name}: expected a contiguous float32 image of {s.h}x{s.w}x{s.c} values, "
                f"got {x.dtype} {x.shape}"
            )
        if out is None:
            out = np.empty(self.out_shape, np.float32)
        elif out.dtype != np.float32 or not out.flags.c_contiguous or out.size != s.ho * s.wo * s.c:
            raise ValueError(f"{s.name}: out must be a contiguous float32 array {self.out_shape}")
        self.fn(
            x.ctypes.data,
            out.ctypes.data,
            self.data.w.ctypes.data,
            self.data.bias.ctypes.data,
            int(nthreads),
        )
        return out

    def bound(self, x: np.ndarray, out: np.ndarray, nthreads: int = 1):
        """A zero-argument callable running the kernel on ``x`` into ``out`` (checked once,
        pointers taken once): what a timing loop calls, so that numpy's per-call ``.ctypes``
        look-ups (a few microseconds) are not counted against the kernel."""
        self(x, nthreads, out)
        fn, args = self.fn, (
            x.ctypes.data,
            out.ctypes.data,
            self.data.w.ctypes.data,
            self.data.bias.ctypes.data,
            int(nthreads),
        )
        keep = (x, out)  # the arrays must outlive the callable

        def run(fn=fn, args=args, keep=keep) -> None:
            fn(*args)

        return run


def build_depthwise(
    specs: list[DepthwiseSpec],
    out_dir: str | Path,
    lib_name: str = "libcocogen_depthwise.so",
    native: bool = True,
) -> DepthwiseLibrary:
    """Render and compile ``specs`` into one shared library (the 3×3 kernels' compiler flags)."""
    return DepthwiseLibrary(
        build_library(render_depthwise_library(specs), out_dir, lib_name, native=native)
    )


@dataclass
class DepthwiseTuneResult:
    best: DepthwiseSpec
    times: dict[str, float]  # tile tag -> seconds per call


def tune_depthwise(
    items: list[tuple[DepthwiseSpec, np.ndarray, np.ndarray | None]],
    work_dir: str | Path,
    nthreads: int = 1,
    rounds: int = 5,
    limit: int = 6,
    native: bool = True,
) -> list[DepthwiseTuneResult]:
    """For each ``(spec, kernel, bias)``, time up to ``limit`` tilings (one library, one
    compiler run, interleaved min-of-rounds timing) and keep the fastest."""
    cands = [[spec.with_tile(t) for t in candidate_tiles(spec, limit)] for spec, _, _ in items]
    lib = build_depthwise(
        [s for group in cands for s in group], work_dir, "libcocogen_depthwise_tune.so", native
    )
    rng = np.random.default_rng(0)
    results = []
    for group, (spec, kern, bias) in zip(cands, items):
        x = rng.standard_normal((spec.h, spec.w, spec.c)).astype(np.float32)
        data = depthwise_data(spec, kern, bias)
        ks = [lib.kernel(s, data) for s in group]
        outs = [np.empty(k.out_shape, np.float32) for k in ks]
        fns = [k.bound(x, o, nthreads) for k, o in zip(ks, outs)]
        times = time_interleaved(fns, rounds=rounds)
        i = int(np.argmin(times))
        results.append(DepthwiseTuneResult(group[i], {s.tile.tag: t for s, t in zip(group, times)}))
    return results
