"""Generated C kernels for pattern-pruned depthwise 3×3 convolutions (NHWC in and out).

One kernel per layer, specialised on its shapes (H, W, C, stride, padding), fused activation
(none, ReLU, ReLU6), each channel group's 4-tap pattern (:mod:`cocotune.cocogen.depthwise`) and
tiling. The taps are constants of the generated code (a ``switch`` per channel group over the
layer's distinct patterns); the weights and the bias are passed at run time.

Hot loop (``codegen_templates/c/dwconv3x3_nhwc.c.j2``): one output vector = 16 channels of one
pixel = bias + 4 FMAs of a weight vector and an (unaligned) input vector at a constant offset
from the block's row pointers; ``xb`` output pixels per block. ``order`` 'xg': per block of
pixels, every channel group (the block's input stays in L1); 'gx': per channel group, the whole
row (its weights stay in registers). Rows outside the image read a static zero row; the columns
at the left and right edges go through a column-checked path. OpenMP threads split the output
rows × ``cs`` channel chunks statically (libgomp keeps its pool between calls).

Name::

    cocogen_dw3x3s1_112x112x32_relu6_p1a2b3c_l0__avx512_x8xgc1
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

from cocotune.cocogen.depthwise import GROUP, n_groups
from cocotune.cocogen.emit_c import environment, file_header, one_file_per_kernel

__all__ = [
    "DepthwiseTile",
    "DepthwiseSpec",
    "candidate_tiles",
    "depthwise_context",
    "render_depthwise",
    "render_depthwise_library",
    "same_padding",
]

TEMPLATE = "dwconv3x3_nhwc.c.j2"
ACTS = {"none": "cg_ident16", "relu": "cg_relu16", "relu6": "cg_relu6_16"}


def same_padding(n: int, stride: int) -> tuple[int, int, int]:
    """(output size, padding before, padding after) of TF 'same' padding for a 3-tap window."""
    out = -(-n // stride)
    total = max((out - 1) * stride + 3 - n, 0)
    return out, total // 2, total - total // 2


@dataclass(frozen=True)
class DepthwiseTile:
    xb: int = 8  # output pixels per block
    order: str = "xg"  # 'xg': pixel block outer, 'gx': channel group outer
    cs: int = 1  # channel chunks per output row (work items)

    @property
    def tag(self) -> str:
        return f"x{self.xb}{self.order}c{self.cs}"


@dataclass(frozen=True)
class DepthwiseSpec:
    """One generated depthwise 3×3 convolution: shapes, patterns (one per channel group, sorted
    tap numbers ``3 * dy + dx``), activation and tiling."""

    h: int
    w: int
    c: int
    patterns: tuple[tuple[int, ...], ...]
    stride: int = 1
    padding: str = "same"
    act: str = "none"
    tile: DepthwiseTile = field(default_factory=DepthwiseTile)
    index: int = 0
    isa: str = "avx2"

    def __post_init__(self) -> None:
        if min(self.h, self.w, self.c) < 1:
            raise ValueError(f"bad shape {self.h}x{self.w}x{self.c}")
        if self.stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {self.stride}")
        if self.padding not in ("same", "valid"):
            raise ValueError(f"padding must be 'same' or 'valid', got {self.padding!r}")
        if self.padding == "valid" and min(self.h, self.w) < 3:
            raise ValueError(f"'valid' padding needs at least 3x3 input, got {self.h}x{self.w}")
        if self.act not in ACTS:
            raise ValueError(f"act must be one of {sorted(ACTS)}, got {self.act!r}")
        if len(self.patterns) != n_groups(self.c):
            raise ValueError(f"{len(self.patterns)} patterns for {n_groups(self.c)} channel groups")
        for p in self.patterns:
            if len(p) != 4 or len(set(p)) != 4 or not all(0 <= t < 9 for t in p):
                raise ValueError(f"a pattern is 4 distinct taps in 0..8, got {p}")
        t = self.tile
        if t.xb < 1 or t.order not in ("xg", "gx") or t.cs < 1:
            raise ValueError(f"bad tile {t}")

    def _pads(self, n: int) -> tuple[int, int]:
        if self.padding == "valid":
            return (n - 3) // self.stride + 1, 0
        out, before, _ = same_padding(n, self.stride)
        return out, before

    @property
    def ho(self) -> int:
        return self._pads(self.h)[0]

    @property
    def wo(self) -> int:
        return self._pads(self.w)[0]

    @property
    def pad_top(self) -> int:
        return self._pads(self.h)[1]

    @property
    def pad_left(self) -> int:
        return self._pads(self.w)[1]

    @property
    def ng(self) -> int:
        return n_groups(self.c)

    @property
    def pattern_digest(self) -> str:
        return hashlib.sha1(repr(self.patterns).encode()).hexdigest()[:6]

    @property
    def macs_dense(self) -> int:
        return self.ho * self.wo * self.c * 9

    @property
    def macs_pruned(self) -> int:
        return self.ho * self.wo * self.c * 4

    @property
    def name(self) -> str:
        pad = "" if self.padding == "same" else "v"
        return (
            f"cocogen_dw3x3s{self.stride}{pad}_{self.h}x{self.w}x{self.c}_{self.act}"
            f"_p{self.pattern_digest}_l{self.index}__{self.isa}_{self.tile.tag}"
        )

    def with_tile(self, tile: DepthwiseTile) -> DepthwiseSpec:
        return replace(self, tile=tile)


def candidate_tiles(spec: DepthwiseSpec, limit: int = 6) -> list[DepthwiseTile]:
    """Tilings worth timing, best guess first; a second channel chunk when the rows are few
    (a second thread then has work)."""
    cs = 2 if spec.ho < 16 and spec.ng >= 4 else 1
    out = [
        DepthwiseTile(8, "xg", cs),
        DepthwiseTile(4, "xg", cs),
        DepthwiseTile(8, "gx", cs),
        DepthwiseTile(4, "gx", cs),
        DepthwiseTile(8, "xg", 1 if cs == 2 else 2),
        DepthwiseTile(2, "xg", cs),
    ]
    return out[:limit]


def depthwise_context(spec: DepthwiseSpec) -> dict:
    """Everything the template needs, as plain values."""
    c, ng = spec.c, spec.ng
    tail = c - (ng - 1) * GROUP
    keys: list[tuple[tuple[int, ...], int]] = []
    group_case = []
    for g, p in enumerate(spec.patterns):
        key = (p, tail if g == ng - 1 else GROUP)
        if key not in keys:
            keys.append(key)
        group_case.append(keys.index(key))
    cases = [
        {"taps": [{"dy": t // 3, "dx": t % 3} for t in p], "tap_ids": list(p), "lanes": lanes}
        for p, lanes in keys
    ]
    s, pl, w = spec.stride, spec.pad_left, spec.w
    # interior output columns: every tap column 0 <= ox*s - pl + dx <= w - 1 for dx in 0..2
    xa = min(spec.wo, -(-pl // s))
    xe = max(xa, min(spec.wo, (w - 3 + pl) // s + 1)) if w - 3 + pl >= 0 else xa
    last_row_in = (spec.ho - 1) * s + 2 - spec.pad_top
    return {
        "name": spec.name,
        "h": spec.h,
        "w": spec.w,
        "c": c,
        "ho": spec.ho,
        "wo": spec.wo,
        "stride": s,
        "pad_top": spec.pad_top,
        "pad_left": pl,
        "act": spec.act,
        "act_fn": ACTS[spec.act],
        "ng": ng,
        "cases": cases,
        "group_case": group_case,
        "needs_zero_row": spec.pad_top > 0 or last_row_in > spec.h - 1,
        "xa": xa,
        "xe": xe,
        "xb": spec.tile.xb,
        "order": spec.tile.order,
        "cs": min(spec.tile.cs, ng),
        "n_items": spec.ho * min(spec.tile.cs, ng),
    }


def render_depthwise(spec: DepthwiseSpec, source: str | None = None) -> str:
    """The C source of one kernel (with the shared file header)."""
    body = environment().get_template(TEMPLATE).render(k=depthwise_context(spec))
    return file_header(TEMPLATE, source, __name__) + "\n" + body


def render_depthwise_library(
    specs: list[DepthwiseSpec], source: str | None = None
) -> dict[str, str]:
    """File name -> C text, one file per kernel."""
    return one_file_per_kernel(specs, lambda s: render_depthwise(s, source))
