"""``cocogen compile`` for pattern-pruned depthwise 3×3 convolutions: which layers get a generated
depthwise kernel (read from their zeros), and the delegate's artefacts for them.

A ``DepthwiseConv2D`` qualifies when its kernel is 3×3 with depth multiplier 1, equal strides of
1 or 2, no dilation, ``channels_last``, a static input shape, activation linear, ReLU or ReLU6,
and every group of 16 channels uses at most 4 taps (:func:`cocotune.cocogen.depthwise.
group_patterns`: what ``cocogen prune --depthwise`` leaves); a dense one stays with the stock
runtime, listed in ``build.json`` with the reason.

Activation: the converter fuses a ReLU / ReLU6 that follows the layer, directly or through a
BatchNorm it folds, into the DEPTHWISE_CONV_2D node (MobileNetV2's DepthwiseConv2D → BatchNorm
→ ReLU6). A linear layer whose only consumer is such a ReLU (or a BatchNorm whose only consumer
is one) gets a kernel with it fused; the delegate refuses a kernel whose fused activation the
node does not have, and applies the node's activation after a kernel that fuses none, so a
wrong guess costs speed, never correctness.

Padding: a 'valid' layer fed by a ``ZeroPadding2D`` that adds exactly TF's 'same' padding for
its stride (MobileNetV2's stride-2 blocks: ``((0, 1), (0, 1))`` on an even input) is compiled as
the 'same' convolution of the unpadded input: the converter folds the pair into one 'same'
DEPTHWISE_CONV_2D.

Delegate artefacts (``codegen_templates/c/delegate_depthwise.c.j2``): the descriptor table
``delegate_dw_table.c`` (shapes, the support hash — FNV-1a 64 of one 0/1 byte per entry of the
TFLite filter ``[1][3][3][C]``, the same order as the Keras kernel ``(3, 3, C, 1)`` — and each
group's taps) and the header ``cocogen_delegate_dw.h``. No weights file: the kernel's weights
are the node's filter entries at the group's taps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cocotune.cocogen.depthwise import group_patterns
from cocotune.cocogen.emit_c import environment
from cocotune.cocogen.emit_depthwise import DepthwiseSpec, depthwise_context, same_padding
from cocotune.cocogen.model import _input_shape, _producer, keras_activation
from cocotune.cocogen.pointwise_compile import _c_text, _consumers

__all__ = [
    "DepthwiseVerdict",
    "analyse_depthwise",
    "depthwise_spec",
    "support_fnv1a64",
    "delegate_row",
    "render_table",
    "headers",
    "build_row",
]

HEADERS = ("cocogen_delegate_dw.h",)
ACT_CODES = {"none": 0, "relu": 1, "relu6": 3}  # TfLiteFusedActivation


@dataclass
class DepthwiseVerdict:
    """Whether one DepthwiseConv2D layer gets a generated kernel, and if not why."""

    name: str
    type: str
    qualifies: bool
    reason: str = ""
    input_shape: tuple[int, int, int] = (1, 1, 1)  # (h, w, c) of the compiled convolution
    stride: int = 1
    padding: str = "same"
    act: str = "none"
    kernel: np.ndarray | None = None  # (3, 3, C, 1)
    bias: np.ndarray | None = None
    patterns: tuple[tuple[int, ...], ...] = ()
    absorbs: str | None = None  # a ZeroPadding2D folded into 'same' padding


def _activation_of(layer) -> str | None:
    """'relu' / 'relu6' for a plain ReLU / ReLU6 layer, else None."""
    t = type(layer).__name__
    if t == "ReLU":
        c = layer.get_config()
        if c.get("negative_slope") or c.get("threshold"):
            return None
        mv = c.get("max_value")
        return "relu" if mv is None else ("relu6" if float(mv) == 6.0 else None)
    if t == "Activation":
        a = keras_activation(layer)
        return a if a in ("relu", "relu6") else None
    return None


def _act_follows(layer, consumers: dict[str, list]) -> str:
    c = consumers.get(layer.name, [])
    if len(c) != 1 or c[0] is None:
        return "none"
    if type(c[0]).__name__ == "BatchNormalization":
        c = consumers.get(c[0].name, [])
        if len(c) != 1 or c[0] is None:
            return "none"
    return _activation_of(c[0]) or "none"


def _same_pad(pad_layer, h: int, w: int, stride: int) -> bool:
    """``pad_layer`` is a channels_last ZeroPadding2D adding TF's 'same' padding of an
    ``h × w`` input (before padding) for a 3×3 window at ``stride``."""
    if type(pad_layer).__name__ != "ZeroPadding2D":
        return False
    if getattr(pad_layer, "data_format", "") != "channels_last":
        return False
    try:
        pad = tuple(tuple(int(v) for v in p) for p in pad_layer.padding)
    except TypeError:
        return False
    _, t, b = same_padding(h, stride)
    _, left, right = same_padding(w, stride)
    return pad == ((t, b), (left, right))


def _analyse(layer, consumers) -> DepthwiseVerdict | None:
    import keras

    tname = type(layer).__name__
    if tname != "DepthwiseConv2D" or not isinstance(layer, keras.layers.DepthwiseConv2D):
        return None
    v = DepthwiseVerdict(layer.name, tname, False)
    if tuple(layer.kernel_size) != (3, 3):
        v.reason = f"kernel size {tuple(layer.kernel_size)}, not 3x3"
        return v
    if layer.depth_multiplier != 1:
        v.reason = f"depth multiplier {layer.depth_multiplier} (only 1)"
        return v
    st = tuple(layer.strides)
    if st[0] != st[1] or st[0] not in (1, 2):
        v.reason = f"strides {st}; only (1, 1) and (2, 2) are generated"
        return v
    if tuple(layer.dilation_rate) != (1, 1):
        v.reason = f"dilation {tuple(layer.dilation_rate)}"
        return v
    if layer.data_format != "channels_last":
        v.reason = f"data_format {layer.data_format}"
        return v
    if layer.padding not in ("valid", "same"):
        v.reason = f"padding {layer.padding!r}"
        return v
    shape = _input_shape(layer)
    if shape is None or len(shape) != 4 or any(d is None for d in shape[1:]):
        v.reason = f"input shape {shape} is not static"
        return v
    h, w, c = (int(d) for d in shape[1:])
    if layer.padding == "valid" and min(h, w) < 3:
        v.reason = f"input {h}x{w} is smaller than the 3x3 window"
        return v
    act = keras_activation(layer)
    if act not in ("linear", "relu", "relu6"):
        v.reason = f"activation {act!r} (only linear, relu and relu6 are fused)"
        return v
    weights = layer.get_weights()
    kernel = np.asarray(weights[0], dtype=np.float32)
    pats = group_patterns(kernel)
    if pats is None:
        v.reason = "a group of 16 channels uses more than 4 taps: not pattern-pruned"
        return v
    v.qualifies = True
    v.patterns = pats
    v.input_shape = (h, w, c)
    v.stride = st[0]
    v.padding = layer.padding
    pad = _producer(layer)
    if (
        layer.padding == "valid"
        and pad is not None
        and _same_pad(pad, h - sum(pad.padding[0]), w - sum(pad.padding[1]), st[0])
    ):
        v.input_shape = (h - sum(pad.padding[0]), w - sum(pad.padding[1]), c)
        v.padding = "same"
        v.absorbs = pad.name
    v.act = act if act != "linear" else _act_follows(layer, consumers)
    v.kernel = kernel
    v.bias = np.asarray(weights[1], dtype=np.float32) if layer.use_bias else None
    return v


def analyse_depthwise(model) -> dict[str, DepthwiseVerdict]:
    """A verdict for every DepthwiseConv2D layer of ``model`` (layer name -> verdict)."""
    consumers = _consumers(model)
    out = {}
    for layer in model.layers:
        v = _analyse(layer, consumers)
        if v is not None:
            out[layer.name] = v
    return out


def depthwise_spec(v: DepthwiseVerdict, index: int, native: bool = True) -> DepthwiseSpec:
    """The kernel spec (default tile) of a qualifying verdict."""
    from cocotune.cocogen.depthwise_runtime import spec_for

    h, w, c = v.input_shape
    return spec_for(h, w, c, v.patterns, v.stride, v.padding, v.act, index=index, native=native)


def support_fnv1a64(kernel: np.ndarray, lib=None) -> int:
    """FNV-1a 64 of a ``(3, 3, C, 1)`` kernel's support as the delegate hashes the TFLite filter
    ``[1][3][3][C]`` (one 0/1 byte per entry, same order)."""
    from cocotune.cocogen.delegate import fnv1a64

    sup = np.ascontiguousarray(np.asarray(kernel).reshape(-1) != 0).astype(np.uint8)
    return fnv1a64(sup.tobytes(), lib)


def delegate_row(v: DepthwiseVerdict, spec: DepthwiseSpec, lib=None) -> dict:
    """Everything the descriptor table needs for one layer."""
    assert v.kernel is not None, v.name
    return {
        "spec": spec,
        "layer": v.name,
        "hash": support_fnv1a64(v.kernel, lib),
        "nnz": int(np.count_nonzero(v.kernel)),
    }


def render_table(rows: list[dict]) -> dict[str, str]:
    """``delegate_dw_table.c`` for the delegate's depthwise layers (possibly none)."""
    ctx = [
        {
            "k": depthwise_context(r["spec"]),
            "layer": _c_text(r["layer"]),
            "padding_code": 1 if r["spec"].padding == "same" else 2,
            "act_code": ACT_CODES[r["spec"].act],
            "hash": int(r["hash"]),
            "nnz": int(r["nnz"]),
            "taps": [t for p in r["spec"].patterns for t in p],
        }
        for r in rows
    ]
    text = environment().get_template("delegate_dw_table.c.j2").render(layers=ctx)
    return {"delegate_dw_table.c": text}


