"""Caffe Deconvolution: the transpose of a Caffe convolution, with groups and dilation.

Kept apart because it is the one layer here that needs three TensorFlow code paths
(plain, depthwise, per group) and a zero-dilated kernel (TensorFlow's CPU kernels refuse
dilation in a transposed convolution). Caffe's Convolution converts to stock Keras.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from cocotune.runtime.layers._common import _PACKAGE, _pair, _spatial_dims


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
