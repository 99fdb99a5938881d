"""Old Caffe forms → today's, the way Caffe's own ``upgrade_proto.cpp`` does it.

- V1 ``layers { type: CONVOLUTION ... }`` → ``layer { type: "Convolution" ... }``;
- top-level ``input`` / ``input_dim`` / ``input_shape`` → an ``Input`` layer named "input";
- ``include { phase: ... }`` / ``exclude`` rules → the layers of one phase (Caffe's FilterNet).

Each layer travels with its :class:`PositionTree` and module, so errors found later still
point at the text the user wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from cocotune._proto.caffe_pb2 import (
    ConvolutionParameter,
    InnerProductParameter,
    LayerParameter,
    NetParameter,
    NetState,
    NetStateRule,
    ParamSpec,
    PoolingParameter,
    V1LayerParameter,
)
from cocotune.errors import NetError, SchemaError
from cocotune.frontend.source import Source
from cocotune.frontend.to_proto import ParsedNet, PositionTree

# V1LayerParameter.LayerType name → LayerParameter.type string (Caffe's UpgradeV1LayerType).
V1_TYPE_NAMES: dict[str, str] = {
    "ABSVAL": "AbsVal",
    "ACCURACY": "Accuracy",
    "ARGMAX": "ArgMax",
    "BNLL": "BNLL",
    "CONCAT": "Concat",
    "CONTRASTIVE_LOSS": "ContrastiveLoss",
    "CONVOLUTION": "Convolution",
    "DECONVOLUTION": "Deconvolution",
    "DATA": "Data",
    "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData",
    "EUCLIDEAN_LOSS": "EuclideanLoss",
    "ELTWISE": "Eltwise",
    "EXP": "Exp",
    "FLATTEN": "Flatten",
    "HDF5_DATA": "HDF5Data",
    "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss",
    "IM2COL": "Im2col",
    "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss",
    "INNER_PRODUCT": "InnerProduct",
    "LRN": "LRN",
    "MEMORY_DATA": "MemoryData",
    "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN",
    "POOLING": "Pooling",
    "POWER": "Power",
    "RELU": "ReLU",
    "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss",
    "SILENCE": "Silence",
    "SOFTMAX": "Softmax",
    "SOFTMAX_LOSS": "SoftmaxWithLoss",
    "SPLIT": "Split",
    "SLICE": "Slice",
    "TANH": "TanH",
    "WINDOW_DATA": "WindowData",
    "THRESHOLD": "Threshold",
}

# V0 (``layers { layer { type: "conv" } }``) type strings → new type names.
V0_TYPE_NAMES: dict[str, str] = {
    "accuracy": "Accuracy",
    "bnll": "BNLL",
    "concat": "Concat",
    "conv": "Convolution",
    "data": "Data",
    "dropout": "Dropout",
    "euclidean_loss": "EuclideanLoss",
    "flatten": "Flatten",
    "hdf5_data": "HDF5Data",
    "hdf5_output": "HDF5Output",
    "im2col": "Im2col",
    "images": "ImageData",
    "infogain_loss": "InfogainLoss",
    "innerproduct": "InnerProduct",
    "lrn": "LRN",
    "multinomial_logistic_loss": "MultinomialLogisticLoss",
    "pool": "Pooling",
    "relu": "ReLU",
    "sigmoid": "Sigmoid",
    "softmax": "Softmax",
    "softmax_loss": "SoftmaxWithLoss",
    "split": "Split",
    "tanh": "TanH",
    "window_data": "WindowData",
    "padding": "Padding",
}


@dataclass
class LayerRecord:
    """One layer on its way through the upgrades: message, positions, module."""

    param: LayerParameter
    positions: PositionTree
    module: str | None


def collect_layers(parsed: ParsedNet, source: Source) -> list[LayerRecord]:
    """All layers of the net as new-style LayerParameters, with inputs turned into a layer."""
    net = parsed.net
    layer_positions = parsed.positions.fields.get("layer", [])
    v1_positions = parsed.positions.fields.get("layers", [])
    if len(net.layer) and len(net.layers):
        pos = v1_positions[0].name
        raise source.error_at(
            SchemaError,
            "the net mixes new 'layer' and V1 'layers' blocks; use one form",
            pos,
        )
    module_of: dict[int, str] = {}
    for mod in parsed.modules:
        for idx in mod.layer_indices:
            module_of[idx] = mod.name
    records = [
        LayerRecord(layer, layer_positions[i].children or PositionTree(), module_of.get(i))
        for i, layer in enumerate(net.layer)
    ]
    for i, v1 in enumerate(net.layers):
        tree = v1_positions[i].children or PositionTree()
        records.append(LayerRecord(upgrade_v1_layer(v1, tree, source), tree, None))
    input_layer = upgrade_net_input(net, parsed.positions, source)
    if input_layer is not None:
        records.insert(0, input_layer)
    return records


def upgrade_v1_layer(v1: V1LayerParameter, tree: PositionTree, source: Source) -> LayerParameter:
    """One V1LayerParameter (or V0 wrapped in it) → LayerParameter."""
    if v1.HasField("layer"):
        return _upgrade_v0_layer(v1, tree, source)
    layer = LayerParameter()
    layer.name = v1.name
    layer.bottom.extend(v1.bottom)
    layer.top.extend(v1.top)
    if v1.HasField("type"):
        type_name = V1LayerParameter.LayerType.Name(v1.type)
        if type_name not in V1_TYPE_NAMES:
            raise source.error_at(
                SchemaError,
                f"V1 layer type {type_name} has no current equivalent",
                tree.find("type"),
            )
        layer.type = V1_TYPE_NAMES[type_name]
    layer.blobs.extend(v1.blobs)
    layer.loss_weight.extend(v1.loss_weight)
    layer.include.extend(v1.include)
    layer.exclude.extend(v1.exclude)
    n_specs = max(len(v1.param), len(v1.blobs_lr), len(v1.weight_decay), len(v1.blob_share_mode))
    for i in range(n_specs):
        spec = layer.param.add()
        if i < len(v1.param):
            spec.name = v1.param[i]
        if i < len(v1.blobs_lr):
            spec.lr_mult = v1.blobs_lr[i]
        if i < len(v1.weight_decay):
            spec.decay_mult = v1.weight_decay[i]
        if i < len(v1.blob_share_mode):
            # The same numbers in both enums: Caffe's upgrade_proto.cpp casts them too.
            spec.share_mode = cast("ParamSpec.DimCheckMode", v1.blob_share_mode[i])
    target = layer.DESCRIPTOR.fields_by_name
    for fd, value in v1.ListFields():
        if fd.name.endswith("_param") and fd.name in target:
            getattr(layer, fd.name).CopyFrom(value)
    return layer


def _upgrade_v0_layer(v1: V1LayerParameter, tree: PositionTree, source: Source) -> LayerParameter:
    """The oldest format: parameters flat inside ``layer``; mapped as Caffe's UpgradeV0Net."""
    v0 = v1.layer
    layer = LayerParameter()
    layer.name = v0.name or v1.name
    layer.bottom.extend(v1.bottom)
    layer.top.extend(v1.top)
    kind = V0_TYPE_NAMES.get(v0.type)
    if kind is None or kind == "Padding":
        raise source.error_at(
            SchemaError, f"V0 layer type '{v0.type}' is not supported", tree.find("layer.type")
        )
    layer.type = kind
    layer.blobs.extend(v0.blobs)
    for i in range(max(len(v0.blobs_lr), len(v0.weight_decay))):
        spec = layer.param.add()
        if i < len(v0.blobs_lr):
            spec.lr_mult = v0.blobs_lr[i]
        if i < len(v0.weight_decay):
            spec.decay_mult = v0.weight_decay[i]
    has = v0.HasField
    if kind in ("Convolution", "InnerProduct"):
        p: ConvolutionParameter | InnerProductParameter = (
            layer.convolution_param if kind == "Convolution" else layer.inner_product_param
        )
        if has("num_output"):
            p.num_output = v0.num_output
        if has("biasterm"):
            p.bias_term = v0.biasterm
        if has("weight_filler"):
            p.weight_filler.CopyFrom(v0.weight_filler)
        if has("bias_filler"):
            p.bias_filler.CopyFrom(v0.bias_filler)
        if kind == "Convolution":
            conv = layer.convolution_param
            if has("kernelsize"):
                conv.kernel_size.append(v0.kernelsize)
            if has("pad"):
                conv.pad.append(v0.pad)
            if has("stride"):
                conv.stride.append(v0.stride)
            if has("group"):
                conv.group = v0.group
    elif kind == "Pooling":
        pool = layer.pooling_param
        if has("pool"):
            pool.pool = cast("PoolingParameter.PoolMethod", v0.pool)  # same numbers
        if has("kernelsize"):
            pool.kernel_size = v0.kernelsize
        if has("pad"):
            pool.pad = v0.pad
        if has("stride"):
            pool.stride = v0.stride
    elif kind == "Dropout" and has("dropout_ratio"):
        layer.dropout_param.dropout_ratio = v0.dropout_ratio
    elif kind == "LRN":
        for src, dst in (
            ("local_size", "local_size"),
            ("alpha", "alpha"),
            ("beta", "beta"),
            ("k", "k"),
        ):
            if has(src):
                setattr(layer.lrn_param, dst, getattr(v0, src))
    elif kind == "Concat" and has("concat_dim"):
        layer.concat_param.concat_dim = v0.concat_dim
    return layer


