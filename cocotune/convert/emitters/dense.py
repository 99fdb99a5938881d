"""InnerProduct and Embed, and Caffe's flatten order.

Caffe flattens (C, H, W); the model holds rank-4 blobs as (H, W, C). Rather than transpose
activations at run time, the InnerProduct's weight columns are permuted once at import.
"""

from __future__ import annotations

import numpy as np

from cocotune.convert.emitters.base import (
    Call,
    Emitter,
    LayerPlan,
    Unsupported,
    blobs_with_bias,
    pyrepr,
    weights_with_bias,
)
from cocotune.convert.layout import PLAIN


def hwc_columns(w: np.ndarray, chw: tuple[int, int, int]) -> np.ndarray:
    """Caffe weights (N, C*H*W) → Keras kernel rows in (H, W, C) order: shape (H*W*C, N).

    ``chw`` gives H and W; C follows from the weights (it shrinks when the producer is pruned).
    """
    n, k = w.shape
    _, h, wd = chw
    c = k // (h * wd)
    return w.reshape(n, c, h, wd).transpose(2, 3, 1, 0).reshape(h * wd * c, n)


def chw_columns(kernel: np.ndarray, chw: tuple[int, int, int]) -> np.ndarray:
    """The inverse of :func:`hwc_columns`: Keras (H*W*C, N) → Caffe (N, C*H*W)."""
    k, n = kernel.shape
    _, h, wd = chw
    c = k // (h * wd)
    return kernel.reshape(h, wd, c, n).transpose(3, 2, 0, 1).reshape(n, c * h * wd)


class InnerProductEmitter(Emitter):
    def check(self, layer) -> None:
        p = layer.param.inner_product_param
        rank = len(layer.inputs[0].shape)
        axis = p.axis % rank
        if rank == 4 and axis != 1:
            raise Unsupported(
                "InnerProduct on a 4-axis blob with axis != 1", "inner_product_param.axis"
            )
        if rank not in (2, 4) and axis != rank - 1:
            raise Unsupported(
                f"InnerProduct with axis {p.axis} on a {rank}-axis blob", "inner_product_param.axis"
            )

    def has_weights(self, plan) -> bool:
        return True

    def out_layouts(self, plan):
        return [PLAIN]

    def _chw(self, plan: LayerPlan) -> tuple[int, int, int] | None:
        """(C, H, W) when the Keras input is in (H, W, C) order, else None."""
        layout = plan.in_layouts[0]
        if layout.kind == "hwc_flat":
            return layout.chw
        if layout.kind == "nhwc":
            shape = plan.in_shapes[0]  # (N, C, H, W)
            return (shape[1], shape[2], shape[3])
        return None

    def calls(self, plan, gen):
        p = plan.layer.param.inner_product_param
        src, out = plan.in_vars[0], plan.out_vars[0]
        calls = []
        if plan.in_layouts[0].kind == "nhwc":
            calls.append(
                Call(out, "layers.Flatten", [src], name=gen.name(plan.keras_name + "_flatten"))
            )
            src = out
        kwargs = {} if p.bias_term else {"use_bias": "False"}
        calls.append(
            Call(
                out,
                "layers.Dense",
                [src],
                [gen.width(plan, p.num_output)],
                kwargs,
                name=gen.name(plan.keras_name),
            )
        )
        return calls

    def to_keras(self, plan, blobs):
        w = blobs[0]
        if plan.layer.param.inner_product_param.transpose:
            w = w.T  # stored (K, N)
        chw = self._chw(plan)
        kernel = hwc_columns(w, chw) if chw else w.T
        return weights_with_bias(plan.keras_name, kernel, blobs)

    def from_keras(self, plan, weights):
        v = weights[plan.keras_name]
        chw = self._chw(plan)
        w = chw_columns(v["kernel"], chw) if chw else v["kernel"].T
        if plan.layer.param.inner_product_param.transpose:
            w = w.T
        return blobs_with_bias(w, v)


class EmbedEmitter(Emitter):
    def has_weights(self, plan) -> bool:
        return True

    def out_layouts(self, plan):
        return [PLAIN]

    def calls(self, plan, gen):
        p = plan.layer.param.embed_param
        kwargs = {} if p.bias_term else {"use_bias": "False"}
        return [
            Call(
                plan.out_vars[0],
                "caffe.Embed",
                [plan.in_vars[0]],
                [pyrepr(p.input_dim), pyrepr(p.num_output)],
                kwargs,
                name=gen.name(plan.keras_name),
            )
        ]

    def to_keras(self, plan, blobs):
        out = {"embeddings": blobs[0]}
        if len(blobs) > 1:
            out["bias"] = blobs[1]
        return {plan.keras_name: out}

    def from_keras(self, plan, weights):
        v = weights[plan.keras_name]
        return [v["embeddings"]] + ([v["bias"]] if "bias" in v else [])
