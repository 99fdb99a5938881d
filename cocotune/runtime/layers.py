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
``import cocotune.runtime.layers`` and no ``custom_objects``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

__all__ = [
    "caffe_pool_output_size",
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

_PACKAGE = "cocotune"


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def _pair(value, name: str) -> tuple[int, int]:
    """An int or a sequence of one or two ints as an ``(h, w)`` tuple of ints."""
    if isinstance(value, (int, np.integer)):
        return (int(value), int(value))
    if isinstance(value, Sequence) and len(value) in (1, 2):
        if all(isinstance(v, (int, np.integer)) for v in value):
            vals = tuple(int(v) for v in value)
            return vals * 2 if len(vals) == 1 else vals
    raise ValueError(
        f"`{name}` must be an int or a pair (h, w) of ints. Received: {name}={value!r}"
    )


def _int_tuple(value, name: str) -> tuple[int, ...]:
    if isinstance(value, Sequence) and all(isinstance(v, (int, np.integer)) for v in value):
        return tuple(int(v) for v in value)
    raise ValueError(f"`{name}` must be a sequence of ints. Received: {name}={value!r}")


def _canonical_axis(axis: int, rank: int, name: str = "axis") -> int:
    """A non-negative axis of a rank-``rank`` tensor; the batch axis 0 is refused."""
    if not -rank <= axis < rank:
        raise ValueError(f"`{name}` is out of range for a rank-{rank} input. Received: {axis}")
    axis = axis + rank if axis < 0 else axis
    if axis == 0:
        raise ValueError(f"`{name}` must not be the batch axis 0. Received: {name}={axis}")
    return axis


def _spatial_dims(input_shape, layer: str) -> tuple[int, int]:
    if len(input_shape) != 4:
        raise ValueError(f"{layer} expects a 4-D (N, H, W, C) input. Received: {input_shape}")
    h, w = input_shape[1], input_shape[2]
    if h is None or w is None:
        raise ValueError(f"{layer} needs static spatial sizes. Received: input_shape={input_shape}")
    return int(h), int(w)


def caffe_pool_output_size(
    size: int, kernel: int, stride: int, pad: int, ceil_mode: bool = True
) -> int:
    """Caffe's pooling output size along one spatial axis (``pooling_layer.cpp``).

    ``ceil((size + 2*pad - kernel) / stride) + 1`` (``floor`` if not ``ceil_mode``); then, when
    there is padding, the last window is dropped if it would start at or beyond
    ``size + pad`` (inside the right/bottom padding).

    Args:
        size: Input size (H or W).
        kernel: Window size.
        stride: Window stride.
        pad: Padding on each side.
        ceil_mode: Round up (Caffe's default, ``round_mode: CEIL``) or down.

    Returns:
        The output size (may be <= 0 for an impossible configuration).
    """
    span = size + 2 * pad - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if pad > 0 and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _same_paddings(size, kernel, stride):
    """TensorFlow's (before, after) padding for SAME pooling along one axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return (total // 2, total - total // 2)


def _pad_or_crop(x, paddings, value):
    """Pad x by ``((top, bottom), (left, right))``; a negative bottom/right crops instead."""
    (top, bottom), (left, right) = paddings
    if bottom < 0 or right < 0:
        x = x[:, : x.shape[1] + min(bottom, 0), : x.shape[2] + min(right, 0), :]
        bottom, right = max(bottom, 0), max(right, 0)
    if top or bottom or left or right:
        x = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]], constant_values=value)
    return x


# --------------------------------------------------------------------------
# pooling / normalisation
# --------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CaffePooling2D(keras.layers.Layer):
    """Caffe MAX/AVE pooling with Caffe's output size and border handling.

    The output size is :func:`caffe_pool_output_size` (ceil mode by default). Windows are
    clipped to the image:

    * ``"max"``: the maximum over the part of the window inside the image (padding never
      wins). Implemented as padding with the dtype's lowest value and a VALID max pool, so a
      window lying wholly outside the image yields ``-FLT_MAX`` exactly like Caffe.
    * ``"ave"``: the sum over the part inside the image divided by the window size clipped to
      the *padded* image (``hend = min(hstart + k, H + pad)`` before clipping to the image).
      Implemented as zero padding, a VALID average pool and one constant correction map.
    * Where TensorFlow's SAME pooling has exactly Caffe's windows and divisors (MAX, or AVE
      without padding), it is used directly.
      A window wholly outside the image (possible only without padding, in ceil mode) gets
      Caffe's divisor too, which is 0 or negative there: the result is NaN or -0 as in Caffe.

    Args:
        method: ``"max"`` or ``"ave"`` (Caffe ``MAX`` / ``AVE``; case-insensitive).
        kernel: Window size ``(kh, kw)`` or one int.
        stride: Stride ``(sh, sw)`` or one int.
        pad: Padding ``(ph, pw)`` or one int, applied on both sides; must be < kernel.
        ceil_mode: ``True`` for Caffe's default rounding (``round_mode: CEIL``), ``False``
            for ``round_mode: FLOOR`` / ``ceil_mode: false``.
        **kwargs: Base layer arguments (``name``, ``dtype``...).

    Input shape:
        4-D tensor ``(batch, H, W, C)`` with static ``H`` and ``W``.

    Output shape:
        4-D tensor ``(batch, out_h, out_w, C)``.
    """

    def __init__(
        self, method="max", kernel=(2, 2), stride=(1, 1), pad=(0, 0), ceil_mode=True, **kwargs
    ):
        super().__init__(**kwargs)
        method = str(method).lower()
        if method not in ("max", "ave"):
            raise ValueError(f"`method` must be 'max' or 'ave'. Received: method={method!r}")
        self.method = method
        self.kernel = _pair(kernel, "kernel")
        self.stride = _pair(stride, "stride")
        self.pad = _pair(pad, "pad")
        self.ceil_mode = bool(ceil_mode)
        if min(self.kernel) <= 0 or min(self.stride) <= 0 or min(self.pad) < 0:
            raise ValueError(
                "`kernel` and `stride` must be positive and `pad` non-negative. Received: "
                f"kernel={self.kernel}, stride={self.stride}, pad={self.pad}"
            )
        if self.pad[0] >= self.kernel[0] or self.pad[1] >= self.kernel[1]:
            raise ValueError(
                f"`pad` must be smaller than `kernel`. Received: pad={self.pad}, kernel={self.kernel}"
            )

    def _out_hw(self, h, w):
        return tuple(
            caffe_pool_output_size(size, k, s, p, self.ceil_mode)
            for size, k, s, p in zip((h, w), self.kernel, self.stride, self.pad)
        )

    def build(self, input_shape):
        h, w = _spatial_dims(input_shape, "CaffePooling2D")
        oh, ow = self._out_hw(h, w)
        if oh <= 0 or ow <= 0:
            raise ValueError(
                f"CaffePooling2D output would be empty for input {input_shape} with "
                f"kernel={self.kernel}, stride={self.stride}, pad={self.pad}."
            )
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.pad
        # Pad/crop so that the VALID windows are exactly Caffe's out windows.
        self._paddings = ((ph, (oh - 1) * sh + kh - h - ph), (pw, (ow - 1) * sw + kw - w - pw))
        # TensorFlow's SAME pooling ignores padded cells, which is Caffe's rule for MAX, and
        # for AVE when pad == 0 (the divisor is then the window clipped to the image). Use it
        # (no pad op, no correction) when its windows are Caffe's.
        self._same = (self.method == "max" or self.pad == (0, 0)) and self._paddings == (
            _same_paddings(h, kh, sh),
            _same_paddings(w, kw, sw),
        )
        self._ave_factor = None
        if self.method == "ave" and not self._same:
            # Caffe's divisor: window clipped to the padded input, before clipping to the image.
            hs = np.arange(oh) * sh - ph
            ws = np.arange(ow) * sw - pw
            dh = np.minimum(hs + kh, h + ph) - hs
            dw = np.minimum(ws + kw, w + pw) - ws
            divisor = np.outer(dh, dw).astype(np.float64)
            with np.errstate(divide="ignore"):
                factor = (kh * kw) / divisor  # avg_pool divides by kh*kw; correct to Caffe's
            if not np.all(factor == 1.0):
                self._ave_factor = factor.reshape(1, oh, ow, 1)
        super().build(input_shape)

    def call(self, inputs):
        ksize, strides = self.kernel, self.stride
        if self._same:
            pool = tf.nn.max_pool2d if self.method == "max" else tf.nn.avg_pool2d
            return pool(inputs, ksize, strides, "SAME")
        if self.method == "max":
            x = _pad_or_crop(inputs, self._paddings, inputs.dtype.min)
            return tf.nn.max_pool2d(x, ksize, strides, "VALID")
        x = _pad_or_crop(inputs, self._paddings, 0)
        y = tf.nn.avg_pool2d(x, ksize, strides, "VALID")
        if self._ave_factor is not None:
            y = y * tf.constant(self._ave_factor, dtype=y.dtype)
        return y

    def compute_output_shape(self, input_shape):
        h, w = _spatial_dims(input_shape, "CaffePooling2D")
        oh, ow = self._out_hw(h, w)
        return (input_shape[0], oh, ow, input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "method": self.method,
                "kernel": list(self.kernel),
                "stride": list(self.stride),
                "pad": list(self.pad),
                "ceil_mode": self.ceil_mode,
            }
        )
        return config


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


# --------------------------------------------------------------------------
# multi-input
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# element-wise (neuron) layers with Caffe parameters
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# deconvolution
# --------------------------------------------------------------------------


def _dilate_kernel(kernel, dilation):
    """Insert ``d - 1`` zeros between the taps of a ``(kh, kw, a, b)`` kernel."""
    dh, dw = dilation
    kh, kw, a, b = kernel.shape
    if dh > 1:
        k = tf.pad(kernel[:, None], [[0, 0], [0, dh - 1], [0, 0], [0, 0], [0, 0]])
        kernel = tf.reshape(k, (kh * dh, kw, a, b))[: (kh - 1) * dh + 1]
    if dw > 1:
        k = tf.pad(kernel[:, :, None], [[0, 0], [0, 0], [0, dw - 1], [0, 0], [0, 0]])
        kernel = tf.reshape(k, (kernel.shape[0], kw * dw, a, b))[:, : (kw - 1) * dw + 1]
    return kernel


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CaffeDeconv2D(keras.layers.Layer):
    """Caffe Deconvolution (``deconv_layer.cpp``): the transpose of a Caffe convolution.

    Output size per spatial axis: ``stride * (in - 1) + dilation * (kernel - 1) + 1 - 2 * pad``
    (Caffe has no output padding). Groups split the input channels into ``groups`` blocks of
    ``C_in / groups``, each producing ``filters / groups`` output channels.

    Implementation: ``tf.nn.conv2d_transpose`` with explicit padding (``groups == 1``),
    ``tf.nn.depthwise_conv2d_backprop_input`` (``filters == groups``, e.g. FCN's bilinear
    upsampling with ``group = C``), otherwise one transpose per group. A dilated kernel is
    expanded with zeros first, since TensorFlow's CPU kernels refuse dilation here.

    Args:
        filters: Number of output channels (Caffe ``num_output``).
        kernel: ``(kh, kw)`` or one int.
        stride: ``(sh, sw)`` or one int.
        pad: ``(ph, pw)`` or one int (cropped from both sides of the full output).
        dilation: ``(dh, dw)`` or one int.
        groups: Caffe ``group``; must divide ``C_in`` and ``filters``.
        use_bias: Add ``bias`` (Caffe ``bias_term``).
        **kwargs: Base layer arguments.

    Input shape:
        4-D tensor ``(batch, H, W, C_in)`` with static ``H``, ``W`` and ``C_in``.

    Output shape:
        4-D tensor ``(batch, out_h, out_w, filters)``.

    Weights:
        ``kernel``: ``(kh, kw, filters // groups, C_in)``. Caffe stores
        ``(C_in, filters // groups, kh, kw)``; convert with ``w.transpose(2, 3, 1, 0)`` (no
        flipping). Group ``g`` uses ``kernel[..., g*C_in/groups:(g+1)*C_in/groups]`` and writes
        output channels ``g*filters/groups:(g+1)*filters/groups``. For ``groups == 1`` this is
        exactly ``keras.layers.Conv2DTranspose``'s kernel layout.
        ``bias``: ``(filters,)``.
    """

    def __init__(
        self,
        filters,
        kernel,
        stride=(1, 1),
        pad=(0, 0),
        dilation=(1, 1),
        groups=1,
        use_bias=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(filters, (int, np.integer)) or filters <= 0:
            raise ValueError(f"`filters` must be a positive int. Received: filters={filters!r}")
        if not isinstance(groups, (int, np.integer)) or groups <= 0 or filters % groups:
            raise ValueError(
                f"`groups` must be a positive int dividing filters={filters}. "
                f"Received: groups={groups!r}"
            )
        self.filters = int(filters)
        self.kernel_size = _pair(kernel, "kernel")
        self.stride = _pair(stride, "stride")
        self.pad = _pair(pad, "pad")
        self.dilation = _pair(dilation, "dilation")
        self.groups = int(groups)
        self.use_bias = bool(use_bias)
        if min(self.kernel_size) <= 0 or min(self.stride) <= 0 or min(self.dilation) <= 0:
            raise ValueError(
                "`kernel`, `stride` and `dilation` must be positive. Received: "
                f"kernel={self.kernel_size}, stride={self.stride}, dilation={self.dilation}"
            )
        if min(self.pad) < 0:
            raise ValueError(f"`pad` must be non-negative. Received: pad={self.pad}")

    def _out_hw(self, h, w):
        return tuple(
            s * (size - 1) + d * (k - 1) + 1 - 2 * p
            for size, k, s, p, d in zip(
                (h, w), self.kernel_size, self.stride, self.pad, self.dilation
            )
        )

    def build(self, input_shape):
        h, w = _spatial_dims(input_shape, "CaffeDeconv2D")
        c_in = input_shape[-1]
        if c_in is None or c_in % self.groups:
            raise ValueError(
                f"CaffeDeconv2D: input channels ({c_in}) must be static and divisible by "
                f"groups={self.groups}."
            )
        oh, ow = self._out_hw(h, w)
        if oh <= 0 or ow <= 0:
            raise ValueError(f"CaffeDeconv2D output would be empty for input {input_shape}.")
        kh, kw = self.kernel_size
        self.kernel = self.add_weight(
            name="kernel",
            shape=(kh, kw, self.filters // self.groups, int(c_in)),
            initializer="glorot_uniform",
        )
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")
        self._out = (oh, ow)
        super().build(input_shape)

    def call(self, inputs):
        kernel = tf.cast(self.kernel, inputs.dtype)
        if self.dilation != (1, 1):
            kernel = _dilate_kernel(kernel, self.dilation)
        oh, ow = self._out
        ph, pw = self.pad
        strides = (1, self.stride[0], self.stride[1], 1)
        padding = [[0, 0], [ph, ph], [pw, pw], [0, 0]]
        batch = tf.shape(inputs)[0]
        g = self.groups
        if g == 1:
            y = tf.nn.conv2d_transpose(
                inputs, kernel, tf.stack([batch, oh, ow, self.filters]), strides, padding
            )
        elif self.filters == g:
            # one output channel per group: the input gradient of a depthwise convolution
            kh, kw = kernel.shape[0], kernel.shape[1]
            dw_kernel = tf.reshape(kernel, (kh, kw, g, inputs.shape[-1] // g))
            y = tf.nn.depthwise_conv2d_backprop_input(
                tf.stack([batch, oh, ow, g]), dw_kernel, inputs, strides, padding
            )
        else:
            og = self.filters // g
            out_shape = tf.stack([batch, oh, ow, og])
            ys = [
                tf.nn.conv2d_transpose(xg, kg, out_shape, strides, padding)
                for xg, kg in zip(tf.split(inputs, g, axis=-1), tf.split(kernel, g, axis=-1))
            ]
            y = tf.concat(ys, axis=-1)
        if self.use_bias:
            y = tf.nn.bias_add(y, tf.cast(self.bias, y.dtype))
        return y

    def compute_output_shape(self, input_shape):
        h, w = _spatial_dims(input_shape, "CaffeDeconv2D")
        oh, ow = self._out_hw(h, w)
        return (input_shape[0], oh, ow, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel": list(self.kernel_size),
                "stride": list(self.stride),
                "pad": list(self.pad),
                "dilation": list(self.dilation),
                "groups": self.groups,
                "use_bias": self.use_bias,
            }
        )
        return config


# --------------------------------------------------------------------------
# argmax / reduction
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# slicing / tiling / embedding
# --------------------------------------------------------------------------


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
class Embed(keras.layers.Layer):
    """Caffe Embed: every input value is an index (a float, truncated toward zero like
    ``static_cast<int>``) that selects a row of ``embeddings`` (plus ``bias``).

    Args:
        input_dim: Number of rows (Caffe ``input_dim``).
        output_dim: Row length (Caffe ``num_output``).
        use_bias: Add ``bias`` (Caffe ``bias_term``).
        **kwargs: Base layer arguments.

    Input shape:
        Tensor ``(batch, ...)`` of (float or int) indices in ``[0, input_dim)``.

    Output shape:
        ``input_shape + (output_dim,)``.

    Weights:
        ``embeddings``: ``(input_dim, output_dim)``, Caffe's ``blobs[0]`` as is.
        ``bias``: ``(output_dim,)``.
    """

    def __init__(self, input_dim, output_dim, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        for name, v in (("input_dim", input_dim), ("output_dim", output_dim)):
            if not isinstance(v, (int, np.integer)) or v <= 0:
                raise ValueError(f"`{name}` must be a positive int. Received: {name}={v!r}")
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        self.use_bias = bool(use_bias)

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            name="embeddings", shape=(self.input_dim, self.output_dim), initializer="uniform"
        )
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(self.output_dim,), initializer="zeros")
        super().build(input_shape)

    def call(self, inputs):
        idx = tf.cast(inputs, tf.int32)  # truncates toward zero, like static_cast<int>
        y = tf.gather(self.embeddings, idx)
        if self.use_bias:
            y = y + self.bias
        return tf.cast(y, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"input_dim": self.input_dim, "output_dim": self.output_dim, "use_bias": self.use_bias}
        )
        return config
