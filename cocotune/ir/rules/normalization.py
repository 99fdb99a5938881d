"""Normalisation and per-channel affine: LRN, BatchNorm, Scale, Bias, MVN.

Shape-preserving types whose learned blobs (or pruning role) follow the channel axis.
"""

from __future__ import annotations

from cocotune.ir import random_init
from cocotune.ir.catalogue import CHANNELWISE, BlobSpec, PruningRole, register
from cocotune.ir.net import Layer, Shape
from cocotune.ir.rule_base import Cost, canonical_axis, fail, fmt_shape, per_image, prod
from cocotune.ir.rules._common import _CW, _channels, _same_shape


def _lrn_shape(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    p = layer.param.lrn_param
    if p.local_size % 2 == 0:
        raise fail(f"LRN local_size must be odd, got {p.local_size}", "lrn_param.local_size")
    if len(bottoms[0]) != 4:
        raise fail(f"LRN needs a 4-axis input, got {fmt_shape(bottoms[0])}")
    return [bottoms[0]]


def _lrn_mixes_channels(layer: Layer) -> str | None:
    """ACROSS_CHANNELS divides each channel by a sum over its neighbouring channels: removing
    a channel changes the neighbours' normalisation, so the kept channels would no longer
    compute what the full model computed. WITHIN_CHANNEL only looks inside one channel."""
    if layer.param.lrn_param.norm_region == layer.param.lrn_param.ACROSS_CHANNELS:
        return "normalises across channels (removing one changes its neighbours)"
    return None


register(
    "LRN",
    shape=_lrn_shape,
    cost=lambda layer, b, t: Cost(0, per_image(b[0]) * layer.param.lrn_param.local_size),
    pruning=PruningRole(CHANNELWISE, exit_when=_lrn_mixes_channels),
    description="local response normalisation",
    emitter="LRNEmitter",
)


# Parameters: mean and variance per channel. Caffe's third blob (the moving-average scale
# factor) is bookkeeping, not a parameter: the converted model has no counterpart for it.
register(
    "BatchNorm",
    shape=_same_shape,
    blobs=lambda layer, b: [
        BlobSpec("mean", (_channels(b[0]),)),
        BlobSpec("variance", (_channels(b[0]),)),
        BlobSpec("scale factor", (1,)),
    ],
    init=random_init.batch_norm,
    cost=lambda layer, b, t: Cost(2 * _channels(b[0]), per_image(b[0])),
    pruning=_CW,
    description="batch normalisation (mean, variance; stored scaled by a factor)",
    emitter="BatchNormEmitter",
)


def _scale_param_shape(layer: Layer, bottoms: list[Shape], param_name: str) -> Shape:
    p = getattr(layer.param, param_name)
    x = bottoms[0]
    axis = canonical_axis(p.axis, len(x), f"{param_name}.axis") if len(x) else 0
    if len(bottoms) > 1:
        s = bottoms[1]
        if tuple(x[axis : axis + len(s)]) != tuple(s):
            raise fail(
                f"second bottom {fmt_shape(s)} does not match input {fmt_shape(x)} from axis {axis}",
                f"{param_name}.axis",
            )
        return s
    num_axes = p.num_axes
    if num_axes < -1:
        raise fail("num_axes must be -1 or non-negative", f"{param_name}.num_axes")
    end = len(x) if num_axes == -1 else axis + num_axes
    if end > len(x):
        raise fail(
            f"axis {axis} + num_axes {num_axes} exceeds the input's {len(x)} axes",
            f"{param_name}.num_axes",
        )
    return tuple(x[axis:end])


def _scale_shape(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _scale_param_shape(layer, bottoms, "scale_param")
    return [bottoms[0]]


def _scale_blobs(layer: Layer, bottoms: list[Shape]) -> list[BlobSpec]:
    """Gamma (unless a second bottom gives it), then beta with bias_term."""
    shape = tuple(_scale_param_shape(layer, bottoms, "scale_param"))
    out = [] if len(bottoms) > 1 else [BlobSpec("scale", shape)]
    if layer.param.scale_param.bias_term:
        out.append(BlobSpec("bias", shape))
    return out


def _scale_cost(layer: Layer, bottoms: list[Shape], tops: list[Shape]) -> Cost:
    shape = _scale_param_shape(layer, bottoms, "scale_param")
    n = prod(shape)
    params = (n if len(bottoms) == 1 else 0) + (n if layer.param.scale_param.bias_term else 0)
    return Cost(params, per_image(bottoms[0]))


# With a second bottom the per-channel factors come from another blob, which would have to lose
# the same channels: not something one module's pruning rate controls.
_SECOND_BOTTOM = "takes its factors from a second bottom"

register(
    "Scale",
    shape=_scale_shape,
    cost=_scale_cost,
    blobs=_scale_blobs,
    init=random_init.scale,
    bias_field="scale_param.bias_term",
    bottoms=(1, 2),
    pruning=PruningRole(CHANNELWISE, axis="scale_param.axis", several_bottoms=_SECOND_BOTTOM),
    description="per-channel scale (and bias)",
    emitter="ScaleEmitter",
)


def _bias_shape(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _scale_param_shape(layer, bottoms, "bias_param")
    return [bottoms[0]]


register(
    "Bias",
    shape=_bias_shape,
    blobs=lambda layer, b: (
        [] if len(b) > 1 else [BlobSpec("bias", tuple(_scale_param_shape(layer, b, "bias_param")))]
    ),
    init=random_init.bias,
    cost=lambda layer, b, t: Cost(
        prod(_scale_param_shape(layer, b, "bias_param")) if len(b) == 1 else 0, 0
    ),
    bottoms=(1, 2),
    pruning=PruningRole(CHANNELWISE, axis="bias_param.axis", several_bottoms=_SECOND_BOTTOM),
    description="per-channel bias",
    emitter="ScaleEmitter",
)


def _mvn_shape(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    return [bottoms[0]]


register("MVN", shape=_mvn_shape, description="mean-variance normalisation", emitter="MVNEmitter")
