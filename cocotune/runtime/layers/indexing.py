"""Layers that only select, repeat or reorder entries: Slice, Crop, Tile, ShuffleChannel.

No arithmetic happens here; what they share is index bookkeeping on NHWC axes that the
generator has already mapped from Caffe's NCHW axes (one Slice top is one
:class:`SliceAxis`, a Crop is a :class:`StaticSlice` box).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from cocotune.runtime.layers._common import _PACKAGE, _canonical_axis, _int_tuple


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SliceAxis(keras.layers.Layer):
    """One top of Caffe Slice: ``x[..., begin:begin + size, ...]`` along one NHWC axis.

    Args:
        axis: NHWC axis (not the batch axis; negative counts from the end).
        begin: First index (>= 0).
        size: Number of entries, or -1 for "to the end".
        **kwargs: Base layer arguments.

    Input shape:
        Tensor ``(batch, ...)`` with a static ``axis``.

    Output shape:
        The input shape with ``shape[axis] = size``.
    """

    def __init__(self, axis, begin, size=-1, **kwargs):
        super().__init__(**kwargs)
        for name, v in (("axis", axis), ("begin", begin), ("size", size)):
            if not isinstance(v, (int, np.integer)):
                raise ValueError(f"`{name}` must be an int. Received: {name}={v!r}")
        if begin < 0 or (size < 1 and size != -1):
            raise ValueError(
                f"`begin` must be >= 0 and `size` >= 1 or -1. Received: begin={begin}, size={size}"
            )
        self.axis = int(axis)
        self.begin = int(begin)
        self.size = int(size)

    def _resolve(self, input_shape):
        axis = _canonical_axis(self.axis, len(input_shape))
        dim = input_shape[axis]
        end = dim if self.size == -1 else self.begin + self.size
        if dim is None or end is None or end > dim or self.begin >= end:
            raise ValueError(
                f"SliceAxis begin={self.begin}, size={self.size} does not fit axis {axis} of "
                f"input {tuple(input_shape)}."
            )
        return axis, end

    def call(self, inputs):
        axis, end = self._resolve(inputs.shape)
        index = [slice(None)] * len(inputs.shape)
        index[axis] = slice(self.begin, end)
        return inputs[tuple(index)]

    def compute_output_shape(self, input_shape):
        axis, end = self._resolve(input_shape)
        shape = list(input_shape)
        shape[axis] = end - self.begin
        return tuple(shape)

    def get_config(self):
        config = super().get_config()
        config.update({"axis": self.axis, "begin": self.begin, "size": self.size})
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class StaticSlice(keras.layers.Layer):
    """A static box ``x[:, b0:b0+s0, b1:b1+s1, ...]`` over every non-batch axis (Caffe Crop).

    For Caffe Crop the generator maps the per-axis offsets and the reference blob's sizes to
    NHWC order; uncropped axes get ``begin = 0, size = -1``.

    Args:
        begin: One start index per non-batch axis (>= 0).
        size: One size per non-batch axis; -1 means "to the end".
        **kwargs: Base layer arguments.

    Input shape:
        Tensor ``(batch, d1, ..., dk)`` with ``k == len(begin)``.

    Output shape:
        ``(batch, s1, ..., sk)``.
    """

    def __init__(self, begin, size, **kwargs):
        super().__init__(**kwargs)
        begin = _int_tuple(begin, "begin")
        size = _int_tuple(size, "size")
        if len(begin) != len(size):
            raise ValueError(
                f"`begin` and `size` must have one entry per non-batch axis. "
                f"Received: begin={begin}, size={size}"
            )
        if any(b < 0 for b in begin) or any(s < 1 and s != -1 for s in size):
            raise ValueError(
                f"`begin` must be >= 0 and `size` >= 1 or -1. Received: begin={begin}, size={size}"
            )
        self.begin = begin
        self.size = size

    def _ends(self, input_shape):
        dims = tuple(input_shape[1:])
        if len(dims) != len(self.begin):
            raise ValueError(
                f"StaticSlice has {len(self.begin)} axes but the input {tuple(input_shape)} "
                f"has {len(dims)} non-batch axes."
            )
        ends = []
        for b, s, d in zip(self.begin, self.size, dims):
            end = d if s == -1 else b + s
            if d is None or end is None or end > d or b >= end:
                raise ValueError(
                    f"StaticSlice begin={self.begin}, size={self.size} does not fit input "
                    f"{tuple(input_shape)}."
                )
            ends.append(end)
        return ends

    def call(self, inputs):
        ends = self._ends(inputs.shape)
        return inputs[(slice(None),) + tuple(slice(b, e) for b, e in zip(self.begin, ends))]

    def compute_output_shape(self, input_shape):
        ends = self._ends(input_shape)
        return (input_shape[0],) + tuple(e - b for b, e in zip(self.begin, ends))

    def get_config(self):
        config = super().get_config()
        config.update({"begin": list(self.begin), "size": list(self.size)})
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CaffeTile(keras.layers.Layer):
    """Caffe Tile: ``tiles`` copies of the input concatenated along ``axis``.

    Tiling along one axis does not depend on the memory order, so the Caffe axis maps
    directly to its NHWC axis.

    Args:
        axis: NHWC axis (not the batch axis).
        tiles: Number of copies (>= 1).
        **kwargs: Base layer arguments.

    Input shape:
        Tensor ``(batch, ...)``.

    Output shape:
        The input shape with ``shape[axis]`` multiplied by ``tiles``.
    """

    def __init__(self, axis, tiles, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(tiles, (int, np.integer)) or tiles <= 0:
            raise ValueError(f"`tiles` must be a positive int. Received: tiles={tiles!r}")
        if not isinstance(axis, (int, np.integer)):
            raise ValueError(f"`axis` must be an int. Received: axis={axis!r}")
        self.axis = int(axis)
        self.tiles = int(tiles)

    def call(self, inputs):
        rank = len(inputs.shape)
        axis = _canonical_axis(self.axis, rank)
        multiples = [1] * rank
        multiples[axis] = self.tiles
        return tf.tile(inputs, multiples)

    def compute_output_shape(self, input_shape):
        axis = _canonical_axis(self.axis, len(input_shape))
        shape = list(input_shape)
        shape[axis] = None if shape[axis] is None else shape[axis] * self.tiles
        return tuple(shape)

    def get_config(self):
        config = super().get_config()
        config.update({"axis": self.axis, "tiles": self.tiles})
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ShuffleChannel(keras.layers.Layer):
    """ShuffleNet-fork channel shuffle on the last (channel) axis.

    Caffe views the channels as a ``(group, C/group)`` matrix and transposes it: input channel
    ``i * (C/group) + j`` becomes output channel ``j * group + i``. Implemented as one gather
    with a permutation computed at build time.

    Args:
        group: Number of groups; must divide ``C``.
        **kwargs: Base layer arguments.

    Input shape:
        Tensor ``(batch, ..., C)`` with static ``C``.

    Output shape:
        Same as the input.
    """

    def __init__(self, group, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(group, (int, np.integer)) or group <= 0:
            raise ValueError(f"`group` must be a positive int. Received: group={group!r}")
        self.group = int(group)

    def build(self, input_shape):
        c = input_shape[-1]
        if c is None or c % self.group:
            raise ValueError(
                f"ShuffleChannel: channels ({c}) must be static and divisible by "
                f"group={self.group}."
            )
        # output channel o = j*g + i takes input channel i*(C/g) + j
        self._perm = np.arange(c).reshape(self.group, c // self.group).T.reshape(-1)
        super().build(input_shape)

    def call(self, inputs):
        if self.group == 1:
            return inputs
        return tf.gather(inputs, self._perm, axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"group": self.group})
        return config
