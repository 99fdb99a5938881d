"""What shape rules of several families share: the same-shape rule, channel counts, bias blobs."""

from __future__ import annotations

from cocotune.ir.catalogue import CHANNELWISE, BlobSpec, PruningRole
from cocotune.ir.net import Layer, Shape

#: The pruning role of a layer whose output channel c reads only input channel c.
_CW = PruningRole(CHANNELWISE)


def _same_shape(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    return [bottoms[0]] * max(len(layer.param.top), 1)


def _channels(shape: Shape) -> int:
    return shape[1] if len(shape) > 1 else 1


def _with_bias(weights: BlobSpec, param) -> list[BlobSpec]:
    return [weights] + ([BlobSpec("bias", (param.num_output,))] if param.bias_term else [])
