"""Caffe pooling: MAX/AVE with Caffe's output size, rounding and border divisors.

Kept apart because Caffe's pooling geometry (ceil rounding, a last window dropped when it
starts in the padding, AVE divisors clipped to the padded image) is what no stock Keras
pooling layer computes; :func:`caffe_pool_output_size` (shared with the shape rules in
:mod:`cocotune.ir.geometry`, a module that needs neither Keras nor the frontend) is that
arithmetic on its own.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from cocotune.ir.geometry import caffe_pool_output_size
from cocotune.runtime.layers._common import _PACKAGE, _pair, _spatial_dims


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
