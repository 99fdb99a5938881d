"""Fully connected layers: InnerProduct and the Embed lookup table.

Both store a ``(num_output, K)``-style matrix (plus a bias) and flatten or index their input.
"""

from __future__ import annotations

from cocotune.ir import random_init
from cocotune.ir.catalogue import PRODUCER, BlobSpec, PruningRole, register
from cocotune.ir.net import Layer, Shape
from cocotune.ir.rule_base import Cost, canonical_axis, fail, prod
from cocotune.ir.rules._common import _with_bias


def _ip_shape(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    p = layer.param.inner_product_param
    if p.num_output <= 0:
        raise fail("num_output must be positive", "inner_product_param.num_output")
    axis = canonical_axis(p.axis, len(bottoms[0]), "inner_product_param.axis")
    return [tuple(bottoms[0][:axis]) + (p.num_output,)]


def _ip_cost(layer: Layer, bottoms: list[Shape], tops: list[Shape]) -> Cost:
    p = layer.param.inner_product_param
    axis = canonical_axis(p.axis, len(bottoms[0]), "inner_product_param.axis")
    k = prod(bottoms[0][axis:])
    params = k * p.num_output + (p.num_output if p.bias_term else 0)
    rows = prod(bottoms[0][:axis]) // max(bottoms[0][0], 1) if axis > 0 else 1
    return Cost(params, rows * k * p.num_output)


def _ip_blobs(layer: Layer, bottoms: list[Shape]) -> list[BlobSpec]:
    p = layer.param.inner_product_param
    x = bottoms[0]
    k = prod(x[canonical_axis(p.axis, len(x)) :])
    return _with_bias(
        BlobSpec("weights", (k, p.num_output) if p.transpose else (p.num_output, k)), p
    )


register(
    "InnerProduct",
    shape=_ip_shape,
    cost=_ip_cost,
    blobs=_ip_blobs,
    init=random_init.he_normal(
        lambda layer, w: w[0] if layer.param.inner_product_param.transpose else w[1]
    ),
    bias_field="inner_product_param.bias_term",
    description="fully connected",
    pruning=PruningRole(
        PRODUCER,
        axis="inner_product_param.axis",
        filters="inner_product_param.num_output",
        off_axis="flattens from a non-channel axis",
    ),
    emitter="InnerProductEmitter",
)


def _embed_shape(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    p = layer.param.embed_param
    if p.num_output <= 0 or p.input_dim <= 0:
        raise fail("embed_param needs positive num_output and input_dim", "embed_param")
    return [tuple(bottoms[0]) + (p.num_output,)]


register(
    "Embed",
    shape=_embed_shape,
    blobs=lambda layer, b: _with_bias(
        BlobSpec(
            "weights", (layer.param.embed_param.input_dim, layer.param.embed_param.num_output)
        ),
        layer.param.embed_param,
    ),
    # Rows are looked up, not summed: keep entries O(1/sqrt(dim)).
    init=random_init.he_normal(lambda layer, w: w[1]),
    bias_field="embed_param.bias_term",
    cost=lambda layer, b, t: Cost(
        layer.param.embed_param.input_dim * layer.param.embed_param.num_output
        + (layer.param.embed_param.num_output if layer.param.embed_param.bias_term else 0),
        0,
    ),
    description="embedding lookup",
    emitter="EmbedEmitter",
)
