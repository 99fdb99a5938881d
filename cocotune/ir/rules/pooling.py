"""Pooling: output shapes and cost of Caffe's MAX/AVE pooling.

The window arithmetic (ceil rounding, a last window dropped in the padding, global pooling)
lives in :mod:`cocotune.ir.geometry`, where the pooling emitter reads the same windows.
"""

from __future__ import annotations

from cocotune.ir.catalogue import register
from cocotune.ir.geometry import pool_geometry, pooled_size
from cocotune.ir.net import Layer, Shape
from cocotune.ir.rule_base import Cost, per_image, prod
from cocotune.ir.rules._common import _CW


def _pooling(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    g = pool_geometry(layer, bottoms[0])
    n, c, h, w = bottoms[0]
    if g.global_pooling:
        out = (n, c, 1, 1)
    else:
        out = (
            n,
            c,
            pooled_size(h, g.kernel[0], g.stride[0], g.pad[0], g.ceil),
            pooled_size(w, g.kernel[1], g.stride[1], g.pad[1], g.ceil),
        )
    return [out] * len(layer.param.top)


def _pool_cost(layer: Layer, bottoms: list[Shape], tops: list[Shape]) -> Cost:
    g = pool_geometry(layer, bottoms[0])
    return Cost(0, per_image(tops[0]) * prod(g.kernel))


register(
    "Pooling",
    shape=_pooling,
    cost=_pool_cost,
    tops=(1, 2),
    pruning=_CW,
    description="pooling",
    emitter="PoolingEmitter",
)
