"""Caffe's element-wise ("neuron") layers that take parameters Keras' activations lack.

Power, Exp, Log, BNLL, Threshold, AbsVal, Clip and Swish: shape-preserving, no weights,
each computing Caffe's formula (including its special cases, e.g. Power with
``power * scale == 0``). ReLU, ELU, PReLU, Sigmoid and TanH convert to stock Keras.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from cocotune.runtime.layers._common import _PACKAGE


class _Elementwise(keras.layers.Layer):
    """Base for shape-preserving layers without weights."""

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Power(_Elementwise):
    """Caffe Power: ``y = (shift + scale * x) ^ power``.

    As in Caffe, when ``power * scale == 0`` the output is the constant ``1`` (``power == 0``)
    or ``shift ^ power``.

    Args:
        power: Exponent.
        scale: Input scale.
        shift: Input shift.
        **kwargs: Base layer arguments.

    Input shape:
        Any.

    Output shape:
        Same as the input.
    """

    def __init__(self, power=1.0, scale=1.0, shift=0.0, **kwargs):
        super().__init__(**kwargs)
        self.power = float(power)
        self.scale = float(scale)
        self.shift = float(shift)

    def call(self, inputs):
        p, s, t = self.power, self.scale, self.shift
        if p * s == 0:
            with np.errstate(all="ignore"):
                value = 1.0 if p == 0 else float(np.power(np.float64(t), p))
            return tf.fill(tf.shape(inputs), tf.constant(value, inputs.dtype))
        y = inputs
        if s != 1.0:
            y = y * s
        if t != 0.0:
            y = y + t
        if p == 2.0:
            return tf.square(y)
        if p != 1.0:
            y = tf.pow(y, p)
        return y

    def get_config(self):
        config = super().get_config()
        config.update({"power": self.power, "scale": self.scale, "shift": self.shift})
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CaffeExp(_Elementwise):
    """Caffe Exp: ``y = base ^ (shift + scale * x)``; ``base = -1`` means ``e``.

    Computed as Caffe does: ``exp(log(base) * scale * x) * base^shift``.

    Args:
        base: Positive base, or -1 for ``e``.
        scale: Input scale.
        shift: Input shift.
        **kwargs: Base layer arguments.

    Input shape:
        Any.

    Output shape:
        Same as the input.
    """

    def __init__(self, base=-1.0, scale=1.0, shift=0.0, **kwargs):
        super().__init__(**kwargs)
        base = float(base)
        if base != -1.0 and base <= 0:
            raise ValueError(f"`base` must be positive or -1 (for e). Received: base={base}")
        self.base = base
        self.scale = float(scale)
        self.shift = float(shift)
        log_base = 1.0 if base == -1.0 else math.log(base)
        self._inner = log_base * self.scale
        if self.shift == 0.0:
            self._outer = 1.0
        else:
            self._outer = math.exp(self.shift) if base == -1.0 else base**self.shift

    def call(self, inputs):
        y = inputs if self._inner == 1.0 else inputs * self._inner
        y = tf.exp(y)
        return y if self._outer == 1.0 else y * self._outer

    def get_config(self):
        config = super().get_config()
        config.update({"base": self.base, "scale": self.scale, "shift": self.shift})
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CaffeLog(_Elementwise):
    """Caffe Log: ``y = log_base(shift + scale * x)``; ``base = -1`` means ``e``.

    Args:
        base: Positive base other than 1, or -1 for ``e``.
        scale: Input scale.
        shift: Input shift.
        **kwargs: Base layer arguments.

    Input shape:
        Any.

    Output shape:
        Same as the input.
    """

    def __init__(self, base=-1.0, scale=1.0, shift=0.0, **kwargs):
        super().__init__(**kwargs)
        base = float(base)
        if base != -1.0 and (base <= 0 or base == 1.0):
            raise ValueError(
                f"`base` must be positive and not 1, or -1 (for e). Received: base={base}"
            )
        self.base = base
        self.scale = float(scale)
        self.shift = float(shift)
        self._base_scale = 1.0 if base == -1.0 else 1.0 / math.log(base)

    def call(self, inputs):
        y = inputs
        if self.scale != 1.0:
            y = y * self.scale
        if self.shift != 0.0:
            y = y + self.shift
        y = tf.math.log(y)
        return y if self._base_scale == 1.0 else y * self._base_scale

    def get_config(self):
        config = super().get_config()
        config.update({"base": self.base, "scale": self.scale, "shift": self.shift})
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BNLL(_Elementwise):
    """Caffe BNLL: ``log(1 + exp(x))``, computed stably as
    ``max(x, 0) + log1p(exp(-|x|))`` (Caffe: ``x + log(1 + exp(-x))`` for ``x > 0``).

    Input shape:
        Any.

    Output shape:
        Same as the input.
    """

    def call(self, inputs):
        return tf.nn.relu(inputs) + tf.math.log1p(tf.exp(-tf.abs(inputs)))


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Threshold(_Elementwise):
    """Caffe Threshold: ``1`` where ``x > threshold`` (strictly), else ``0``.

    Args:
        threshold: The threshold.
        **kwargs: Base layer arguments.

    Input shape:
        Any.

    Output shape:
        Same as the input.
    """

    def __init__(self, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        self.threshold = float(threshold)

    def call(self, inputs):
        return tf.cast(inputs > self.threshold, inputs.dtype)

    def get_config(self):
        config = super().get_config()
        config.update({"threshold": self.threshold})
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class AbsVal(_Elementwise):
    """Caffe AbsVal: ``|x|``.

    Input shape:
        Any.

    Output shape:
        Same as the input.
    """

    def call(self, inputs):
        return tf.abs(inputs)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Clip(_Elementwise):
    """Caffe Clip: ``max(min, min(x, max))`` (no check that ``min <= max``, like Caffe's
    formula: if ``min > max`` the output is ``min``).

    Args:
        min: Lower bound.
        max: Upper bound.
        **kwargs: Base layer arguments.

    Input shape:
        Any.

    Output shape:
        Same as the input.
    """

    def __init__(self, min, max, **kwargs):
        super().__init__(**kwargs)
        self.min = float(min)
        self.max = float(max)

    def call(self, inputs):
        return tf.maximum(tf.minimum(inputs, self.max), self.min)

    def get_config(self):
        config = super().get_config()
        config.update({"min": self.min, "max": self.max})
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Swish(_Elementwise):
    """Caffe Swish: ``x * sigmoid(beta * x)``.

    Args:
        beta: Slope inside the sigmoid.
        **kwargs: Base layer arguments.

    Input shape:
        Any.

    Output shape:
        Same as the input.
    """

    def __init__(self, beta=1.0, **kwargs):
        super().__init__(**kwargs)
        self.beta = float(beta)

    def call(self, inputs):
        z = inputs if self.beta == 1.0 else inputs * self.beta
        return inputs * tf.sigmoid(z)

    def get_config(self):
        config = super().get_config()
        config.update({"beta": self.beta})
        return config
