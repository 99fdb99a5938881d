"""Pattern pruning of depthwise 3×3 convolutions, one pattern per group of 16 channels.

A depthwise convolution filters each channel with its own 3×3 kernel. In TFLite's NHWC layout a
pixel's channels are contiguous, so a 16-float vector holds 16 channels of one pixel and every
lane must read the same taps: the unit of pruning is a *channel group* of ``GROUP`` consecutive
channels sharing one 4-tap pattern (one of :func:`~cocotune.cocogen.patterns.
candidate_patterns`, the centre always kept). The generated kernel (``emit_depthwise``) then
does 4 multiply-adds per output vector instead of 9, with the taps as constants.

Projection: per group, the candidate pattern keeping most of the group's squared L2 norm (the
exact Euclidean projection onto "each group follows one candidate pattern", as the squared
distance decomposes over groups). The last group may be narrower than ``GROUP``.

Keras ``DepthwiseConv2D`` kernels are ``(3, 3, C, M)``; only depth multiplier ``M = 1`` is
handled (MobileNet v1/v2 use 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cocotune.cocogen.patterns import candidate_patterns

__all__ = [
    "GROUP",
    "DepthwiseProjection",
    "project_depthwise",
    "group_patterns",
    "n_groups",
    "depthwise_layers",
]

GROUP = 16


def n_groups(channels: int, group: int = GROUP) -> int:
    return -(-channels // group)


def _taps(kernel: np.ndarray) -> np.ndarray:
    """``(3, 3, C, 1)`` or ``(3, 3, C)`` -> ``(C, 9)``, taps row-major (``3 * dy + dx``)."""
    k = np.asarray(kernel)
    if k.ndim == 4:
        if k.shape[3] != 1:
            raise ValueError(f"depth multiplier {k.shape[3]} is not supported (only 1)")
        k = k[..., 0]
    if k.ndim != 3 or k.shape[:2] != (3, 3):
        raise ValueError(f"expected a (3, 3, C, 1) depthwise kernel, got shape {k.shape}")
    return k.reshape(9, k.shape[2]).T


@dataclass
class DepthwiseProjection:
    kernel: np.ndarray  # same shape as the input kernel, the projection
    patterns: tuple[tuple[int, ...], ...]  # per channel group, sorted tap numbers
    kept_energy: float  # share of the squared L2 norm kept
    mask: np.ndarray  # same shape as kernel, True on each group's pattern taps


def project_depthwise(kernel: np.ndarray, group: int = GROUP) -> DepthwiseProjection:
    """Euclidean projection of a depthwise 3×3 kernel onto one 4-tap pattern per ``group``
    consecutive channels (ties: the lowest candidate index)."""
    taps = _taps(kernel).astype(np.float64)  # (C, 9)
    c = taps.shape[0]
    cands = candidate_patterns()
    masks = np.zeros((len(cands), 9), dtype=np.float64)
    for i, p in enumerate(cands):
        masks[i, p] = 1.0
    energy = taps**2
    pats, keep = [], np.zeros_like(taps, dtype=bool)
    for g in range(n_groups(c, group)):
        sl = slice(g * group, min(c, (g + 1) * group))
        best = int(np.argmax(energy[sl].sum(0) @ masks.T))
        pats.append(tuple(int(t) for t in cands[best]))
        keep[sl, cands[best]] = True
    proj = np.where(keep, taps, 0.0)
    total = float(energy.sum())
    k = np.asarray(kernel)
    out, mask = proj.T.reshape(3, 3, c), keep.T.reshape(3, 3, c)
    if k.ndim == 4:
        out, mask = out[..., None], mask[..., None]
    return DepthwiseProjection(
        kernel=out.astype(k.dtype),
        patterns=tuple(pats),
        kept_energy=float((proj**2).sum() / total) if total > 0 else 1.0,
        mask=mask,
    )


def group_patterns(kernel: np.ndarray, group: int = GROUP) -> tuple[tuple[int, ...], ...] | None:
    """The per-group 4-tap patterns a pruned depthwise kernel follows, read from its zeros
    (a group whose support has fewer than 4 taps is padded with the centre, then the lowest
    free taps), or None when some group's channels use more than 4 distinct taps."""
    nz = _taps(kernel) != 0
    pats = []
    for g in range(n_groups(nz.shape[0], group)):
        sup = np.flatnonzero(nz[g * group : (g + 1) * group].any(0))
        if len(sup) > 4:
            return None
        p = set(int(t) for t in sup)
        for t in [4, 0, 1, 2, 3, 5, 6, 7, 8]:
            if len(p) == 4:
                break
            p.add(t)
        pats.append(tuple(sorted(p)))
    return tuple(pats)


def depthwise_layers(model) -> list:
    """The DepthwiseConv2D layers ``cocogen prune --depthwise`` prunes: 3×3, depth multiplier
    1, equal strides 1 or 2, no dilation, channels_last (what the generated kernels compute)."""
    import keras

    out = []
    for layer in model.layers:
        if type(layer).__name__ != "DepthwiseConv2D":
            continue
        if not isinstance(layer, keras.layers.DepthwiseConv2D):
            continue
        st = tuple(layer.strides)
        if (
            tuple(layer.kernel_size) == (3, 3)
            and layer.depth_multiplier == 1
            and st[0] == st[1]
            and st[0] in (1, 2)
            and tuple(layer.dilation_rate) == (1, 1)
            and layer.data_format == "channels_last"
        ):
            out.append(layer)
    return out
