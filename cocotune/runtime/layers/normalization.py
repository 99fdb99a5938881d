"""Normalisation and per-channel affine layers: LRN, MVN and Scale/Bias (ChannelAffine).

They share one job: rescale activations by statistics or learned per-channel factors
without changing the shape. (BatchNorm itself converts to ``keras.layers.BatchNormalization``.)
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from cocotune.runtime.layers._common import _PACKAGE, _int_tuple


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LRN(keras.layers.Layer):
    """Caffe local response normalisation (CAFFE engine, ``lrn_layer.cpp``).

    * ``"across_channels"``: ``y = x / (k + alpha/n * sum_{window of n channels} x^2)^beta``;
      channels outside ``[0, C)`` count as zero (``tf.nn.local_response_normalization``).
    * ``"within_channel"``: Caffe's composition
      ``y = x * (1 + alpha * avepool_{n x n}(x^2))^-beta`` with pad ``(n-1)/2`` and stride 1;
      the divisor is always ``n^2`` (zeros outside the image) and ``k`` is not used.
      cuDNN builds of Caffe compute this mode differently; this follows the CAFFE engine.

    Args:
        local_size: Window size ``n``; must be odd.
        alpha: Scaling parameter.
        beta: Exponent.
        k: Additive constant (``across_channels`` only).
        norm_region: ``"across_channels"`` or ``"within_channel"`` (case-insensitive).
        **kwargs: Base layer arguments.

    Input shape:
        4-D tensor ``(batch, H, W, C)``.

    Output shape:
        Same as the input.
    """

    def __init__(
        self, local_size=5, alpha=1.0, beta=0.75, k=1.0, norm_region="across_channels", **kwargs
    ):
        super().__init__(**kwargs)
        if not isinstance(local_size, (int, np.integer)) or local_size <= 0 or local_size % 2 != 1:
            raise ValueError(
                f"`local_size` must be a positive odd int. Received: local_size={local_size!r}"
            )
        norm_region = str(norm_region).lower()
        if norm_region not in ("across_channels", "within_channel"):
            raise ValueError(
                "`norm_region` must be 'across_channels' or 'within_channel'. "
                f"Received: norm_region={norm_region!r}"
            )
        self.local_size = int(local_size)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.k = float(k)
        self.norm_region = norm_region

    def call(self, inputs):
        n = self.local_size
        r = (n - 1) // 2
        if self.norm_region == "across_channels":
            return tf.nn.local_response_normalization(
                inputs, depth_radius=r, bias=self.k, alpha=self.alpha / n, beta=self.beta
            )
        sq = tf.pad(tf.square(inputs), [[0, 0], [r, r], [r, r], [0, 0]])
        mean = tf.nn.avg_pool2d(sq, n, 1, "VALID")
        return inputs * tf.pow(1.0 + self.alpha * mean, -self.beta)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "local_size": self.local_size,
                "alpha": self.alpha,
                "beta": self.beta,
                "k": self.k,
                "norm_region": self.norm_region,
            }
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MVN(keras.layers.Layer):
    """Caffe mean-variance normalisation (``mvn_layer.cpp``).

    Per sample and channel (per sample if ``across_channels``):
    ``y = (x - mean) / (sqrt(mean((x - mean)^2)) + eps)``, or ``x - mean`` when
    ``normalize_variance`` is False. Note that Caffe adds ``eps`` to the standard deviation,
    not to the variance.

    Args:
        normalize_variance: Divide by the standard deviation.
        across_channels: Normalise over all of ``(H, W, C)`` instead of per channel.
        eps: Added to the standard deviation.
        **kwargs: Base layer arguments.

    Input shape:
        Tensor ``(batch, ..., C)`` of rank >= 2.

    Output shape:
        Same as the input.
    """

    def __init__(self, normalize_variance=True, across_channels=False, eps=1e-9, **kwargs):
        super().__init__(**kwargs)
        self.normalize_variance = bool(normalize_variance)
        self.across_channels = bool(across_channels)
        self.eps = float(eps)

    def call(self, inputs):
        rank = len(inputs.shape)
        axes = list(range(1, rank if self.across_channels else rank - 1))
        if not axes:  # one value per (n, c): Caffe's mean is the value itself
            centred = inputs - inputs
        else:
            centred = inputs - tf.reduce_mean(inputs, axis=axes, keepdims=True)
        if not self.normalize_variance:
            return centred
        if axes:
            std = tf.sqrt(tf.reduce_mean(tf.square(centred), axis=axes, keepdims=True))
        else:
            std = tf.abs(centred)
        return centred / (std + self.eps)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "normalize_variance": self.normalize_variance,
                "across_channels": self.across_channels,
                "eps": self.eps,
            }
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ChannelAffine(keras.layers.Layer):
    """Caffe Scale / Bias with learned parameters: ``y = x * gamma + beta``.

    Used for a Scale (``scale=True``, ``bias`` = ``bias_term``) or Bias (``scale=False``)
    layer with one bottom. ``gamma`` and ``beta`` have ``param_shape``, which broadcasts
    against the input without its batch axis (numpy rules, aligned on the right): ``(C,)``
    for Caffe's usual ``axis: 1, num_axes: 1``, ``(H, W, C)`` for a full blob, ``(H, W, 1)``
    for ``axis: 2``, ``()`` for a scalar. ``None`` means ``(C,)`` taken from the input, which
    is what a pruned network needs.

    Args:
        param_shape: Shape of ``gamma`` / ``beta`` (a tuple of ints) or ``None`` for ``(C,)``.
        scale: Create and apply ``gamma`` (initialised to ones).
        bias: Create and add ``beta`` (initialised to zeros).
        **kwargs: Base layer arguments.

    Input shape:
        Tensor ``(batch, ...)``.

    Output shape:
        Same as the input.

    Weights:
        ``gamma`` (if ``scale``) and ``beta`` (if ``bias``), both of ``param_shape``:
        Caffe's blobs reshaped/transposed to the NHWC broadcast shape.
    """

    def __init__(self, param_shape=None, scale=True, bias=True, **kwargs):
        super().__init__(**kwargs)
        if param_shape is not None:
            param_shape = _int_tuple(param_shape, "param_shape")
        if not scale and not bias:
            raise ValueError("ChannelAffine needs `scale` or `bias`. Received: both False")
        self.param_shape = param_shape
        self.scale = bool(scale)
        self.bias = bool(bias)

    def build(self, input_shape):
        shape = (input_shape[-1],) if self.param_shape is None else self.param_shape
        sample = tuple(input_shape[1:])
        ok = len(shape) <= len(sample) and all(
            p == 1 or s is None or p == s for p, s in zip(reversed(shape), reversed(sample))
        )
        if not ok:
            raise ValueError(
                f"ChannelAffine `param_shape` {shape} does not broadcast against the input "
                f"{tuple(input_shape)} (batch axis excluded)."
            )
        self._shape = tuple(int(v) for v in shape)
        if self.scale:
            self.gamma = self.add_weight(name="gamma", shape=self._shape, initializer="ones")
        if self.bias:
            self.beta = self.add_weight(name="beta", shape=self._shape, initializer="zeros")
        super().build(input_shape)

    def call(self, inputs):
        y = inputs
        if self.scale:
            y = y * tf.cast(self.gamma, y.dtype)
        if self.bias:
            y = y + tf.cast(self.beta, y.dtype)
        return y

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "param_shape": None if self.param_shape is None else list(self.param_shape),
                "scale": self.scale,
                "bias": self.bias,
            }
        )
        return config
