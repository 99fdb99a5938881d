"""Keras 3 layers that compute exactly what a Caffe layer computes, in NHWC.

Generated models use stock Keras layers wherever those already match Caffe (Conv2D after an
explicit ZeroPadding2D, DepthwiseConv2D, Dense, BatchNormalization, ReLU/LeakyReLU/ELU/PReLU,
Softmax, Add/Multiply/Maximum, Concatenate, GlobalAveragePooling2D). The layers here cover the
rest. Conventions shared by all of them:

* Tensors are channels-last: the Caffe channel axis 1 is axis -1 here, and a Caffe 4-D blob
  ``(N, C, H, W)`` is the tensor ``(N, H, W, C)``.
* Constructor arguments use Caffe's names and meanings (``kernel``, ``stride``, ``pad`` as
  ``(h, w)`` pairs, ``ceil_mode``, ``local_size``...). Axis arguments are axes of the NHWC
  tensor; the generator maps Caffe's axes to them.
* Spatial sizes must be static (Caffe shapes are); the batch size may be unknown.
* Constants (pooling divisors, permutations) are computed with numpy in ``build()``.

Every layer is registered as ``cocotune>Name`` so that saved ``.keras`` models load back with
``import cocotune.runtime.layers`` and no ``custom_objects``; the registered name does not
depend on the module a class lives in.

One module per family (what each holds and why is in its docstring): ``pooling``,
``normalization`` (LRN, MVN, ChannelAffine), ``eltwise`` (WeightedSum, Axpy), ``activations``
(Caffe's parameterised neuron layers), ``deconvolution``, ``reduction`` (ArgMax, Reduction),
``indexing`` (slices, crop, tile, channel shuffle), ``embedding``; ``_common`` holds the
argument checks they share. Generated code uses this package only as
``from cocotune.runtime import layers as caffe`` and ``caffe.Name``.
"""

from __future__ import annotations

from cocotune.runtime.layers.activations import (
    BNLL,
    AbsVal,
    CaffeExp,
    CaffeLog,
    Clip,
    Power,
    Swish,
    Threshold,
)
from cocotune.runtime.layers.deconvolution import CaffeDeconv2D
from cocotune.runtime.layers.eltwise import Axpy, WeightedSum
from cocotune.runtime.layers.embedding import Embed
from cocotune.runtime.layers.indexing import CaffeTile, ShuffleChannel, SliceAxis, StaticSlice
from cocotune.runtime.layers.normalization import LRN, MVN, ChannelAffine
from cocotune.runtime.layers.pooling import CaffePooling2D
from cocotune.runtime.layers.reduction import ArgMax, Reduction

__all__ = [
    "CaffePooling2D",
    "LRN",
    "ChannelAffine",
    "WeightedSum",
    "ShuffleChannel",
    "Axpy",
    "Power",
    "CaffeExp",
    "CaffeLog",
    "BNLL",
    "Threshold",
    "AbsVal",
    "Clip",
    "Swish",
    "CaffeDeconv2D",
    "ArgMax",
    "Reduction",
    "SliceAxis",
    "StaticSlice",
    "CaffeTile",
    "Embed",
    "MVN",
]
