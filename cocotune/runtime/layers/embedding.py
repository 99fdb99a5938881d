"""Caffe Embed: a learned table looked up by float indices, truncated like ``static_cast``.

Its own module because it is the only layer here whose input is indices rather than
activations (``keras.layers.Embedding`` refuses float inputs and has no bias).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from cocotune.runtime.layers._common import _PACKAGE


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
