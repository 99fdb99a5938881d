"""Convolution, ConvolutionDepthwise (fork) and Deconvolution.

Caffe pads explicitly and symmetrically; Keras' ``padding="same"`` pads asymmetrically when
the total is odd. So padding is always its own ``ZeroPadding2D`` and the convolution is
``valid`` — never a "same" guess.
"""

from __future__ import annotations

from cocotune.convert.emitters.base import (
    Call,
    CodeContext,
    Emitter,
    LayerPlan,
    Unsupported,
    blobs_with_bias,
    pyrepr,
    weights_with_bias,
)
from cocotune.ir.catalogue import depthwise
from cocotune.ir.shapes import conv_geometry


def _pair(values: tuple[int, ...]) -> object:
    return values[0] if values[0] == values[1] else tuple(values)


def _geometry(plan: LayerPlan):
    return conv_geometry(plan.layer, plan.in_shapes[0])


def is_depthwise(plan_or_layer, channels: int | None = None) -> bool:
    """One filter set per input channel (the catalogue says which types can be; a channel
    multiplier num_output = k x channels included): a Keras ``DepthwiseConv2D``."""
    layer = getattr(plan_or_layer, "layer", plan_or_layer)
    return depthwise(layer, channels, multiplier=True)


class ConvolutionEmitter(Emitter):
    def check(self, layer) -> None:
        in_shape = layer.inputs[0].shape
        if len(layer.inputs) != 1:
            raise Unsupported("convolutions with several bottoms (shared weights)", "bottom")
        if len(in_shape) != 4:
            raise Unsupported(f"only 2-D convolution (4-axis input) converts, got {in_shape}")
        if layer.param.convolution_param.axis not in (1, -3):
            raise Unsupported("convolution axis other than 1", "convolution_param.axis")
        g = conv_geometry(layer, in_shape)
        if max(g.stride) > 1 and max(g.dilation) > 1:
            raise Unsupported(
                "stride > 1 together with dilation > 1 (TensorFlow has no such kernel)",
                "convolution_param.dilation",
            )

    def has_weights(self, plan) -> bool:
        return True

    def calls(self, plan: LayerPlan, gen: CodeContext) -> list[Call]:
        p = plan.layer.param.convolution_param
        g = _geometry(plan)
        src, out = plan.in_vars[0], plan.out_vars[0]
        calls = []
        if any(g.pad):
            pad_name = plan.keras_name + "_pad"
            calls.append(
                Call(
                    out,
                    "layers.ZeroPadding2D",
                    [src],
                    [pyrepr(_pair(g.pad))],
                    name=gen.name(pad_name),
                )
            )
            src = out
        kwargs = {}
        if any(s != 1 for s in g.stride):
            kwargs["strides"] = pyrepr(_pair(g.stride))
        if any(d != 1 for d in g.dilation):
            kwargs["dilation_rate"] = pyrepr(_pair(g.dilation))
        if not p.bias_term:
            kwargs["use_bias"] = "False"
        channels = plan.in_shapes[0][1]
        if is_depthwise(plan):
            multiplier = p.num_output // channels
            if multiplier != 1:
                kwargs = {"depth_multiplier": str(multiplier), **kwargs}
            calls.append(
                Call(
                    out,
                    "layers.DepthwiseConv2D",
                    [src],
                    [pyrepr(_pair(g.kernel))],
                    kwargs,
                    name=gen.name(plan.keras_name),
                )
            )
            return calls
        if p.group != 1:
            kwargs["groups"] = str(p.group)
        filters = gen.width(plan, p.num_output)
        calls.append(
            Call(
                out,
                "layers.Conv2D",
                [src],
                [filters, pyrepr(_pair(g.kernel))],
                kwargs,
                name=gen.name(plan.keras_name),
            )
        )
        return calls

    @staticmethod
    def _multiplier(plan: LayerPlan) -> int:
        return plan.layer.param.convolution_param.num_output // plan.in_shapes[0][1]

    def to_keras(self, plan, blobs):
        w = blobs[0]
        if is_depthwise(plan):
            # Caffe (C*m, 1, kh, kw) with output o = c*m + j  ->  Keras (kh, kw, C, m)
            m = self._multiplier(plan)
            kernel = w.reshape(w.shape[0] // m, m, *w.shape[2:]).transpose(2, 3, 0, 1)
        else:
            kernel = w.transpose(2, 3, 1, 0)  # OIHW -> HWIO
        return weights_with_bias(plan.keras_name, kernel, blobs)

    def from_keras(self, plan, weights):
        v = weights[plan.keras_name]
        kernel = v["kernel"]
        if is_depthwise(plan):
            kh, kw, c, m = kernel.shape
            w = kernel.transpose(2, 3, 0, 1).reshape(c * m, 1, kh, kw)
        else:
            w = kernel.transpose(3, 2, 0, 1)
        return blobs_with_bias(w, v)


class DeconvolutionEmitter(Emitter):
    def check(self, layer) -> None:
        if len(layer.inputs[0].shape) != 4:
            raise Unsupported("only 2-D deconvolution (4-axis input) converts")
        if len(layer.inputs) != 1:
            raise Unsupported("deconvolutions with several bottoms", "bottom")

    def has_weights(self, plan) -> bool:
        return True

    def calls(self, plan, gen):
        p = plan.layer.param.convolution_param
        g = _geometry(plan)
        kwargs = {
            "kernel": pyrepr(tuple(g.kernel)),
            "stride": pyrepr(tuple(g.stride)),
            "pad": pyrepr(tuple(g.pad)),
        }
        if any(d != 1 for d in g.dilation):
            kwargs["dilation"] = pyrepr(tuple(g.dilation))
        if p.group != 1:
            kwargs["groups"] = str(p.group)
        if not p.bias_term:
            kwargs["use_bias"] = "False"
        return [
            Call(
                plan.out_vars[0],
                "caffe.CaffeDeconv2D",
                [plan.in_vars[0]],
                [gen.width(plan, p.num_output)],
                kwargs,
                name=gen.name(plan.keras_name),
            )
        ]

    # CaffeDeconv2D's kernel is (kh, kw, filters/groups, C_in); Caffe stores
    # (C_in, filters/groups, kh, kw). Same taps, no flipping.
    def to_keras(self, plan, blobs):
        return weights_with_bias(plan.keras_name, blobs[0].transpose(2, 3, 1, 0), blobs)

    def from_keras(self, plan, weights):
        v = weights[plan.keras_name]
        return blobs_with_bias(v["kernel"].transpose(3, 2, 0, 1), v)