def headers() -> dict[str, str]:
    """The depthwise part's static header(s), name -> text."""
    env = environment()
    return {n: env.get_template(n + ".j2").render() for n in HEADERS}


def build_row(v: DepthwiseVerdict, spec: DepthwiseSpec | None, hashes: dict | None, tuned) -> dict:
    """The ``build.json`` row of a DepthwiseConv2D layer."""
    row: dict = {"name": v.name, "type": v.type, "qualifies": v.qualifies}
    if not v.qualifies or spec is None:
        row["runtime"] = "stock"
        row["reason"] = v.reason
        return row
    row.update(
        runtime="cocogen",
        kind="depthwise",
        kernel=spec.name,
        spec={
            "h": spec.h,
            "w": spec.w,
            "c": spec.c,
            "stride": spec.stride,
            "padding": spec.padding,
            "act": spec.act,
            "patterns": [list(p) for p in spec.patterns],
            "tile": spec.tile.tag,
        },
        distinct_patterns=len(set(spec.patterns)),
        macs_dense=spec.macs_dense,
        macs_pruned=spec.macs_pruned,
    )
    if v.absorbs:
        row["absorbs"] = v.absorbs
    if hashes is not None:
        row["support_fnv1a64"] = f"{hashes[v.name]:016x}"
    if v.name in tuned:
        row["tuning_seconds"] = tuned[v.name].times
    return row
