"""Call generated kernels from Python through ctypes, and prepare their weight arrays.

Every kernel has the same C signature (see ``conv3x3_pattern.c.j2``)::

    int k(const float* in_chw, float* out_chw, const float* w, const int32_t* koff,
          const int32_t* g, const int32_t* reorder, const float* bias, float* ws, int nthreads)

Arrays per kind:

- pattern: ``w`` = FKW weights (4 per kernel), ``koff`` = FKW channel index × workspace channel
  stride, ``g`` = per reordered filter the kernel range of each pattern (F × (P+1)),
  ``reorder`` = FKW reorder.
- dense: every (filter, channel) kernel, 9 weights each; ``g`` = F × 2.
- csr: one entry per non-zero weight, ``koff`` = channel stride × channel + tap offset,
  ``g`` = CSR row pointers.

Layouts: ``k`` takes and returns one image in CHW (:func:`nhwc_to_chw` / :func:`chw_to_nhwc`
convert, a transpose copy each); ``k_nhwc``, same arguments, takes and returns one image in
NHWC (TFLite's layout, what the delegate calls: the kernel fills its workspace from NHWC rows
and transposes finished output tiles, no full-tensor conversion). :meth:`Kernel.nhwc` calls it.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cocotune.cocogen.errors import CocogenError
from cocotune.cocogen.fkw import FKWLayer, encode
from cocotune.cocogen.kernel_spec import KernelSpec, filter_block_bounds
from cocotune.cocogen.patterns import kernels_of

__all__ = [
    "KernelData",
    "KernelLibrary",
    "Kernel",
    "kernel_data",
    "aligned_empty",
    "nhwc_to_chw",
    "chw_to_nhwc",
]


def aligned_empty(n: int, align: int = 64) -> np.ndarray:
    """A float32 array of ``n`` elements whose data starts on an ``align``-byte boundary."""
    raw = np.empty(n + align // 4, dtype=np.float32)
    off = (-raw.ctypes.data % align) // 4
    return raw[off : off + n]


def nhwc_to_chw(x: np.ndarray) -> np.ndarray:
    """One image HWC (or a batch NHWC, first image) -> contiguous CHW float32."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 4:
        x = x[0]
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def chw_to_nhwc(x: np.ndarray) -> np.ndarray:
    """CHW -> a batch of one NHWC image."""
    return np.ascontiguousarray(x.transpose(1, 2, 0))[None]


@dataclass
class KernelData:
    """The run-time arrays of one kernel (see the module docstring)."""

    w: np.ndarray
    koff: np.ndarray
    g: np.ndarray
    reorder: np.ndarray
    bias: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in (self.w, self.koff, self.g, self.reorder)))


def _i32(a) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=np.int32))


def _f32(a) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


