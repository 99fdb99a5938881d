"""What one generated kernel computes and how it is tiled: names, geometry, data layout.

Layouts (the conversions are in :mod:`cocotune.cocogen.runtime`):

- The kernel's input and output are one image in **CHW planar** layout (Keras is NHWC:
  ``x_chw = x_nhwc[n].transpose(2, 0, 1)``, and back with ``.transpose(1, 2, 0)``). Planar
  lets one vector hold 8 neighbouring output pixels of one filter, which is how the pattern
  kernels vectorise (a pattern is per (filter, channel) kernel, so filters do not share code).
  Every kernel also has an **NHWC entry point** (``<name>_nhwc``, and ``<name>_nhwc_job``, the
  same call as work items for the delegate's thread pool) on TFLite's layout with no
  full-tensor transposes: the workspace below is filled from NHWC input rows (each through an
  L1-resident CHW staging row, 8×8 register transposes), and each work item (a row tile, or a
  filter block × pixel chunk in the input-stationary order) computes its outputs, bias and
  ReLU fused, into a per-thread staging tile that is transposed into NHWC the same way.
- Inside, each kernel first copies its input into a zero-padded **tap-plane workspace**, so that
  every tap load is an aligned, branch-free vector load (no padding tests in the hot loop):

  * ``row`` mode (output width ≥ 8): for each channel ``c``, input row ``r`` (of the padded
    input) and column shift ``dx`` in 0..2, a row of ``WV`` floats (output width rounded up to
    8) holding ``in_padded[c, r, s*x + dx]`` for output column ``x``. Tap (dy, dx) of output row
    ``y`` is then the aligned row ``(s*y + dy, dx)``; strides 2 need no gathers in the hot loop.
  * ``flat`` mode (small outputs, e.g. 4×4, 2×2, 7×7): for each channel and each of the 9 taps,
    the ``Ho*Wo`` output pixels flattened (rounded up to 8): an im2col per channel, so vectors
    are full even when a row is shorter than 8.

- A tile is ``tr`` output rows × ``tv`` vectors of 8 pixels, with ``acc`` independent
  accumulator sets (tap ``t`` of a kernel accumulates into set ``t % acc``), so the FMA chains
  are ``tr*tv*acc`` wide; ``ku = 2`` handles two kernels per iteration with separate sets
  (``tr*tv*acc*2`` chains), which the small flat tiles need to hide the FMA latency. ``order`` ``fy`` runs filters outermost (threads split filters);
  ``yf`` runs row tiles outermost (threads split rows; the tile's input rows stay in cache
  across all filters). ``is`` (input-stationary, flat mode, at most 16 output pixels, pattern
  kernels only): per (channel, pattern) the tap vectors stay in registers while each filter's
  kernel updates that filter's accumulator row in an L1-resident scratch; kernels are ordered
  by (filter block, channel, pattern, filter), ``fb`` filter blocks split among threads, and
  the pixels are processed in chunks of ``tv`` vectors (at most 2), outside the channel loop.

Kernel names follow XNNPACK's habit of encoding the specialisation::

    cocogen_conv3x3s1p1_k8p1a2b3c_64x64_32x32_l3_relu__avx2_row_t2x4a1fy
    (stride 1, 'same', 8 patterns whose list hashes to 1a2b3c, 64→64 channels, 32×32 input,
    layer 3, fused ReLU, AVX2, row mode, 2 rows × 4 vectors, 1 accumulator set, filters outer)

The pattern digest keeps names (and so the library's self-check) distinct when two builds have
the same shapes but different patterns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from cocotune.cocogen.patterns import PatternLibrary

VW = (
    8  # default floats per vector (AVX2 ymm); the generic build uses the same width via GCC vectors
)
VWS = (8, 16)  # vector widths a tile may use: 16 = AVX-512 zmm, offered when the ISA has it

__all__ = [
    "VW",
    "Tile",
    "KernelSpec",
    "conv_geometry",
    "candidate_tiles",
    "default_tile",
    "filter_block_bounds",
]


def conv_geometry(h: int, w: int, stride: int, padding: str) -> tuple[int, int, int, int]:
    """Keras/TensorFlow 3×3 conv geometry: ``(ho, wo, pad_top, pad_left)``.

    'valid': no padding. 'same': total padding ``max((ceil(n/s)-1)*s + 3 - n, 0)``, the smaller
    half before (so stride 2 on an even size pads only after: pad_top = 0).
    """
    if padding == "valid":
        ho, wo = (h - 3) // stride + 1, (w - 3) // stride + 1
        return ho, wo, 0, 0
    if padding == "same":
        ho, wo = -(-h // stride), -(-w // stride)
        pth = max((ho - 1) * stride + 3 - h, 0)
        ptw = max((wo - 1) * stride + 3 - w, 0)
        return ho, wo, pth // 2, ptw // 2
    raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")


@dataclass(frozen=True)
class Tile:
    """Loop tiling of one kernel (see the module docstring)."""

    mode: str = "row"  # 'row' | 'flat'
    tr: int = 1
    tv: int = 1
    acc: int = 1
    order: str = "fy"  # 'fy' | 'yf'
    ku: int = 1  # kernels per loop iteration (1 or 2), each with its own accumulator sets
    fb: int = 1  # filter blocks of the input-stationary order (threads split blocks)
    vw: int = VW  # floats per vector: 8 (ymm) or 16 (zmm, AVX-512 builds)

    @property
    def tag(self) -> str:
        v = "" if self.vw == VW else f"v{self.vw}"
        if self.order == "is":
            return f"{self.mode}_is{self.tv}b{self.fb}{v}"
        return (
            f"{self.mode}_t{self.tr}x{self.tv}a{self.acc}{'u2' if self.ku == 2 else ''}"
            f"{self.order}{v}"
        )


@dataclass(frozen=True)
class KernelSpec:
    """One generated convolution kernel: shapes, weights format and tiling.

    ``kind`` is 'pattern' (FKW, pattern groups as constants), 'dense' (our dense baseline: the
    same code with the single 9-tap pattern and every kernel kept) or 'csr' (a generic CSR
    sparse kernel over the same workspace, tap offsets read at run time).
    """

    kind: str
    cin: int
    h: int
    w: int
    cout: int
    stride: int
    padding: str
    library: PatternLibrary
    relu: bool = True
    tile: Tile = field(default_factory=Tile)
    index: int = 0  # layer number, keeps names unique
    isa: str = "avx2"

    def __post_init__(self) -> None:
        if self.kind not in ("pattern", "dense", "csr"):
            raise ValueError(f"unknown kernel kind {self.kind!r}")
        if self.stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {self.stride}")
        ho, wo, _, _ = conv_geometry(self.h, self.w, self.stride, self.padding)
        if ho < 1 or wo < 1:
            raise ValueError(f"input {self.h}x{self.w} is too small for a 3x3 'valid' convolution")
        t = self.tile
        if (
            t.mode not in ("row", "flat")
            or t.order not in ("fy", "yf", "is")
            or min(t.tr, t.tv, t.acc) < 1
            or t.ku not in (1, 2)
            or t.fb < 1
            or t.vw not in VWS
        ):
            raise ValueError(f"bad tile {t}")
        if t.order == "is" and (self.kind != "pattern" or t.tv > 4 or t.tr != 1):
            raise ValueError(
                "the input-stationary order is for pattern kernels, chunks of one row (or flat"
                " run) of <= 4 vectors"
            )
        if t.mode == "flat" and t.tr != 1:
            raise ValueError("flat mode tiles have tr == 1")
        if t.vw == 16 and self.isa != "avx512":
            raise ValueError("16-float vectors need an AVX-512 build (isa 'avx512')")

    # geometry -----------------------------------------------------------------------------
    @property
    def geometry(self) -> tuple[int, int, int, int]:
        return conv_geometry(self.h, self.w, self.stride, self.padding)

    @property
    def ho(self) -> int:
        return self.geometry[0]

    @property
    def wo(self) -> int:
        return self.geometry[1]

    @property
    def pad_top(self) -> int:
        return self.geometry[2]

    @property
    def pad_left(self) -> int:
        return self.geometry[3]

    @property
    def vw(self) -> int:
        """Floats per vector (the tile's choice)."""
        return self.tile.vw

    @property
    def wv(self) -> int:
        """Row-mode workspace row length: output width rounded up to the vector width (to whole
        chunks of ``tv`` vectors in the input-stationary order)."""
        step = self.vw * (self.tile.tv if self.tile.order == "is" else 1)
        return -(-self.wo // step) * step

    @property
    def pv(self) -> int:
        """Flat-mode plane length: output pixels rounded up to the vector width (to whole
        chunks of ``tv`` vectors in the input-stationary order)."""
        step = self.vw * (self.tile.tv if self.tile.order == "is" else 1)
        return -(-(self.ho * self.wo) // step) * step

    @property
    def hr(self) -> int:
        """Padded input rows the row-mode workspace holds."""
        return self.stride * (self.ho - 1) + 3

    @property
    def single_copy(self) -> bool:
        """Row-mode input-stationary kernels keep one copy of each padded input row (stride 2:
        its even columns, then its odd ones) and load taps unaligned: a tap vector is loaded
        once per (channel, pattern, chunk) and used by every filter, so the workspace fill
        (a third of the writes) matters more than aligned loads. Other row tilings keep three
        column-shifted copies (aligned loads in their hot loop)."""
        return self.tile.mode == "row" and self.tile.order == "is"

    @property
    def half_row(self) -> int:
        """Single-copy stride-2 rows: floats in each of the even and odd halves."""
        return -(-(self.wv + 1) // 16) * 16

    @property
    def row_len(self) -> int:
        """Row mode: floats per padded input row in the workspace."""
        if not self.single_copy:
            return 3 * self.wv
        if self.stride == 1:
            return -(-(self.wv + 2) // 16) * 16
        return 2 * self.half_row

    @property
    def channel_stride(self) -> int:
        """Floats per input channel in the workspace."""
        return self.hr * self.row_len if self.tile.mode == "row" else 9 * self.pv

    @property
    def scratch_row(self) -> int:
        """Input-stationary order: floats per filter in the accumulator scratch (every output
        pixel of the workspace's rounded layout); 0 for the other orders."""
        if self.tile.order != "is":
            return 0
        return self.ho * self.wv if self.tile.mode == "row" else self.pv

    @property
    def n_chunks(self) -> int:
        """Input-stationary order: pixel chunks of ``tv`` vectors (a row's ``wv`` floats hold
        whole chunks in row mode)."""
        if self.tile.order != "is":
            return 1
        return self.scratch_row // (self.vw * self.tile.tv)

    @property
    def workspace_floats(self) -> int:
        return self.cin * self.channel_stride + self.cout * self.scratch_row

    @property
    def nv(self) -> int:
        """Vectors per row (row mode) or per plane (flat mode)."""
        return (self.wv if self.tile.mode == "row" else self.pv) // self.vw

    @property
    def n_row_tiles(self) -> int:
        return math.ceil(self.ho / self.tile.tr) if self.tile.mode == "row" else 1

    def tap_offset(self, dy: int, dx: int) -> int:
        """Workspace offset of tap (dy, dx) relative to a channel's tile base."""
        if self.tile.mode != "row":
            return (dy * 3 + dx) * self.pv
        if not self.single_copy:
            return (dy * 3 + dx) * self.wv
        if self.stride == 1:
            return dy * self.row_len + dx
        return dy * self.row_len + (self.half_row if dx == 1 else dx // 2)

    @property
    def row_step(self) -> int:
        """Workspace offset between consecutive output rows of a tile (row mode)."""
        return self.stride * self.row_len

    @property
    def macs_dense(self) -> int:
        return self.ho * self.wo * self.cin * self.cout * 9

    # naming ---------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        p = 1 if self.padding == "same" else 0
        k = {
            "pattern": f"k{len(self.library)}p{self.library.digest}",
            "dense": "dense",
            "csr": "csr",
        }[self.kind]
        relu = "_relu" if self.relu else ""
        return (
            f"cocogen_conv3x3s{self.stride}p{p}_{k}_{self.cin}x{self.cout}_{self.h}x{self.w}"
            f"_l{self.index}{relu}__{self.isa}_{self.tile.tag}"
        )

    def with_tile(self, tile: Tile) -> KernelSpec:
        return replace(self, tile=tile)

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "cin": self.cin,
            "h": self.h,
            "w": self.w,
            "cout": self.cout,
            "stride": self.stride,
            "padding": self.padding,
            "library": self.library.to_json(),
            "relu": self.relu,
            "tile": {
                "mode": self.tile.mode,
                "tr": self.tile.tr,
                "tv": self.tile.tv,
                "acc": self.tile.acc,
                "order": self.tile.order,
                "ku": self.tile.ku,
                "fb": self.tile.fb,
                "vw": self.tile.vw,
            },
            "index": self.index,
            "isa": self.isa,
        }

    @classmethod
    def from_json(cls, d: dict) -> KernelSpec:
        d = dict(d)
        d["library"] = PatternLibrary.from_json(d["library"])
        d["tile"] = Tile(**d["tile"])
        return cls(**d)


def filter_block_bounds(cout: int, fb: int) -> list[int]:
    """First filter of each of the ``fb`` filter blocks of the input-stationary order, and cout."""
    return [round(i * cout / fb) for i in range(fb + 1)]


def candidate_tiles(spec: KernelSpec, limit: int = 6) -> list[Tile]:
    """A few tilings worth timing for this shape (at most ``limit``), best guesses first.

    On AVX-512 builds the 16-float tilings come first (even a 7×7 output, 49 of 64 lanes, runs
    faster on them), except for outputs of fewer than 16 pixels (most of a zmm would be
    padding); the best 8-float guess is always within ``limit``.
    Per width: pattern kernels up to 256 output pixels try the input-stationary order in flat
    mode (chunks of up to 4 and of 2 vectors, 2 and 1 filter blocks; its im2col workspace costs
    more than it saves on larger outputs), pattern kernels at least one vector wide the
    input-stationary order in row mode (a chunk = one output row's vectors, up to 4). Output
    width ≥ one vector: row mode, tiles of about 8 accumulators (e.g. 2 rows × 4 vectors, 8 rows
    × 1 vector), both loop orders. Smaller outputs: flat mode with 1-4 vectors and 2 or 4
    accumulator sets so the FMA chains stay independent.
    """
    widths = [16, 8] if spec.isa == "avx512" else [8]
    if spec.ho * spec.wo < 16:
        widths.reverse()
    lists = [_width_candidates(spec, vw) for vw in widths]
    out = lists[0]
    if len(lists) > 1:  # the other width's first guess within the limit
        cut = max(1, (limit or len(out) + 1) - 1)
        out = out[:cut] + lists[1][:1] + out[cut:] + lists[1][1:]
    seen, uniq = set(), []
    for t in out:
        if t not in seen:
            seen.add(t)
            uniq.append(t)
    return uniq[:limit] if limit else uniq


def _width_candidates(spec: KernelSpec, vw: int) -> list[Tile]:
    """:func:`candidate_tiles` for one vector width: the best guess of each family first (flat
    input-stationary, row input-stationary, row tiles, flat tiles), then the others, so that a
    short list still holds every family."""
    fis: list[Tile] = []
    ris: list[Tile] = []
    rows: list[Tile] = []
    flats: list[Tile] = []
    ho, wo = spec.ho, spec.wo
    pv = -(-(ho * wo) // vw)
    if spec.kind == "pattern" and ho * wo <= 256:  # input-stationary, up to 16x16 outputs
        # chunks of up to 4 vectors (a 7x7 plane in one: the weights are read once per chunk),
        # or 2; two filter blocks first: the same speed at one thread, and work for a second
        # thread when there is a single chunk (one filter block is then not offered: tuned at
        # one thread, it would leave the second thread idle)
        for tv in sorted({min(pv, 4), min(pv, 2)}, reverse=True):
            fis.append(Tile("flat", 1, tv, 1, "is", fb=2, vw=vw))
            if pv > tv:
                fis.append(Tile("flat", 1, tv, 1, "is", fb=1, vw=vw))
    if spec.kind == "pattern" and wo >= vw:  # input-stationary, chunks of one output row
        nv = -(-wo // vw)
        for tv in sorted({min(nv, 4), min(nv, 2)}, reverse=True):
            ris.append(Tile("row", 1, tv, 1, "is", vw=vw))
    if wo >= vw:
        nv = -(-wo // vw)
        for tv in sorted({min(nv, 4), min(nv, 2), min(nv, 1)}, reverse=True):
            tr = max(1, min(ho, 8 // tv))
            rows.append(Tile("row", tr, tv, 1, "fy", vw=vw))
            rows.append(Tile("row", tr, tv, 1, "yf", vw=vw))
            if tr * tv <= 4:
                rows.append(Tile("row", tr, tv, 2, "fy", vw=vw))
    if wo < vw or ho * wo <= 256:
        for tv in sorted({min(pv, 4), min(pv, 2), 1}, reverse=True):
            acc = max(1, min(4, 8 // tv))
            if tv <= 2:
                flats.append(Tile("flat", 1, tv, max(1, 4 // tv), "fy", ku=2, vw=vw))
            flats.append(Tile("flat", 1, tv, acc, "fy", vw=vw))
            if acc > 1:
                flats.append(Tile("flat", 1, tv, max(1, acc // 2), "fy", vw=vw))
    families = [[t for t in f if t.tr * t.tv * t.acc * t.ku <= 12] for f in (fis, ris, rows, flats)]
    out: list[Tile] = [f[0] for f in families if f]
    out += [t for f in families for t in f[1:]]
    return out


def default_tile(spec: KernelSpec) -> Tile:
    """The untuned choice: the first candidate."""
    return candidate_tiles(spec)[0]
