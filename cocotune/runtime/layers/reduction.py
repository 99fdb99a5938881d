"""Layers that reduce along axes: ArgMax (top-k indices or values) and Reduction.

Both follow Caffe's exact conventions where TensorFlow differs: ArgMax breaks ties
toward the larger index and returns indices as floats; Reduction's SUM/ASUM/SUMSQ/MEAN
over the axes the generator maps from Caffe's trailing axes, times ``coeff``.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from cocotune.runtime.layers._common import _PACKAGE, _canonical_axis, _int_tuple


def _top_k_larger_index_first(x, k):
    """top_k along the last axis, ties to the larger index (Caffe's order)."""
    size = x.shape[-1]
    values, idx = tf.math.top_k(tf.reverse(x, axis=[-1]), k=k, sorted=True)
    return values, (size - 1) - idx


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ArgMax(keras.layers.Layer):
    """Caffe ArgMax (``argmax_layer.cpp``); indices are returned as floats, like Caffe.

    Ranking is by value, descending; ties go to the *larger* index (Caffe sorts
    ``(value, index)`` pairs in descending order).

    * ``axis`` given (an axis of the NHWC tensor, not 0): the output is the input shape with
      ``shape[axis] = top_k``, holding the indices, or the values if ``out_max_val``.
    * ``axis=None``: each sample is flattened *in the tensor's own order* (the generator moves
      a 4-D NHWC tensor to Caffe's channels-first order first) and the output is
      ``(batch, 1, top_k)`` indices, or ``(batch, 2, top_k)`` with indices in row 0 and values
      in row 1 if ``out_max_val``. This is Caffe's ``(N, 1|2, top_k)`` blob without the
      trailing 1-axes Caffe adds for inputs of rank > 3.

    Args:
        top_k: Number of entries to return.
        out_max_val: See above.
        axis: NHWC axis or ``None``.
        **kwargs: Base layer arguments.

    Input shape:
        Tensor ``(batch, ...)`` with static non-batch dims.

    Output shape:
        See above.
    """

    def __init__(self, top_k=1, out_max_val=False, axis=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(top_k, (int, np.integer)) or top_k <= 0:
            raise ValueError(f"`top_k` must be a positive int. Received: top_k={top_k!r}")
        if axis is not None and not isinstance(axis, (int, np.integer)):
            raise ValueError(f"`axis` must be an int or None. Received: axis={axis!r}")
        self.top_k = int(top_k)
        self.out_max_val = bool(out_max_val)
        self.axis = None if axis is None else int(axis)

    def _check(self, input_shape):
        rank = len(input_shape)
        if self.axis is None:
            dims = input_shape[1:]
            if any(d is None for d in dims):
                raise ValueError(f"ArgMax needs static non-batch dims. Received: {input_shape}")
            size = int(np.prod(dims))
            axis = None
        else:
            axis = _canonical_axis(self.axis, rank)
            size = input_shape[axis]
        if size is None or self.top_k > size:
            raise ValueError(
                f"ArgMax `top_k`={self.top_k} exceeds the {size} entries of input {input_shape}."
            )
        return axis, size

    def call(self, inputs):
        axis, size = self._check(inputs.shape)
        k = self.top_k
        if axis is None:
            flat = tf.reshape(inputs, (-1, size))
            values, idx = _top_k_larger_index_first(flat, k)
            idx = tf.cast(idx, inputs.dtype)
            if self.out_max_val:
                return tf.stack([idx, values], axis=1)
            return idx[:, None, :]
        rank = len(inputs.shape)
        # swap ``axis`` with the last axis (a permutation that is its own inverse)
        perm = list(range(rank))
        perm[axis], perm[-1] = perm[-1], perm[axis]
        moved = inputs if axis == rank - 1 else tf.transpose(inputs, perm)
        values, idx = _top_k_larger_index_first(moved, k)
        out = values if self.out_max_val else tf.cast(idx, inputs.dtype)
        return out if axis == rank - 1 else tf.transpose(out, perm)

    def compute_output_shape(self, input_shape):
        axis, _ = self._check(input_shape)
        if axis is None:
            return (input_shape[0], 2 if self.out_max_val else 1, self.top_k)
        shape = list(input_shape)
        shape[axis] = self.top_k
        return tuple(shape)

    def get_config(self):
        config = super().get_config()
        config.update({"top_k": self.top_k, "out_max_val": self.out_max_val, "axis": self.axis})
        return config


_REDUCTIONS = ("sum", "asum", "sumsq", "mean")


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Reduction(keras.layers.Layer):
    """Caffe Reduction (``reduction_layer.cpp``) over a set of NHWC axes, times ``coeff``.

    Caffe reduces every axis from ``axis`` on; the generator passes the corresponding set of
    NHWC axes (sums and means do not depend on the order). The reduced axes are removed, so the
    remaining axes keep their NHWC order -- which differs from Caffe's blob order only when
    both C and a spatial axis remain (Caffe ``axis: 3``); the generator handles that case.
    The batch axis cannot be reduced (Caffe's default ``axis: 0`` gives a 0-D blob).

    Args:
        operation: ``"sum"``, ``"asum"`` (sum of ``|x|``), ``"sumsq"`` or ``"mean"``.
        axes: Non-empty sequence of NHWC axes (not 0; negative values count from the end).
        coeff: Output scale.
        **kwargs: Base layer arguments.

    Input shape:
        Tensor ``(batch, ...)``.

    Output shape:
        The input shape without ``axes``.
    """

    def __init__(self, operation="sum", axes=(-1,), coeff=1.0, **kwargs):
        super().__init__(**kwargs)
        operation = str(operation).lower()
        if operation not in _REDUCTIONS:
            raise ValueError(
                f"`operation` must be one of {_REDUCTIONS}. Received: operation={operation!r}"
            )
        axes = _int_tuple(axes, "axes")
        if not axes:
            raise ValueError("`axes` must not be empty. Received: axes=()")
        self.operation = operation
        self.axes = axes
        self.coeff = float(coeff)

    def _axes(self, rank):
        axes = sorted({_canonical_axis(a, rank, "axes") for a in self.axes})
        if len(axes) != len(self.axes):
            raise ValueError(f"`axes` has duplicates. Received: axes={self.axes}")
        return axes

    def call(self, inputs):
        axes = self._axes(len(inputs.shape))
        x = inputs
        if self.operation == "asum":
            x = tf.abs(x)
        elif self.operation == "sumsq":
            x = tf.square(x)
        if self.operation == "mean":
            y = tf.reduce_mean(x, axis=axes)
        else:
            y = tf.reduce_sum(x, axis=axes)
        return y if self.coeff == 1.0 else y * self.coeff

    def compute_output_shape(self, input_shape):
        axes = self._axes(len(input_shape))
        return tuple(d for i, d in enumerate(input_shape) if i not in axes)

    def get_config(self):
        config = super().get_config()
        config.update({"operation": self.operation, "axes": list(self.axes), "coeff": self.coeff})
        return config