def kernel_data(
    spec: KernelSpec, kernel_hwio: np.ndarray, bias: np.ndarray | None, fkw: FKWLayer | None = None
) -> KernelData:
    """The arrays ``spec``'s kernel reads, from the dense Keras kernel (zeros = pruned)."""
    f, c = spec.cout, spec.cin
    b = np.zeros(f, np.float32) if bias is None else _f32(bias).reshape(f)
    ch = spec.channel_stride
    if spec.kind == "pattern" and spec.tile.order == "is":
        return _input_stationary_data(spec, kernel_hwio, b)
    if spec.kind == "pattern":
        layer = fkw if fkw is not None else encode(kernel_hwio, b, spec.library)
        return KernelData(
            w=_f32(layer.weights),
            koff=_i32(layer.index.astype(np.int64) * ch),
            g=_i32(layer.groups().reshape(-1)),
            reorder=_i32(layer.reorder),
            bias=_f32(layer.bias),
        )
    ks = kernels_of(np.asarray(kernel_hwio, dtype=np.float32))  # (F, C, 9)
    if spec.kind == "dense":
        return KernelData(
            w=_f32(ks.reshape(-1)),
            koff=_i32(np.tile(np.arange(c, dtype=np.int64) * ch, f)),
            g=_i32(np.stack([np.arange(f) * c, np.arange(1, f + 1) * c], 1).reshape(-1)),
            reorder=_i32(np.arange(f)),
            bias=b,
        )
    # csr over the (F, C*9) matrix
    tapoff = np.array([spec.tap_offset(t // 3, t % 3) for t in range(9)], dtype=np.int64)
    fi, ci, ti = np.nonzero(ks)
    rowptr = np.zeros(f + 1, dtype=np.int64)
    np.add.at(rowptr, fi + 1, 1)
    return KernelData(
        w=_f32(ks[fi, ci, ti]),
        koff=_i32(ci * ch + tapoff[ti]),
        g=_i32(np.cumsum(rowptr)),
        reorder=_i32(np.arange(f)),
        bias=b,
    )


def _input_stationary_data(
    spec: KernelSpec, kernel_hwio: np.ndarray, bias: np.ndarray
) -> KernelData:
    """Kernels ordered by (filter block, channel, pattern, filter) for the 'is' order."""
    from cocotune.cocogen.fkw import assign_patterns

    f, c, fb = spec.cout, spec.cin, spec.tile.fb
    lib = spec.library
    p = len(lib)
    pid = assign_patterns(kernel_hwio, lib)  # (F, C)
    ks = kernels_of(np.asarray(kernel_hwio, dtype=np.float32))
    bounds = filter_block_bounds(f, fb)
    w, koff = [], []
    g = np.zeros((fb, c, p + 1), dtype=np.int64)
    n = 0
    for b in range(fb):
        lo, hi = bounds[b], bounds[b + 1]
        for ch in range(c):
            for pat in range(p):
                g[b, ch, pat] = n
                fs = lo + np.flatnonzero(pid[lo:hi, ch] == pat)
                taps = list(lib.patterns[pat])
                for fi in fs:
                    w.append(ks[fi, ch, taps])
                    koff.append(fi * spec.scratch_row)
                n += len(fs)
            g[b, ch, p] = n
    return KernelData(
        w=_f32(np.asarray(w, np.float32).reshape(-1) if w else np.zeros(0, np.float32)),
        koff=_i32(koff),
        g=_i32(g.reshape(-1)),
        reorder=_i32(np.arange(f)),
        bias=bias,
    )


class _Row(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("fn", ctypes.c_void_p),
        *[
            (n, ctypes.c_int32)
            for n in ("cin", "h", "w", "cout", "ho", "wo", "stride", "pad_top", "pad_left", "relu")
        ],
        ("workspace_floats", ctypes.c_int64),
    ]


def open_library(path: str | Path) -> tuple[Path, ctypes.CDLL]:
    """Load a built kernel library (the 3×3, pointwise and depthwise loaders share this).

    Raises:
        CocogenError: the file is missing or cannot be loaded.
    """
    p = Path(path)
    if not p.is_file():
        raise CocogenError(
            f"kernel library '{path}' does not exist (run 'cocotune cocogen compile')"
        )
    try:
        return p, ctypes.CDLL(str(p.resolve()))
    except OSError as exc:
        raise CocogenError(f"cannot load kernel library '{path}': {exc}") from None


def kernel_function(lib: ctypes.CDLL, path: Path, name: str, n_pointers: int):
    """The generated function ``name``: ``n_pointers`` pointers and a thread count, returns int.

    Raises:
        CocogenError: the library has no such kernel.
    """
    try:
        fn = getattr(lib, name)
    except AttributeError:
        raise CocogenError(f"kernel '{name}' is not in '{path}'") from None
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_void_p] * n_pointers + [ctypes.c_int]
    return fn


class KernelLibrary:
    """A built ``.so`` and its kernel table.

    Raises:
        CocogenError: the file is missing, not a cocogen library, or lacks a kernel.
    """

    def __init__(self, path: str | Path) -> None:
        self.path, self.lib = open_library(path)
        try:
            ctypes.c_char.in_dll(self.lib, "cocogen_abi")
            count = ctypes.c_int.in_dll(self.lib, "cocogen_kernel_count").value
        except ValueError:
            raise CocogenError(
                f"'{path}' is not a cocogen kernel library (no kernel table)"
            ) from None
        table = (_Row * count).in_dll(self.lib, "cocogen_kernels")
        self.rows = {r.name.decode(): r for r in table}
        self.pool = {}
        for name in self.rows:
            for fn_name in (name, name + "_nhwc"):
                self.pool[fn_name] = getattr(self.lib, fn_name)
                self.pool[fn_name].restype = ctypes.c_int
                self.pool[fn_name].argtypes = [ctypes.c_void_p] * 8 + [ctypes.c_int]
        self._maxpool = self.lib.cocogen_maxpool2x2_chw
        self._maxpool.restype = ctypes.c_int
        self._maxpool.argtypes = [ctypes.c_void_p, ctypes.c_void_p] + [ctypes.c_int] * 4

    def names(self) -> list[str]:
        return list(self.rows)

    def kernel(self, spec: KernelSpec, data: KernelData) -> Kernel:
        """Bind ``spec``'s function to its arrays; checks the table row against the spec."""
        row = self.rows.get(spec.name)
        if row is None:
            raise CocogenError(f"kernel '{spec.name}' is not in '{self.path}'")
        got = (
            row.cin,
            row.h,
            row.w,
            row.cout,
            row.ho,
            row.wo,
            row.stride,
            row.pad_top,
            row.pad_left,
        )
        want = (
            spec.cin,
            spec.h,
            spec.w,
            spec.cout,
            spec.ho,
            spec.wo,
            spec.stride,
            spec.pad_top,
            spec.pad_left,
        )
        if got != want or row.workspace_floats != spec.workspace_floats:
            raise CocogenError(
                f"kernel '{spec.name}' in '{self.path}' does not match its spec: {got} != {want}"
            )
        return Kernel(self.pool[spec.name], spec, data, fn_nhwc=self.pool[spec.name + "_nhwc"])

    def maxpool2x2(
        self, x_chw: np.ndarray, nthreads: int = 1, out: np.ndarray | None = None
    ) -> np.ndarray:
        c, h, w = x_chw.shape
        if out is None:
            out = np.empty((c, h // 2, w // 2), np.float32)
        self._maxpool(x_chw.ctypes.data, out.ctypes.data, c, h, w, nthreads)
        return out


class Kernel:
    """One callable kernel: ``k(x_chw, nthreads=1, out=None) -> out_chw``, and
    ``k.nhwc(x_hwc, nthreads=1, out=None) -> out_hwc`` (the NHWC entry point).

    Not re-entrant: calls share the kernel's workspace (run one call at a time per kernel, or
    give each thread its own :class:`Kernel` with :meth:`use_workspace`).
    """

    def __init__(
        self,
        fn,
        spec: KernelSpec,
        data: KernelData,
        workspace: np.ndarray | None = None,
        fn_nhwc=None,
    ) -> None:
        self.fn = fn
        self.fn_nhwc = fn_nhwc
        self.spec = spec
        self.data = data
        self.use_workspace(workspace)

    def use_workspace(self, workspace: np.ndarray | None) -> None:
        """Run in ``workspace`` (64-byte aligned float32, at least ``spec.workspace_floats``); a chain
        of kernels shares one, so it stays in cache from layer to layer. None: a private one."""
        need = max(self.spec.workspace_floats, 8)
        if workspace is None:
            workspace = aligned_empty(need)
        if workspace.dtype != np.float32 or workspace.size < need or workspace.ctypes.data % 64:
            raise ValueError(
                f"{self.spec.name}: workspace must be 64-byte aligned float32 of >= {need} floats"
            )
        data = self.data
        self.ws = workspace
        self._ptrs = [
            data.w.ctypes.data if data.w.size else None,
            data.koff.ctypes.data if data.koff.size else None,
            data.g.ctypes.data,
            data.reorder.ctypes.data,
            data.bias.ctypes.data,
            self.ws.ctypes.data,
        ]

    @property
    def out_shape(self) -> tuple[int, int, int]:
        return (self.spec.cout, self.spec.ho, self.spec.wo)

    def __call__(
        self, x_chw: np.ndarray, nthreads: int = 1, out: np.ndarray | None = None
    ) -> np.ndarray:
        s = self.spec
        if (
            x_chw.shape != (s.cin, s.h, s.w)
            or x_chw.dtype != np.float32
            or not x_chw.flags.c_contiguous
        ):
            raise ValueError(
                f"{s.name}: expected a contiguous float32 CHW array {(s.cin, s.h, s.w)}, got "
                f"{x_chw.dtype} {x_chw.shape}"
            )
        if out is None:
            out = np.empty(self.out_shape, np.float32)
        elif out.shape != self.out_shape or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise ValueError(f"{s.name}: out must be a contiguous float32 array {self.out_shape}")
        rc = self.fn(x_chw.ctypes.data, out.ctypes.data, *self._ptrs, int(nthreads))
        if rc != 0:  # pragma: no cover - kernels always return 0 today
            raise RuntimeError(f"{s.name} returned {rc}")
        return out

    @property
    def out_shape_nhwc(self) -> tuple[int, int, int]:
        return (self.spec.ho, self.spec.wo, self.spec.cout)

    def nhwc(
        self, x_hwc: np.ndarray, nthreads: int = 1, out: np.ndarray | None = None
    ) -> np.ndarray:
        """The NHWC entry point on one image (H, W, C) -> (Ho, Wo, F)."""
        s = self.spec
        if self.fn_nhwc is None:
            raise CocogenError(f"{s.name}: no NHWC entry point bound")
        if (
            x_hwc.shape != (s.h, s.w, s.cin)
            or x_hwc.dtype != np.float32
            or not x_hwc.flags.c_contiguous
        ):
            raise ValueError(
                f"{s.name}: expected a contiguous float32 HWC array {(s.h, s.w, s.cin)}, got "
                f"{x_hwc.dtype} {x_hwc.shape}"
            )
        shape = self.out_shape_nhwc
        if out is None:
            out = np.empty(shape, np.float32)
        elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise ValueError(f"{s.name}: out must be a contiguous float32 array {shape}")
        rc = self.fn_nhwc(x_hwc.ctypes.data, out.ctypes.data, *self._ptrs, int(nthreads))
        if rc != 0:  # pragma: no cover - kernels always return 0 today
            raise RuntimeError(f"{s.name}_nhwc returned {rc}")
        return out
