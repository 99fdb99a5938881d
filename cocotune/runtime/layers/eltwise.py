"""Layers that combine several inputs element by element: weighted Eltwise SUM and Axpy.

Plain Eltwise SUM/PROD/MAX convert to ``keras.layers.Add``/``Multiply``/``Maximum``; these
two cover what those cannot (per-input coefficients, the SENet fork's ``a * x + y``).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from cocotune.runtime.layers._common import _PACKAGE


@keras.saving.register_keras_serializable(package=_PACKAGE)
class WeightedSum(keras.layers.Layer):
    """Caffe Eltwise SUM with coefficients: ``y = sum_i coefficients[i] * inputs[i]``.

    (Eltwise SUM without coefficients is ``keras.layers.Add``.)

    Args:
        coefficients: One float per input.
        **kwargs: Base layer arguments.

    Input shape:
        A list of tensors of one shape.

    Output shape:
        That shape.
    """

    def __init__(self, coefficients, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(coefficients, Sequence) or len(coefficients) < 1:
            raise ValueError(
                f"`coefficients` must be a non-empty list of floats. Received: {coefficients!r}"
            )
        self.coefficients = tuple(float(c) for c in coefficients)

    def _check(self, input_shapes):
        if not isinstance(input_shapes, (list, tuple)) or len(input_shapes) != len(
            self.coefficients
        ):
            raise ValueError(
                f"WeightedSum with {len(self.coefficients)} coefficients needs as many inputs. "
                f"Received: {input_shapes}"
            )

    def build(self, input_shape):
        self._check(input_shape)
        super().build(input_shape)

    def call(self, inputs):
        y = None
        for c, x in zip(self.coefficients, inputs):
            term = x if c == 1.0 else x * c
            y = term if y is None else y + term
        return y

    def compute_output_shape(self, input_shape):
        self._check(input_shape)
        return tuple(input_shape[0])

    def get_config(self):
        config = super().get_config()
        config.update({"coefficients": list(self.coefficients)})
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Axpy(keras.layers.Layer):
    """SENet-fork Axpy: inputs ``[a, x, y]``, output ``a * x + y``.

    ``a`` holds one scalar per (sample, channel): ``(batch, 1, 1, C)`` (Caffe's
    ``(N, C, 1, 1)``) or ``(batch, C)``, which is expanded to broadcast against ``x``.

    Input shape:
        ``[a, x, y]`` with ``x`` and ``y`` of one shape ``(batch, ..., C)``.

    Output shape:
        The shape of ``x``.
    """

    def call(self, inputs):
        a, x, y = inputs
        rank = len(x.shape)
        while len(a.shape) < rank:
            a = tf.expand_dims(a, 1)
        return a * x + y

    def compute_output_shape(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 3:
            raise ValueError(f"Axpy needs three inputs [a, x, y]. Received: {input_shape}")
        return tuple(input_shape[1])