def upgrade_net_input(
    net: NetParameter, positions: PositionTree, source: Source
) -> LayerRecord | None:
    """``input: "data"`` + ``input_dim``/``input_shape`` → an Input layer (Caffe's UpgradeNetInput)."""
    if not len(net.input):
        if len(net.input_dim) or len(net.input_shape):
            raise source.error_at(
                NetError,
                "input_dim/input_shape given without 'input' blob names",
                positions.find("input_dim") or positions.find("input_shape"),
            )
        return None
    layer = LayerParameter()
    layer.name = "input"
    layer.type = "Input"
    layer.top.extend(net.input)
    n = len(net.input)
    if len(net.input_shape):
        if len(net.input_dim):
            raise source.error_at(
                NetError,
                "give either input_shape or input_dim, not both",
                positions.find("input_dim"),
            )
        if len(net.input_shape) not in (1, n):
            raise source.error_at(
                NetError,
                f"{len(net.input_shape)} input_shape blocks for {n} inputs",
                positions.find("input_shape"),
            )
        for shape in net.input_shape:
            layer.input_param.shape.add().CopyFrom(shape)
    elif len(net.input_dim):
        if len(net.input_dim) != 4 * n:
            raise source.error_at(
                NetError,
                f"{len(net.input_dim)} input_dim values for {n} input(s): Caffe needs 4 per input",
                positions.find("input_dim"),
            )
        for i in range(n):
            layer.input_param.shape.add().dim.extend(net.input_dim[4 * i : 4 * i + 4])
    tree = PositionTree()
    for key in ("input", "input_dim", "input_shape"):
        if key in positions.fields:
            tree.fields["top" if key == "input" else "input_param"] = positions.fields[key]
    tree.fields.setdefault("name", positions.fields.get("input", []))
    return LayerRecord(layer, tree, None)


