"""Generated kernels for *unstructured* sparse 1×1 convolutions and fully connected layers (CSR).

Block kernels (:mod:`cocotune.cocogen.emit_pointwise`) need whole (input channel × 16 filters)
blocks pruned; a layer pruned weight by weight (magnitude pruning, as tfmot's
``prune_low_magnitude`` does) keeps nearly every block at 28 % density. This kind runs such a
layer from its non-zeros alone: the ``Cout × Cin`` matrix in CSR (per output channel, the input
channel and weight of each non-zero, channels ascending).

1×1 convolution (``codegen_templates/c/pointwise_csr.c.j2``): a tile of ``P`` output pixels is
transposed from NHWC into a CHW staging tile (``Cin`` rows of ``P`` floats, 8×8 register
transposes; stride 2 reads every other pixel of every other row here, no gather pass); each
output channel then runs its CSR row: per non-zero one broadcast weight times ``P/16`` aligned
16-float staging vectors, ``u`` accumulator sets so ``u·P/16`` FMA chains hide the FMA latency;
bias and ReLU are applied in registers, and each 16 channels' results are transposed back into
the NHWC output. The vector runs over pixels, so every FMA lane is useful whatever the zero
pattern. Work items for the delegate's thread pool are (pixel chunk, block of ``cb`` output
channels).

Stack: a call keeps its staging tile (at most 128 KiB; 32 KiB with the default tiles) and, with
input-channel chunks, its per-channel results (at most 128 KiB) on the calling thread's stack —
fine for glibc's default thread stacks (8 MiB), not for 128 KiB ones (musl).

Fully connected (one pixel): a sparse matrix × vector product, per output channel a gathered dot
product (AVX-512 gathers, 2 accumulators).

Names::

    cocogen_csr1x1s2_256x512_56x56_l3_relu__avx512_p32u4c512
    cocogen_csrfc_2048x1000_l0__avx512_c1000
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from cocotune.cocogen.build import build_library, isa_tag
from cocotune.cocogen.emit_c import environment, file_header, one_file_per_kernel
from cocotune.cocogen.pointwise import matrix_of
from cocotune.cocogen.runtime import aligned_empty

__all__ = [
    "CSR_MAX_DENSITY",
    "CsrSpec",
    "CsrData",
    "csr_data",
    "spec_data",
    "csr_spec",
    "csr_context",
    "render_csr",
    "render_csr_library",
    "build_csr",
    "CsrKernel",
    "with_tile",
    "candidate_tiles",
    "CsrTuneResult",
    "tune_csr",
    "density_reason",
]

TEMPLATE = "pointwise_csr.c.j2"
CSR_MAX_DENSITY = 0.5
_STAGE_MAX_FLOATS = 32768  # the staging tile lives on the stack: at most 128 KiB
PAD = 32  # zero entries past the end of w and idx (COCOGEN_PW_PAD in the delegate)
FC_CHUNK = 32  # a fully connected kernel's input chunk: one two-register permute
_ACC_MAX_FLOATS = 32768  # and so do a chunked kernel's results: at most 128 KiB


@dataclass(frozen=True)
class CsrSpec:
    """One generated CSR 1×1 convolution (``fc=False``) or fully connected layer (``fc=True``,
    ``h = w = 1``, stride 1): shapes, tile (``p`` pixels, ``u`` accumulator sets) and the
    output-channel block ``cb`` of a work item."""

    cin: int
    cout: int
    h: int = 1
    w: int = 1
    stride: int = 1
    relu: bool = False
    fc: bool = False
    p: int = 32
    u: int = 4
    cb: int = 0  # 0: all channels
    kc: int = 0  # input channels per chunk (0: all): a chunk's staging stays in L1
    index: int = 0
    isa: str = "avx2"

    def __post_init__(self) -> None:
        if min(self.cin, self.cout, self.h, self.w) < 1:
            raise ValueError(f"bad shape {self.cin}x{self.cout} {self.h}x{self.w}")
        if self.stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {self.stride}")
        if self.fc and (self.h, self.w, self.stride) != (1, 1, 1):
            raise ValueError("a fully connected kernel has h = w = stride = 1")
        if self.p < 16 or self.p % 16 or self.u < 1 or self.cb < 0 or self.cb % 16:
            raise ValueError(f"bad tile p={self.p} u={self.u} cb={self.cb}")
        if self.kc < 0 or self.kc % 16:
            raise ValueError(f"the input-channel chunk must be a multiple of 16, got {self.kc}")
        if not self.fc and self.chunk * self.p > _STAGE_MAX_FLOATS:
            raise ValueError(
                f"a staging tile of {self.chunk} channels x {self.p} pixels exceeds "
                f"{_STAGE_MAX_FLOATS} floats (the stack); use input-channel chunks (kc)"
            )

    @property
    def ho(self) -> int:
        return -(-self.h // self.stride)

    @property
    def wo(self) -> int:
        return -(-self.w // self.stride)

    @property
    def n_pixels(self) -> int:
        return self.ho * self.wo

    @property
    def block(self) -> int:
        """Output channels per work item."""
        return min(self.cb or self.cout, self.cout)

    @property
    def n_blocks(self) -> int:
        return -(-self.cout // self.block)

    @property
    def chunk(self) -> int:
        """Input channels per chunk (the fully connected kernel: 32, two vector registers)."""
        if self.fc:
            return FC_CHUNK
        return self.cin if not self.kc else min(self.kc, self.cin)

    @property
    def n_chunks(self) -> int:
        return -(-self.cin // self.chunk)

    @property
    def macs_dense(self) -> int:
        return self.n_pixels * self.cin * self.cout

    @property
    def name(self) -> str:
        relu = "_relu" if self.relu else ""
        if self.fc:
            return f"cocogen_csrfc_{self.cin}x{self.cout}_l{self.index}{relu}__{self.isa}_c{self.block}"
        return (
            f"cocogen_csr1x1s{self.stride}_{self.cin}x{self.cout}_{self.h}x{self.w}"
            f"_l{self.index}{relu}__{self.isa}_p{self.p}u{self.u}c{self.block}"
            + (f"k{self.chunk}" if self.n_chunks > 1 else "")
        )

    def to_json(self) -> dict:
        return {
            "kind": "csr_fc" if self.fc else "csr_pointwise",
            "cin": self.cin,
            "cout": self.cout,
            "h": self.h,
            "w": self.w,
            "stride": self.stride,
            "relu": self.relu,
            "tile": {"p": self.p, "u": self.u, "cb": self.block, "kc": self.chunk},
            "name": self.name,
        }


def _default_tile(cin: int, cout: int, n_pixels: int) -> tuple[int, int, int, int]:
    """``(p, u, cb, kc)``: 32 or 64 pixels, whichever pads the last tile less (64 on a tie:
    fewer weight passes, 4 vectors per broadcast weight), with 4 / 3 accumulator sets (8 / 12
    FMA chains); input channels in chunks whose staging is 32 KiB (L1); channel blocks (at most 4:
    each restages the tile) so a small image still gives about 8 work items (2 threads), in
    multiples of 16. Measured on
    ResNet-50's 1×1 shapes (``benchmarks/cocogen_sparse_pointwise.py``)."""
    pad = {p: -(-n_pixels // p) * p for p in (64, 32)}
    p = 64 if pad[64] <= pad[32] else 32
    u = 3 if p == 64 else 4
    kc = 8192 // p
    tiles = -(-n_pixels // p)
    want_blocks = min(4, max(1, -(-8 // tiles)))  # each block restages its tile
    cb = -(-cout // want_blocks)
    cb = -(-cb // 16) * 16
    return p, u, (0 if cb >= cout else cb), (0 if kc >= cin else kc)


def csr_spec(
    cin: int,
    cout: int,
    h: int = 1,
    w: int = 1,
    stride: int = 1,
    relu: bool = False,
    fc: bool = False,
    index: int = 0,
    native: bool = True,
) -> CsrSpec:
    """The spec (default tile) of a CSR kernel."""
    if fc:
        cb = -(-cout // 4)  # 4 items of rows: enough for 2 threads
        cb = -(-cb // 16) * 16
        return CsrSpec(
            cin, cout, fc=True, relu=relu, p=16, u=1, cb=cb, index=index, isa=isa_tag(native)
        )
    ho, wo = -(-h // stride), -(-w // stride)
    p, u, cb, kc = _default_tile(cin, cout, ho * wo)
    return CsrSpec(
        cin,
        cout,
        h,
        w,
        stride,
        relu,
        False,
        p=p,
        u=u,
        cb=cb,
        kc=kc,
        index=index,
        isa=isa_tag(native),
    )


def with_tile(spec: CsrSpec, p: int, u: int, kc: int | None = None) -> CsrSpec:
    return replace(spec, p=p, u=u, kc=spec.kc if kc is None else kc)


def density_reason(kernel: np.ndarray, max_density: float = CSR_MAX_DENSITY) -> str:
    """``""`` when a Dense / 1×1 kernel is sparse enough for the CSR kernel, else why not."""
    m = matrix_of(kernel)
    d = float(np.count_nonzero(m)) / max(1, m.size)
    if d > max_density:
        return (
            f"{d:.0%} of its weights are non-zero, more than {max_density:.0%}: too dense for "
            "the unstructured-sparse kernel"
        )
    if d == 0:
        return "every weight is zero"
    return ""


def csr_context(spec: CsrSpec) -> dict:
    """Everything the template needs, as plain values."""
    return {
        "name": spec.name,
        "fc": spec.fc,
        "cin": spec.cin,
        "h": spec.h,
        "w": spec.w,
        "cout": spec.cout,
        "ho": spec.ho,
        "wo": spec.wo,
        "stride": spec.stride,
        "relu": spec.relu,
        "P": spec.p,
        "nv": spec.p // 16,
        # the last tile's vectors when it is narrower (its own row function)
        "nv_tail": (
            (-(-(spec.n_pixels % spec.p) // 16) if spec.n_pixels % spec.p else 0)
            if -(-(spec.n_pixels % spec.p) // 16) < spec.p // 16
            else 0
        ),
        "u": spec.u,
        "cb": spec.block,
        "n_cb": spec.n_blocks,
        "np": spec.n_pixels,
        "kc": spec.chunk,
        "n_chunks": spec.n_chunks,
        "sb": min(spec.block, max(16, (_ACC_MAX_FLOATS // spec.p) // 16 * 16)),
        # delegate descriptor fields shared with the block kind
        "mr": spec.p,
        "group": 1,
        "ng": spec.cout * spec.n_chunks,
        "workspace_floats": 0,
    }


def render_csr(spec: CsrSpec, source: str | None = None) -> str:
    """The C source of one kernel."""
    body = environment().get_template(TEMPLATE).render(k=csr_context(spec))
    return file_header(TEMPLATE, source, __name__) + "\n" + body


def render_csr_library(specs: list[CsrSpec], source: str | None = None) -> dict[str, str]:
    """File name -> C text, one file per kernel."""
    return one_file_per_kernel(specs, lambda s: render_csr(s, source))


@dataclass
class CsrData:
    """The run-time arrays of one CSR kernel: ``gather`` (each non-zero's ``[Cout][Cin]`` flat
    index, the TFLite filter's order), ``w`` (aligned), ``idx`` (input channel, relative to its
    chunk), ``g`` (segment pointers, ``n_chunks · Cout + 1``: segment ``(j, f)`` holds row
    ``f``'s non-zeros in input-channel chunk ``j``), ``reorder`` (identity, the block kind's
    slot) and ``bias``."""

    gather: np.ndarray
    w: np.ndarray
    idx: np.ndarray
    g: np.ndarray
    reorder: np.ndarray
    bias: np.ndarray
    row_major: bool = False
    chunk: int = 0

    @property
    def nnz(self) -> int:
        return int(self.gather.size)


def csr_data(
    kernel: np.ndarray, bias: np.ndarray | None = None, chunk: int = 0, row_major: bool = False
) -> CsrData:
    """CSR of a Dense ``(Cin, Cout)`` / 1×1 ``(1, 1, Cin, Cout)`` kernel (zeros = pruned), in
    input-channel chunks of ``chunk`` (0: one chunk; :attr:`CsrSpec.chunk`). Segments in chunk
    order, each chunk's rows in turn (the 1×1 kernels), or ``row_major``: each row's chunks in
    turn (the fully connected kernel, ``spec.fc``)."""
    m = np.asarray(matrix_of(kernel), np.float32)
    cin, cout = m.shape
    chunk = chunk or cin
    n_chunks = -(-cin // chunk)
    t = np.ascontiguousarray(m.T)  # [Cout][Cin], TFLite's filter layout
    flat = np.flatnonzero(t.reshape(-1) != 0)  # row-major: rows (f) then channels ascending
    rows, chans = flat // cin, flat % cin
    seg = rows * n_chunks + chans // chunk if row_major else (chans // chunk) * cout + rows
    order = np.argsort(seg, kind="stable")  # chunk-major, then row, then channel
    flat, seg, chans = flat[order], seg[order], chans[order]
    g = np.zeros(n_chunks * cout + 1, np.int64)
    np.add.at(g, seg + 1, 1)
    g = np.cumsum(g)
    w = aligned_empty(flat.size + PAD)  # the delegate pads likewise (COCOGEN_PW_PAD)
    w[:] = 0
    w[: flat.size] = t.reshape(-1)[flat]
    return CsrData(
        gather=flat.astype(np.int32),
        w=w,
        idx=(chans % chunk).astype(np.int32),
        g=g.astype(np.int32),
        reorder=np.arange(n_chunks * cout, dtype=np.int32),
        row_major=row_major,
        chunk=chunk,
        bias=(np.zeros(cout, np.float32) if bias is None else np.asarray(bias, np.float32).copy()),
    )


def spec_data(spec: CsrSpec, kernel: np.ndarray, bias: np.ndarray | None = None) -> CsrData:
    """:func:`csr_data` in the layout ``spec``'s kernel reads."""
    return csr_data(kernel, bias, spec.chunk, row_major=spec.fc)


class CsrKernel:
    """``k(x_hwc, out=None) -> out_hwc`` for one image (ctypes; benchmarks and tests), or one
    chunk with :meth:`part`."""

    def __init__(self, lib: ctypes.CDLL, spec: CsrSpec, data: CsrData) -> None:
        if (data.chunk, data.row_major) != (spec.chunk, spec.fc):
            raise ValueError(f"{spec.name}: the data is not in this kernel's layout (spec_data)")
        self.spec = spec
        self.data = data
        self.fn = getattr(lib, spec.name)
        self.fn.restype = ctypes.c_int
        self.fn.argtypes = [ctypes.c_void_p] * 8 + [ctypes.c_int]
        self.part_fn = getattr(lib, spec.name + "_part")
        self.part_fn.restype = None
        self.part_fn.argtypes = [ctypes.c_void_p] * 7 + [ctypes.c_int] * 3
        # as the delegate: PAD zero entries past the indices (the fully connected kernel loads
        # whole vectors from a segment's start)
        self._idx = np.concatenate([data.idx, np.zeros(PAD, np.int32)])
        self._ptrs = [
            data.w.ctypes.data,
            self._idx.ctypes.data,
            data.g.ctypes.data,
            data.reorder.ctypes.data,
            data.bias.ctypes.data,
        ]

    @property
    def out_shape(self) -> tuple[int, ...]:
        s = self.spec
        return (s.cout,) if s.fc else (s.ho, s.wo, s.cout)

    def _check(self, x: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        s = self.spec
        if x.dtype != np.float32 or not x.flags.c_contiguous or x.size != s.h * s.w * s.cin:
            raise ValueError(f"{s.name}: expected a float32 {s.h}x{s.w}x{s.cin} image")
        if out is None:
            out = np.empty(self.out_shape, np.float32)
        if out.dtype != np.float32 or not out.flags.c_contiguous or out.size < s.n_pixels * s.cout:
            raise ValueError(f"{s.name}: out must be a contiguous float32 {self.out_shape}")
        return out

    def __call__(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        out = self._check(x, out)
        self.fn(x.ctypes.data, out.ctypes.data, *self._ptrs, None, 1)
        return out

    def part(self, x: np.ndarray, out: np.ndarray, p0: int, p1: int, gi: int) -> np.ndarray:
        out = self._check(x, out)
        self.part_fn(x.ctypes.data, out.ctypes.data, *self._ptrs, int(p0), int(p1), int(gi))
        return out


def candidate_tiles(spec: CsrSpec, limit: int = 4) -> list[CsrSpec]:
    """Tilings worth timing for ``spec`` (the default first): 32 or 64 pixels, input channels
    in one chunk or in chunks of 32 KiB staging."""
    if spec.fc:
        return [spec]
    out = [spec]
    for p, u, kc in ((32, 4, 256), (64, 3, 128), (32, 4, 0), (64, 2, 128)):
        try:
            out.append(with_tile(spec, p, u, kc))
        except ValueError:  # the staging tile would not fit the stack
            continue
    uniq = list({s.name: s for s in out}.values())
    return uniq[:limit]


@dataclass
class CsrTuneResult:
    best: CsrSpec
    times: dict[str, float]  # kernel name -> seconds per call


def tune_csr(
    items: list[tuple[CsrSpec, np.ndarray, np.ndarray | None]],
    work_dir: str | Path,
    rounds: int = 5,
    native: bool = True,
) -> list[CsrTuneResult]:
    """For each ``(spec, kernel, bias)``, time the candidate tilings on one thread (one library,
    interleaved min-of-rounds timing, :func:`cocotune.cocogen.autotune.time_interleaved`) and
    keep the fastest."""
    from cocotune.cocogen.autotune import time_interleaved

    cands = [candidate_tiles(spec) for spec, _, _ in items]
    lib = build_csr([s for g in cands for s in g], work_dir, "libcocogen_csr_tune.so", native)
    rng = np.random.default_rng(0)
    results = []
    for group, (spec, kernel, bias) in zip(cands, items):
        x = rng.standard_normal(spec.h * spec.w * spec.cin).astype(np.float32)
        ks = [CsrKernel(lib, s, spec_data(s, kernel, bias)) for s in group]
        outs = [np.empty(k.out_shape, np.float32) for k in ks]
        fns = [(lambda k=k, o=o, x=x: k(x, o)) for k, o in zip(ks, outs)]
        times = time_interleaved(fns, rounds)
        i = int(np.argmin(times))
        results.append(CsrTuneResult(group[i], {s.name: t for s, t in zip(group, times)}))
    return results


def build_csr(
    specs: list[CsrSpec],
    out_dir: str | Path,
    lib_name: str = "libcocogen_csr.so",
    native: bool = True,
) -> ctypes.CDLL:
    """Render and compile ``specs`` into one shared library, loaded."""
    path = build_library(render_csr_library(specs), out_dir, lib_name, native=native)
    return ctypes.CDLL(str(Path(path).resolve()))
