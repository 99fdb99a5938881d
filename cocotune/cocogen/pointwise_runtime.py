"""Build, call (ctypes) and autotune the generated 1×1 convolution / fully connected kernels.

C signature (the same nine arguments as the 3×3 kernels, so one function-pointer type serves a
kernel table or the delegate)::

    int k(const float* in_hwc, float* out_hwc, const float* w, const int32_t* idx,
          const int32_t* g, const int32_t* reorder, const float* bias, float* ws, int nthreads)

``w``/``idx``/``g``/``reorder`` are a :class:`~cocotune.cocogen.pointwise_storage.PWBLayer`'s
weights, index, offset and reorder as float32 / int32 (``w`` 64-byte aligned); ``bias`` is
padded to whole groups; ``ws``: ``spec.workspace_floats`` floats (stride 2 only, else NULL). Input and output are one NHWC image (batch 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cocotune.cocogen.autotune import time_interleaved
from cocotune.cocogen.build import build_library, isa_tag
from cocotune.cocogen.emit_pointwise import (
    PointwiseSpec,
    candidate_tiles,
    default_tile,
    render_pointwise_library,
)
from cocotune.cocogen.pointwise_storage import PWBLayer
from cocotune.cocogen.runtime import aligned_empty, kernel_function, open_library

__all__ = [
    "PointwiseData",
    "pointwise_data",
    "PointwiseLibrary",
    "PointwiseKernel",
    "build_pointwise",
    "tune_pointwise",
    "spec_for",
]


def spec_for(
    layer: PWBLayer,
    h: int = 1,
    w: int = 1,
    stride: int = 1,
    relu: bool = False,
    fc: bool = False,
    index: int = 0,
    native: bool = True,
) -> PointwiseSpec:
    """The spec (default tile) of a kernel for ``layer`` on an ``h × w`` input."""
    spec = PointwiseSpec(
        cin=layer.cin,
        cout=layer.cout,
        h=h,
        w=w,
        stride=stride,
        relu=relu,
        fc=fc,
        group=layer.group,
        index=index,
        isa=isa_tag(native),
    )
    return spec.with_tile(default_tile(spec))


@dataclass
class PointwiseData:
    """The run-time arrays of one kernel (see the module docstring)."""

    w: np.ndarray
    idx: np.ndarray
    g: np.ndarray
    reorder: np.ndarray
    bias: np.ndarray


def pointwise_data(spec: PointwiseSpec, layer: PWBLayer) -> PointwiseData:
    """``layer``'s arrays in the form ``spec``'s kernel reads.

    Raises:
        ValueError: the layer's shapes or group differ from the spec's.
    """
    if (layer.cin, layer.cout, layer.group) != (spec.cin, spec.cout, spec.group):
        raise ValueError(
            f"{spec.name}: layer is {layer.cin}x{layer.cout} group {layer.group}, spec is "
            f"{spec.cin}x{spec.cout} group {spec.group}"
        )
    w = aligned_empty(max(layer.weights.size, spec.group))
    w[: layer.weights.size] = layer.weights
    bias = np.zeros(spec.n_groups * spec.group, np.float32)
    bias[: spec.cout] = layer.bias
    return PointwiseData(
        w=w,
        idx=np.ascontiguousarray(layer.index, dtype=np.int32),
        g=np.ascontiguousarray(layer.offset, dtype=np.int32),
        reorder=np.ascontiguousarray(layer.reorder, dtype=np.int32),
        bias=bias,
    )


class PointwiseLibrary:
    """A built ``.so`` holding pointwise kernels.

    Raises:
        CocogenError: the file is missing or cannot be loaded.
    """

    def __init__(self, path: str | Path) -> None:
        self.path, self.lib = open_library(path)

    def kernel(self, spec: PointwiseSpec, data: PointwiseData) -> PointwiseKernel:
        fn = kernel_function(self.lib, self.path, spec.name, 8)
        return PointwiseKernel(fn, spec, data)


class PointwiseKernel:
    """``k(x_hwc, nthreads=1, out=None) -> out_hwc`` for one image (HWC, or NHWC with N = 1;
    a fully connected kernel also takes a ``(Cin,)`` or ``(1, Cin)`` vector).

    Not re-entrant when the kernel has a workspace (stride 2): one call at a time per object."""

    def __init__(self, fn, spec: PointwiseSpec, data: PointwiseData) -> None:
        self.fn = fn
        self.spec = spec
        self.data = data
        self.ws = aligned_empty(spec.workspace_floats) if spec.workspace_floats else None
        self._ptrs = [
            data.w.ctypes.data,
            data.idx.ctypes.data if data.idx.size else None,
            data.g.ctypes.data,
            data.reorder.ctypes.data,
            data.bias.ctypes.data,
            self.ws.ctypes.data if self.ws is not None else None,
        ]

    @property
    def in_size(self) -> int:
        return self.spec.h * self.spec.w * self.spec.cin

    @property
    def out_shape(self) -> tuple[int, ...]:
        s = self.spec
        return (s.cout,) if s.fc else (s.ho, s.wo, s.cout)

    def __call__(
        self, x: np.ndarray, nthreads: int = 1, out: np.ndarray | None = None
    ) -> np.ndarray:
        s = self.spec
        if x.dtype != np.float32 or not x.flags.c_contiguous or x.size != self.in_size:
            raise ValueError(
                f"{s.name}: expected a contiguous float32 image of {s.h}x{s.w}x{s.cin} values, "
                f"got {x.dtype} {x.shape}"
            )
        if out is None:
            out = np.empty(self.out_shape, np.float32)
        elif (
            out.dtype != np.float32 or not out.flags.c_contiguous or out.size != s.n_pixels * s.cout
        ):
            raise ValueError(f"{s.name}: out must be a contiguous float32 array {self.out_shape}")
        rc = self.fn(x.ctypes.data, out.ctypes.data, *self._ptrs, int(nthreads))
        if rc != 0:  # pragma: no cover - kernels always return 0
            raise RuntimeError(f"{s.name} returned {rc}")
        return out


def build_pointwise(
    specs: list[PointwiseSpec],
    out_dir: str | Path,
    lib_name: str = "libcocogen_pointwise.so",
    native: bool = True,
) -> PointwiseLibrary:
    """Render and compile ``specs`` into one shared library (the 3×3 kernels' compiler flags)."""
    return PointwiseLibrary(
        build_library(render_pointwise_library(specs), out_dir, lib_name, native=native)
    )


_TIE = 1.03


@dataclass
class PointwiseTuneResult:
    best: PointwiseSpec
    times: dict[str, float]  # kernel name -> seconds per call
    # the fastest candidate in the TFLite delegate's loop order (pixel block = all pixels):
    # ``best`` itself unless pixel-blocked orders were timed too
    best_unblocked: PointwiseSpec | None = None


def tune_pointwise(
    items: list[tuple[PointwiseSpec, PWBLayer]],
    work_dir: str | Path,
    nthreads: int = 1,
    rounds: int = 5,
    limit: int = 6,
    native: bool = True,
    pixel_blocks: bool = False,
) -> list[PointwiseTuneResult]:
    """For each ``(spec, layer)``, time up to ``limit`` tilings (one library, one compiler run,
    interleaved min-of-rounds timing) and keep the fastest.

    ``pixel_blocks``: also time pixel-blocked loop orders (see
    :func:`~cocotune.cocogen.emit_pointwise.candidate_tiles`); only the kernel's own entry
    point runs them, so a kernel for the delegate is tuned without."""
    cands = [
        [spec.with_tile(t) for t in candidate_tiles(spec, limit, pixel_blocks)] for spec, _ in items
    ]
    lib = build_pointwise(
        [s for group in cands for s in group], work_dir, "libcocogen_pointwise_tune.so", native
    )
    rng = np.random.default_rng(0)
    results = []
    for group, (spec, layer) in zip(cands, items):
        x = rng.standard_normal(spec.h * spec.w * spec.cin).astype(np.float32)
        data = pointwise_data(spec, layer)
        ks = [lib.kernel(s, data) for s in group]
        outs = [np.empty(k.out_shape, np.float32) for k in ks]
        fns = [(lambda k=k, o=o: k(x, nthreads, o)) for k, o in zip(ks, outs)]
        times = time_interleaved(fns, rounds=rounds)
        # the first candidate within 3% of the fastest (as autotune.tune): candidates come
        # best guess first, and on a shared machine 3% is noise
        i = next(j for j, t in enumerate(times) if t <= _TIE * min(times))
        unblocked = [j for j, s in enumerate(group) if s.tile.pb == 0]
        j = i
        if unblocked:
            fastest = min(times[j] for j in unblocked)
            j = next(j for j in unblocked if times[j] <= _TIE * fastest)
        results.append(
            PointwiseTuneResult(group[i], {s.name: t for s, t in zip(group, times)}, group[j])
        )
    return results