def _meets_rule(state: NetState, rule: NetStateRule) -> bool:
    """Caffe's Net::StateMeetsRule."""
    if rule.HasField("phase") and rule.phase != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    stages = set(state.stage)
    if any(s not in stages for s in rule.stage):
        return False
    if any(s in stages for s in rule.not_stage):
        return False
    return True


def filter_phase(
    records: list[LayerRecord],
    state: NetState,
    source: Source,
    excluded: list[LayerRecord] | None = None,
) -> list[LayerRecord]:
    """Keep the layers that Caffe's FilterNet keeps for ``state`` (a NetState).

    Layers filtered out are appended to ``excluded`` (when given), so that a later
    "undefined bottom" error can say which rule removed the producer.
    """
    kept = []
    for rec in records:
        layer = rec.param
        if len(layer.include) and len(layer.exclude):
            raise source.error_at(
                NetError,
                f"layer '{layer.name}' has both include and exclude rules; Caffe allows one kind",
                rec.positions.find("exclude"),
            )
        included = not len(layer.include)
        if any(_meets_rule(state, r) for r in layer.exclude):
            included = False
        if any(_meets_rule(state, r) for r in layer.include):
            included = True
        if included:
            kept.append(rec)
        elif excluded is not None:
            excluded.append(rec)
    return kept
