"""Generated C kernels for block-pruned 1×1 convolutions and fully connected layers.

One kernel per layer, specialised on its shapes (Cin, H, W, Cout, stride, filter group, fused
ReLU) and tiling; the PWB arrays (:mod:`cocotune.cocogen.pointwise_storage`) are passed at run
time, like the 3×3 kernels' FKW arrays. Input and output are one image in **NHWC** (TFLite's
layout, no transposes, no workspace): a pixel's channels are contiguous, and so are a filter
group's outputs.

Hot loop (``codegen_templates/c/pointwise_gemm.c.j2``): a tile of ``mr`` output pixels × one
group of ``G`` filters (``G/8`` vectors) keeps ``mr·G/8`` accumulators per accumulator set in
registers (16-float vectors with AVX-512 and ``G`` a multiple of 16: full-width FMAs on cores with
512-bit data paths such as Zen 5, 8-float vectors otherwise); per kept block it loads the channel index once, the ``G`` weights as aligned vectors,
and one broadcast input value per pixel (the GEMM micro-kernel step of XNNPACK with the K loop
indirected through the index), addressed from one base pointer with constant offsets (a pointer
per pixel would spill registers beyond 8 pixels). Stride 2 first gathers the used input pixels
into the workspace (in parallel), then runs the stride-1 code on it. ``acc``
accumulator sets (blocks ``k``, ``k+1``, … go to different sets) hide the FMA latency when the
tile is small (a fully connected layer at batch 1 is one pixel; an image's narrow last tile gets
extra sets of its own). The first set starts from the bias. ``pf`` > 0: each block also
prefetches ``pf`` cache lines of the next tile's input rows (a group sweeps the whole image, and
the rows' strided order defeats the hardware prefetchers). A tile's ``mr`` input rows lie
``Cin`` floats apart: at Cin = 1024 or 2048 they all fall in one L1 set, so the candidates keep
at most 8 rows per set (:func:`rows_per_set`).

Work items are ``<name>_part(…, p0, p1, gi)``: pixels ``[p0, p1)`` of one filter group (what the
TFLite delegate's pool calls); odd groups sweep their pixels backwards, so a sweep starts on the
rows the previous group read last (still in L2 when the image is larger than L2). The kernel's own entry runs them over pixel blocks of ``pb``
(``pb`` = all pixels: the delegate's order, each group's weights stay in L1 while all pixels
stream through; smaller: every group of a block before the next, the block's input rows stay in
L1/L2 across groups), OpenMP threads (libgomp keeps its pool between calls) taking the
(pixel block, group) pairs in turn, groups sorted by work (dynamically: on a shared machine a
thread the scheduler holds back leaves its items to the other).

Names follow the 3×3 kernels' scheme::

    cocogen_pw1x1s2_g16_256x512_56x56_l3_relu__avx512_m8a1b784
    cocogen_fc_g16_2048x1000_l0__avx512_m1a4b1
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from cocotune.cocogen.emit_c import environment, file_header, one_file_per_kernel
from cocotune.cocogen.kernel_spec import VW
from cocotune.cocogen.pointwise import GROUP, n_groups

__all__ = [
    "PointwiseTile",
    "PointwiseSpec",
    "candidate_tiles",
    "rows_per_set",
    "default_tile",
    "pointwise_context",
    "render_pointwise",
    "render_pointwise_library",
]

TEMPLATE = "pointwise_gemm.c.j2"


@dataclass(frozen=True)
class PointwiseTile:
    mr: int = 8  # output pixels per register tile
    acc: int = 1  # accumulator sets
    pb: int = 0  # pixels per block (0 = all pixels)
    pf: int = 0  # cache lines of the next tile's input rows prefetched per block (0 = none)

    def tag(self, np_: int) -> str:
        return f"m{self.mr}a{self.acc}b{self.pb or np_}" + (f"p{self.pf}" if self.pf else "")


@dataclass(frozen=True)
class PointwiseSpec:
    """One generated 1×1 convolution (``fc=False``) or fully connected layer (``fc=True``,
    ``h = w = 1``, stride 1): shapes and tiling."""

    cin: int
    cout: int
    h: int = 1
    w: int = 1
    stride: int = 1
    relu: bool = False
    fc: bool = False
    group: int = GROUP
    tile: PointwiseTile = field(default_factory=PointwiseTile)
    index: int = 0
    isa: str = "avx2"

    def __post_init__(self) -> None:
        if min(self.cin, self.cout, self.h, self.w) < 1:
            raise ValueError(f"bad shape {self.cin}x{self.cout} {self.h}x{self.w}")
        if self.stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {self.stride}")
        if self.fc and (self.h, self.w, self.stride) != (1, 1, 1):
            raise ValueError("a fully connected kernel has h = w = stride = 1")
        if self.group < VW or self.group % VW:
            raise ValueError(f"the filter group must be a multiple of {VW}, got {self.group}")
        t = self.tile
        if t.mr < 1 or t.acc < 1 or t.pb < 0 or (t.pb and t.pb % t.mr) or not 0 <= t.pf <= 4:
            raise ValueError(f"bad tile {t} (pb must be a multiple of mr)")

    @property
    def vw(self) -> int:
        """Floats per vector: 16 (zmm) with AVX-512 when the group is a multiple of 16, else 8."""
        return 16 if self.isa == "avx512" and self.group % 16 == 0 else VW

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
    def workspace_floats(self) -> int:
        """Stride 2: the kernel first gathers the used input pixels into the workspace (a
        quarter of the input), so every tile reads consecutive rows at constant offsets."""
        return self.n_pixels * self.cin if self.stride == 2 else 0

    @property
    def n_groups(self) -> int:
        return n_groups(self.cout, self.group)

    @property
    def macs_dense(self) -> int:
        return self.n_pixels * self.cin * self.cout

    @property
    def name(self) -> str:
        relu = "_relu" if self.relu else ""
        tag = self.tile.tag(self.n_pixels)
        if self.fc:
            return f"cocogen_fc_g{self.group}_{self.cin}x{self.cout}_l{self.index}{relu}__{self.isa}_{tag}"
        return (
            f"cocogen_pw1x1s{self.stride}_g{self.group}_{self.cin}x{self.cout}_{self.h}x{self.w}"
            f"_l{self.index}{relu}__{self.isa}_{tag}"
        )

    def with_tile(self, tile: PointwiseTile) -> PointwiseSpec:
        return replace(self, tile=tile)

    def to_json(self) -> dict:
        return {
            "kind": "fc" if self.fc else "pointwise",
            "cin": self.cin,
            "cout": self.cout,
            "h": self.h,
            "w": self.w,
            "stride": self.stride,
            "relu": self.relu,
            "group": self.group,
            "tile": {
                "mr": self.tile.mr,
                "acc": self.tile.acc,
                "pb": self.tile.pb,
                "pf": self.tile.pf,
            },
            "name": self.name,
        }


# independent FMAs a tile needs in flight to keep the FMA pipes busy (2 pipes x 4 cycles)
_LIVE_FMAS = 8


def _max_mr(spec: PointwiseSpec) -> int:
    """Largest pixel tile whose accumulators fit the vector registers (32 with AVX-512VL,
    16 otherwise), leaving room for the weight vectors and a broadcast."""
    regs = 32 if spec.isa == "avx512" else 16
    nv = spec.group // spec.vw
    return max(1, (regs - nv - 2) // nv)


# L1 data cache geometry assumed for the row-aliasing rule (Zen 4/5 and recent Intel: 64 sets of
# 64-byte lines, 12 ways); a tile whose rows crowd more than _MAX_ROWS_PER_SET into one set
# evicts its own input before the next block reuses the line
_L1_SETS, _LINE, _MAX_ROWS_PER_SET = 64, 64, 8
# pixel blocks of the pixel-blocked order: input rows of about L1 / L2 size
_BLOCK_BYTES = (32 << 10, 256 << 10)


def rows_per_set(cin: int, mr: int) -> int:
    """Most of a tile's ``mr`` input rows (``cin`` floats apart) that share one L1 set at a
    given channel: all of them when a row is a multiple of 4 KiB (Cin 1024, 2048)."""
    sets = [(i * cin * 4 // _LINE) % _L1_SETS for i in range(mr)]
    return max(sets.count(x) for x in set(sets))


def candidate_tiles(
    spec: PointwiseSpec, limit: int = 6, pixel_blocks: bool = False
) -> list[PointwiseTile]:
    """Tilings worth timing for ``spec``, best guess first.

    ``pixel_blocks=False``: only tiles whose main entry runs the TFLite delegate's loop order
    (each work item is one filter group over all its pixels, ``pb = 0``), so the timing ranks
    what the delegate will run; with ``True`` also pixel-blocked orders (every group of an
    L1- or L2-sized block of pixels before the next block: the block's input is read from
    memory once instead of once per group), which only the kernel's own entry point uses.
    """
    np_ = spec.n_pixels
    if np_ == 1:
        return [PointwiseTile(1, a, 0) for a in (4, 2, 8, 1)][:limit]
    top = _max_mr(spec)
    nv = spec.group // spec.vw
    if nv == 1:  # one vector per block: 12-24 pixels, or 6-8 with a second accumulator set
        shapes = [(12, 1), (8, 2), (16, 1), (24, 1), (14, 1), (7, 2), (6, 2)]
    else:
        shapes = [(8, 1), (6, 1), (4, 2), (4, 1)]
    shapes = [
        (m, a)
        for m, a in shapes
        if m * a <= top and m <= np_ and rows_per_set(spec.cin, m) <= _MAX_ROWS_PER_SET
    ]
    shapes = shapes or [(min(top, np_), 1)]
    out = [PointwiseTile(m, a, 0) for m, a in shapes[:3]]
    if nv == 1 and spec.cin <= 256 and shapes[0][0] < np_:
        # small rows: each group sweeps the image from L2/L3; prefetching the next tile's
        # rows pays there (measured: 5-10% on ResNet-50's 56x56 layers, a loss at Cin 512)
        out.insert(1, PointwiseTile(shapes[0][0], shapes[0][1], 0, 2))
    if pixel_blocks:
        blocked = []
        for m, a in shapes[:3]:
            for size in _BLOCK_BYTES:
                pb = m * max(1, round(size / (4 * spec.cin * m)))
                if pb < np_:
                    blocked.append(PointwiseTile(m, a, pb))
        out = blocked + out
    out += [PointwiseTile(m, a, 0) for m, a in shapes[3:]]
    seen, uniq = set(), []
    for t in out:
        if t not in seen:
            seen.add(t)
            uniq.append(t)
    return uniq[:limit]


def default_tile(spec: PointwiseSpec) -> PointwiseTile:
    return candidate_tiles(spec, 1)[0]


def pointwise_context(spec: PointwiseSpec) -> dict:
    """Everything the template needs, as plain values."""
    t = spec.tile
    np_ = spec.n_pixels
    mr = min(t.mr, np_)
    pb = t.pb or -(-np_ // mr) * mr
    ng = spec.n_groups
    last_cols = spec.cout - (ng - 1) * spec.group
    mr_tail = np_ % mr
    tiles = []
    for cols in sorted({spec.group, last_cols}, reverse=True):
        nv = -(-cols // spec.vw)
        for m in [mr] + ([mr_tail] if mr_tail else []):
            acc = t.acc
            if m != mr and m * nv * acc < _LIVE_FMAS:
                # a narrow tail tile (e.g. the 49th pixel of a 7x7 image) gets more sets: one
                # chain of dependent FMAs would take the time of several full tiles
                acc = min(_LIVE_FMAS, -(-_LIVE_FMAS // (m * nv)))
            # only a full tile in a sweep over the pixels has a next tile to prefetch
            tiles.append(
                {"mr": m, "cols": cols, "nv": nv, "acc": acc, "pf": t.pf if m == mr else 0}
            )
    v16 = spec.vw == 16
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
        "group": spec.group,
        "nv": spec.group // spec.vw,
        "vw": spec.vw,
        "vt": "cg_v16f" if v16 else "cg_v8f",
        "load": "CG_LOAD16" if v16 else "CG_LOAD",
        "bcast": "cg_bcast16" if v16 else "cg_bcast",
        "relu_fn": "cg_relu16" if v16 else "cg_relu",
        "store": "cg_store16" if v16 else "cg_store",
        "ng": ng,
        "last_cols": last_cols,
        "mr": mr,
        "mr_tail": mr_tail,
        "acc": t.acc,
        "pf": t.pf,
        "pb": pb,
        "np": np_,
        "n_pb": -(-np_ // pb),
        "tiles": tiles,
        "workspace_floats": spec.workspace_floats,
    }


def render_pointwise(spec: PointwiseSpec, source: str | None = None) -> str:
    """The C source of one kernel (with the shared file header: vector types and helpers)."""
    body = environment().get_template(TEMPLATE).render(k=pointwise_context(spec))
    return file_header(TEMPLATE, source, __name__) + "\n" + body


def render_pointwise_library(
    specs: list[PointwiseSpec], source: str | None = None
) -> dict[str, str]:
    """File name -> C text, one file per kernel (compile with :func:`cocotune.cocogen.build.
    build_library`)."""
    return one_file_per_kernel(specs, lambda s: render_pointwise(s, source))
