"""Element-wise activations: ReLU, the other neuron types (ELU, Power...), Dropout, PReLU.

Same shape in, same shape out, channel-wise for pruning; only PReLU stores a learned blob.
"""

from __future__ import annotations

from cocotune.ir import random_init
from cocotune.ir.catalogue import BlobSpec, register
from cocotune.ir.net import Layer, Shape
from cocotune.ir.rule_base import Cost, fail, fmt_shape
from cocotune.ir.rules._common import _CW, _channels, _same_shape

register(
    "ReLU",
    shape=_same_shape,
    pruning=_CW,
    description="rectifier (negative_slope)",
    emitter="ReLUEmitter",
)
for _type, _desc in {
    "ELU": "exponential linear unit",
    "Sigmoid": "logistic sigmoid",
    "TanH": "hyperbolic tangent",
    "Power": "(shift + scale*x)^power",
    "AbsVal": "absolute value",
    "BNLL": "log(1 + exp(x))",
    "Exp": "base^(shift + scale*x)",
    "Log": "log_base(shift + scale*x)",
    "Threshold": "x > threshold",
    "Clip": "clip to [min, max]",
    "Swish": "x * sigmoid(beta*x)",
    "Dropout": "dropout (identity at test time)",
}.items():
    register(_type, shape=_same_shape, pruning=_CW, description=_desc, emitter="SimpleEmitter")


def _prelu_shape(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    if len(bottoms[0]) < 2:
        raise fail(f"PReLU needs an input with a channel axis, got {fmt_shape(bottoms[0])}")
    return [bottoms[0]]


register(
    "PReLU",
    shape=_prelu_shape,
    # A channel-shared slope is a 0-axis blob, exactly as Caffe allocates it.
    blobs=lambda layer, b: [
        BlobSpec("slope", () if layer.param.prelu_param.channel_shared else (b[0][1],))
    ],
    init=random_init.prelu,
    cost=lambda layer, b, t: Cost(1 if layer.param.prelu_param.channel_shared else _channels(b[0])),
    pruning=_CW,
    description="parametric rectifier",
    emitter="PReLUEmitter",
)
