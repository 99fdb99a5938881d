"""Pooling: stock Keras layers when they compute exactly what Caffe computes, else CaffePooling2D.

Caffe rounds the output size up and clips windows to the (padded) image; Keras rounds down.
The two agree only without padding and when the windows tile the input exactly, which is
checked here per layer — otherwise the generated code uses ``caffe.CaffePooling2D``.
"""

from __future__ import annotations

from cocotune.convert.emitters.base import Call, Emitter, Unsupported, pyrepr
from cocotune.ir.shapes import pool_geometry


class PoolingEmitter(Emitter):
    def check(self, layer) -> None:
        p = layer.param.pooling_param
        if p.pool == p.STOCHASTIC:
            raise Unsupported(
                "STOCHASTIC pooling (Caffe implements it on the GPU only)", "pooling_param.pool"
            )
        if len(layer.outputs) > 1:
            raise Unsupported("MAX pooling with a mask top", "top")

    def calls(self, plan, gen):
        layer = plan.layer
        p = layer.param.pooling_param
        g = pool_geometry(layer, plan.in_shapes[0])
        src, out, name = plan.in_vars[0], plan.out_vars[0], gen.name(plan.keras_name)
        is_max = p.pool == p.MAX
        if g.global_pooling:
            ctor = "layers.GlobalMaxPooling2D" if is_max else "layers.GlobalAveragePooling2D"
            return [Call(out, ctor, [src], kwargs={"keepdims": "True"}, name=name)]
        _, _, h, w = plan.in_shapes[0]
        _, _, oh, ow = plan.out_shapes[0]
        tiles = not any(g.pad) and all(
            (size - k) % s == 0 and (size - k) // s + 1 == o
            for size, k, s, o in (
                (h, g.kernel[0], g.stride[0], oh),
                (w, g.kernel[1], g.stride[1], ow),
            )
        )
        if tiles:
            ctor = "layers.MaxPooling2D" if is_max else "layers.AveragePooling2D"
            kwargs = {}
            if g.stride != g.kernel:
                kwargs["strides"] = pyrepr(_pair(g.stride))
            return [Call(out, ctor, [src], [pyrepr(_pair(g.kernel))], kwargs, name=name)]
        kwargs = {
            "kernel": pyrepr(tuple(g.kernel)),
            "stride": pyrepr(tuple(g.stride)),
            "pad": pyrepr(tuple(g.pad)),
        }
        if not g.ceil:
            kwargs["ceil_mode"] = "False"
        method = '"max"' if is_max else '"ave"'
        return [Call(out, "caffe.CaffePooling2D", [src], [method], kwargs, name=name)]


def _pair(values):
    return values[0] if values[0] == values[1] else tuple(values)
