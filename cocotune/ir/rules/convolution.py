"""Convolution, ConvolutionDepthwise (fork) and Deconvolution: shapes, costs, blobs.

Together because they read one ``convolution_param`` through
:func:`~cocotune.ir.geometry.conv_geometry` and share the group checks and blob layout.
"""

from __future__ import annotations

from cocotune.ir import random_init
from cocotune.ir.catalogue import CHANNELWISE, PRODUCER, BlobSpec, PruningRole, register
from cocotune.ir.geometry import ConvGeometry, conv_geometry
from cocotune.ir.net import Layer, Shape
from cocotune.ir.rule_base import Cost, fail, fmt_shape, per_image, prod
from cocotune.ir.rules._common import _with_bias


def _conv_common(layer: Layer, in_shape: Shape, depthwise: bool) -> tuple[ConvGeometry, int, int]:
    p = layer.param.convolution_param
    g = conv_geometry(layer, in_shape)
    channels = in_shape[g.axis]
    if depthwise:
        group = channels
        if p.num_output != channels:
            raise fail(
                f"a depthwise convolution needs num_output == input channels "
                f"({p.num_output} != {channels})",
                "convolution_param.num_output",
            )
    else:
        group = p.group
    if p.num_output <= 0:
        raise fail("num_output must be positive", "convolution_param.num_output")
    if group <= 0 or channels % group:
        raise fail(
            f"input channels ({channels}) are not divisible by group ({group})",
            "convolution_param.group",
        )
    if p.num_output % group:
        raise fail(
            f"num_output ({p.num_output}) is not divisible by group ({group})",
            "convolution_param.num_output",
        )
    return g, channels, group


def _conv_shape(layer: Layer, bottoms: list[Shape], depthwise: bool = False) -> list[Shape]:
    out = []
    for in_shape in bottoms:
        g, _, _ = _conv_common(layer, in_shape, depthwise)
        spatial = []
        for i, (size, k, s, pd, d) in enumerate(
            zip(in_shape[g.axis + 1 :], g.kernel, g.stride, g.pad, g.dilation)
        ):
            extent = d * (k - 1) + 1
            if size + 2 * pd < extent:
                raise fail(
                    f"kernel {fmt_shape(g.kernel)} (extent {extent} with dilation {d}) is larger "
                    f"than the padded input {size}+2*{pd} along spatial axis {i} "
                    f"(input {fmt_shape(in_shape)})",
                    "convolution_param.kernel_size",
                )
            spatial.append((size + 2 * pd - extent) // s + 1)
        out.append(
            tuple(in_shape[: g.axis]) + (layer.param.convolution_param.num_output,) + tuple(spatial)
        )
    return out


def _conv_cost(layer: Layer, bottoms: list[Shape], tops: list[Shape], depthwise=False) -> Cost:
    p = layer.param.convolution_param
    g, channels, group = _conv_common(layer, bottoms[0], depthwise)
    weights = p.num_output * (channels // group) * prod(g.kernel)
    params = weights + (p.num_output if p.bias_term else 0)
    macs = sum(per_image(t) for t in tops) * (channels // group) * prod(g.kernel)
    return Cost(params, macs)


def _conv_blobs(layer: Layer, bottoms: list[Shape]) -> list[BlobSpec]:
    p = layer.param.convolution_param
    g = conv_geometry(layer, bottoms[0])
    channels = bottoms[0][g.axis]
    return _with_bias(BlobSpec("weights", (p.num_output, channels // p.group) + g.kernel), p)


def _depthwise_blobs(layer: Layer, bottoms: list[Shape]) -> list[BlobSpec]:
    """The depthwise fork allocates (C, 1, kh, kw) whatever group says."""
    p = layer.param.convolution_param
    g = conv_geometry(layer, bottoms[0])
    return _with_bias(BlobSpec("weights", (bottoms[0][g.axis], 1) + g.kernel), p)


def _deconv_blobs(layer: Layer, bottoms: list[Shape]) -> list[BlobSpec]:
    p = layer.param.convolution_param
    g = conv_geometry(layer, bottoms[0])
    channels = bottoms[0][g.axis]
    return _with_bias(BlobSpec("weights", (channels, p.num_output // p.group) + g.kernel), p)


_conv_init = random_init.he_normal(lambda layer, w: prod(w[1:]))

register(
    "Convolution",
    shape=_conv_shape,
    cost=_conv_cost,
    blobs=_conv_blobs,
    init=_conv_init,
    bias_field="convolution_param.bias_term",
    bottoms=(1, None),
    tops=(1, None),
    description="convolution",
    pruning=PruningRole(
        PRODUCER,
        axis="convolution_param.axis",
        filters="convolution_param.num_output",
        group="convolution_param.group",
        several_bottoms="reads several bottoms",
    ),
    emitter="ConvolutionEmitter",
)
register(
    "ConvolutionDepthwise",
    shape=lambda layer, b: _conv_shape(layer, b, depthwise=True),
    cost=lambda layer, b, t: _conv_cost(layer, b, t, depthwise=True),
    blobs=_depthwise_blobs,
    init=_conv_init,
    bias_field="convolution_param.bias_term",
    bottoms=(1, None),
    tops=(1, None),
    fork="depthwise-convolution fork (MobileNet/ShuffleNet)",
    description="depthwise convolution",
    # The fork ignores convolution_param.group (it is always one filter per channel).
    pruning=PruningRole(
        CHANNELWISE,
        axis="convolution_param.axis",
        filters="convolution_param.num_output",
        several_bottoms="reads several bottoms",
    ),
    emitter="ConvolutionEmitter",
)


def _deconv_shape(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    out = []
    for in_shape in bottoms:
        g, _, _ = _conv_common(layer, in_shape, False)
        spatial = []
        for size, k, s, pd, d in zip(in_shape[g.axis + 1 :], g.kernel, g.stride, g.pad, g.dilation):
            size_out = s * (size - 1) + d * (k - 1) + 1 - 2 * pd
            if size_out <= 0:
                raise fail(
                    f"output size {size_out} is not positive (input {fmt_shape(in_shape)})",
                    "convolution_param.pad",
                )
            spatial.append(size_out)
        out.append(
            tuple(in_shape[: g.axis]) + (layer.param.convolution_param.num_output,) + tuple(spatial)
        )
    return out


def _deconv_cost(layer: Layer, bottoms: list[Shape], tops: list[Shape]) -> Cost:
    p = layer.param.convolution_param
    g, channels, group = _conv_common(layer, bottoms[0], False)
    params = channels * (p.num_output // group) * prod(g.kernel) + (
        p.num_output if p.bias_term else 0
    )
    macs = sum(per_image(b) for b in bottoms) * (p.num_output // group) * prod(g.kernel)
    return Cost(params, macs)


register(
    "Deconvolution",
    shape=_deconv_shape,
    cost=_deconv_cost,
    blobs=_deconv_blobs,
    init=_conv_init,
    bias_field="convolution_param.bias_term",
    bottoms=(1, None),
    tops=(1, None),
    description="transposed convolution",
    emitter="DeconvolutionEmitter",
)
