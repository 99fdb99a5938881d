"""Keras models on the CoCo-Gen side: which layers qualify for a generated kernel, and running a
Sequential-like chain with our kernels for those layers and Keras for the rest.

A layer qualifies when it is a ``Conv2D`` with a 3×3 kernel, equal strides of 1 or 2, no
dilation, one group, ``channels_last``, padding 'valid' or 'same', activation linear or ReLU
(fused), a static input shape, and kernels that already follow at most ``max_patterns`` 4-tap
patterns (read from the zeros: :func:`cocotune.cocogen.patterns.infer_library`).

A stride-1 'valid' convolution fed by a ``ZeroPadding2D`` of 1 on every side (how a Caffe
``pad: 1`` converts) is compiled as the 'same' convolution of the unpadded input: that is the
CONV_2D the TFLite converter writes for the pair, and what our kernels' padded workspace does
anyway (``LayerVerdict.absorbs`` names the padding layer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cocotune.cocogen.patterns import PatternLibrary, infer_library

__all__ = ["LayerVerdict", "analyse_layer", "analyse_model", "keras_activation", "is_chain"]


@dataclass
class LayerVerdict:
    """Whether one Keras layer gets a generated kernel, and if not why."""

    name: str
    type: str
    qualifies: bool
    reason: str = ""
    library: PatternLibrary | None = None
    input_shape: tuple[int, int, int] | None = None  # (h, w, c)
    stride: int = 1
    padding: str = "same"
    relu: bool = False
    kernel: np.ndarray | None = None
    bias: np.ndarray | None = None
    absorbs: str | None = None  # a ZeroPadding2D folded into 'same' padding


def _producer(layer):
    """The layer whose output ``layer`` takes (None when unknown or several)."""
    try:
        hist = layer.input._keras_history
        return hist[0] if hist else None
    except (AttributeError, ValueError, RuntimeError, TypeError):
        return None


def _absorbable_pad(layer) -> bool:
    """``layer`` is a ZeroPadding2D of exactly 1 on each side, channels_last."""
    if type(layer).__name__ != "ZeroPadding2D":
        return False
    try:
        pad = tuple(tuple(int(v) for v in p) for p in layer.padding)
    except TypeError:
        return False
    return pad == ((1, 1), (1, 1)) and getattr(layer, "data_format", "") == "channels_last"


def keras_activation(layer) -> str:
    import keras

    act = getattr(layer, "activation", None)
    if act is None:
        return "linear"
    try:
        name = keras.activations.serialize(act)
    except (ValueError, TypeError):
        return getattr(act, "__name__", str(act))
    if isinstance(name, dict):
        name = name.get("config", {}).get("name") or name.get("class_name", "?")
    return str(name)


def _input_shape(layer):
    try:
        shape = tuple(layer.input.shape)
    except (AttributeError, ValueError, RuntimeError):
        return None
    return shape


def analyse_layer(layer, max_patterns: int = 8) -> LayerVerdict:
    """Classify one Keras layer (see the module docstring for the rules)."""
    import keras

    tname = type(layer).__name__
    v = LayerVerdict(layer.name, tname, False)
    if not isinstance(layer, keras.layers.Conv2D) or tname != "Conv2D":
        v.reason = f"{tname} is not a Conv2D"
        return v
    ks = tuple(layer.kernel_size)
    if ks != (3, 3):
        v.reason = f"kernel size {ks[0]}x{ks[1]}, not 3x3"
        return v
    st = tuple(layer.strides)
    if st[0] != st[1] or st[0] not in (1, 2):
        v.reason = f"strides {st}; only (1, 1) and (2, 2) are generated"
        return v
    if tuple(layer.dilation_rate) != (1, 1):
        v.reason = f"dilation {tuple(layer.dilation_rate)}"
        return v
    if getattr(layer, "groups", 1) != 1:
        v.reason = f"groups={layer.groups}"
        return v
    if layer.data_format != "channels_last":
        v.reason = f"data_format {layer.data_format}"
        return v
    if layer.padding not in ("valid", "same"):
        v.reason = f"padding {layer.padding!r}"
        return v
    act = keras_activation(layer)
    if act not in ("linear", "relu"):
        v.reason = f"activation {act!r} (only linear and relu are fused)"
        return v
    shape = _input_shape(layer)
    if shape is None or len(shape) != 4 or any(d is None for d in shape[1:]):
        v.reason = f"input shape {shape} is not static"
        return v
    weights = layer.get_weights()
    kernel = np.asarray(weights[0], dtype=np.float32)
    bias = np.asarray(weights[1], dtype=np.float32) if layer.use_bias else None
    lib, why = infer_library(kernel, max_patterns)
    if lib is None:
        v.reason = why
        return v
    v.qualifies = True
    v.library = lib
    h, w, c = (int(d) for d in shape[1:])
    v.input_shape = (h, w, c)
    v.stride = st[0]
    v.padding = layer.padding
    pad = _producer(layer)
    if layer.padding == "valid" and st[0] == 1 and pad is not None and _absorbable_pad(pad):
        v.input_shape = (h - 2, w - 2, c)
        v.padding = "same"
        v.absorbs = pad.name
    v.relu = act == "relu"
    v.kernel = kernel
    v.bias = bias
    return v


def analyse_model(model, max_patterns: int = 8) -> list[LayerVerdict]:
    """A verdict for every layer of ``model`` (input layers excluded)."""
    return [
        analyse_layer(layer, max_patterns)
        for layer in model.layers
        if type(layer).__name__ != "InputLayer"
    ]


def is_chain(model) -> bool:
    """True when each layer takes exactly the previous layer's output (Sequential-like)."""
    import keras

    if isinstance(model, keras.Sequential):
        return True
    layers = [l for l in model.layers if type(l).__name__ != "InputLayer"]
    try:
        for prev, cur in zip(layers, layers[1:]):
            if cur.input is not prev.output:
                return False
    except (AttributeError, ValueError):
        return False
    return True
