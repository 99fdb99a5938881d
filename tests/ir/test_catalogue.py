"""The layer catalogue is complete: no Caffe type is ever added halfway.

A type cocotune handles needs a shape rule, an emitter, a numpy reference and a conversion case
(see ``CASES`` in tests/convert/test_convert_layers.py); a type it does not handle needs a
reason. The exemptions below are explicit and say why; an exemption that is no longer needed
fails too, so the lists stay true.
"""

from __future__ import annotations

import inspect
import re

import pytest

import cocotune.reference.caffe_layers as reference
from cocotune.convert.registry import EMITTERS
from cocotune.ir import shapes
from cocotune.ir.catalogue import (
    CATALOGUE,
    CHANNELWISE,
    EXIT,
    PRODUCER,
    depthwise,
    field_value,
    register,
)
from tests.convert.test_convert_layers import CASES

# Data layers read a database, an image list or HDF5 files, which a conversion case cannot
# supply; they convert to keras.Input exactly as "Input" does, which every case exercises.
_DATA = ("Data", "HDF5Data", "WindowData", "ImageData", "MemoryData", "DummyData")
# Losses and metrics produce no model code (the generated training scripts implement them), so
# there is nothing to compare against Caffe's forward pass; Silence produces nothing at all.
_TRAINING_ONLY = (
    "SoftmaxWithLoss",
    "EuclideanLoss",
    "SigmoidCrossEntropyLoss",
    "ContrastiveLoss",
    "HingeLoss",
    "InfogainLoss",
    "MultinomialLogisticLoss",
    "Accuracy",
    "Silence",
)

#: Types without a numpy reference function: the reference skips them instead.
NO_REFERENCE = {t: "no forward value to check" for t in ("Input", *_DATA, *_TRAINING_ONLY)}
#: Types without a conversion case.
NO_CASE = {
    **{t: "reads its data from a file; converts as Input does" for t in _DATA},
    **{t: "training only: no model code to compare" for t in _TRAINING_ONLY},
}

HANDLED = sorted(name for name, entry in CATALOGUE.items() if entry.shape is not None)
UNSUPPORTED = sorted(name for name, entry in CATALOGUE.items() if entry.shape is None)


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _reference_function(name: str):
    """The reference's function for a type: ``inner_product`` for InnerProduct, ``absval`` for
    AbsVal (the reference follows numpy's habit of one-word names where Caffe has them)."""
    for candidate in (_snake(name), name.lower()):
        fn = getattr(reference, candidate, None)
        if callable(fn):
            return fn
    return None


def _case_types() -> set[str]:
    return {t for text in CASES.values() for t in re.findall(r'type:\s*"(\w+)"', text)}


def test_the_catalogue_knows_the_types_cocotune_handles_and_those_it_refuses():
    assert len(HANDLED) >= 50 and len(UNSUPPORTED) >= 20
    assert {"Convolution", "PReLU", "Axpy"} <= set(HANDLED)
    assert {"PriorBox", "Python", "LSTM"} <= set(UNSUPPORTED)


@pytest.mark.parametrize("name", HANDLED)
def test_a_handled_type_is_described_completely(name):
    entry = CATALOGUE[name]
    assert callable(entry.shape)
    assert entry.description, "the support table prints it"
    assert entry.emitter or entry.unsupported, "an emitter, or why it cannot be converted"
    if entry.emitter:
        assert type(EMITTERS[name]).__name__ == entry.emitter
    if name in NO_REFERENCE:
        assert _reference_function(name) is None, f"{name} has a reference now: drop the exemption"
        assert name in reference._DATA_TYPES | reference._SKIP_TYPES, "the reference must skip it"
    else:
        assert _reference_function(name) is not None, f"no numpy reference function for {name}"
        dispatch = inspect.getsource(reference._run_layer)
        assert f'"{name}"' in dispatch, f"the reference's run_net does not run {name}"
    if name in NO_CASE:
        assert name not in _case_types(), f"{name} has a conversion case now: drop the exemption"
    else:
        assert name in _case_types(), f"no case in tests/convert/test_convert_layers.py for {name}"


@pytest.mark.parametrize("name", UNSUPPORTED)
def test_an_unsupported_type_says_why_and_has_nothing_else(name):
    entry = CATALOGUE[name]
    assert entry.unsupported and len(entry.unsupported) > 10
    assert entry.emitter is None and entry.blobs is None and name not in EMITTERS
    assert shapes.KNOWN_UNSUPPORTED[name] == entry.unsupported
    assert name not in shapes.LAYER_RULES


def test_exemptions_name_real_types():
    for name in (*NO_REFERENCE, *NO_CASE):
        assert CATALOGUE[name].shape is not None, name


def test_the_emitter_table_is_keyed_by_exactly_the_catalogue_types_with_an_emitter():
    assert sorted(EMITTERS) == sorted(n for n, e in CATALOGUE.items() if e.emitter)


def test_the_old_tables_are_views_of_the_catalogue():
    assert list(shapes.LAYER_RULES) == HANDLED_IN_ORDER()
    assert shapes.LAYER_RULES["Convolution"] is CATALOGUE["Convolution"]
    assert dict(shapes.KNOWN_UNSUPPORTED) == {n: CATALOGUE[n].unsupported for n in UNSUPPORTED}
    with pytest.raises(KeyError):
        shapes.LAYER_RULES["PriorBox"]
    with pytest.raises(KeyError):
        shapes.KNOWN_UNSUPPORTED["Convolution"]


def HANDLED_IN_ORDER() -> list[str]:
    return [name for name, entry in CATALOGUE.items() if entry.shape is not None]


def test_blobs_pruning_roles_and_bias_fields_fit_together():
    with_blobs = {n for n, e in CATALOGUE.items() if e.blobs}
    assert with_blobs == {
        "BatchNorm",
        "Bias",
        "Convolution",
        "ConvolutionDepthwise",
        "Deconvolution",
        "Embed",
        "InnerProduct",
        "PReLU",
        "Scale",
    }
    for name, entry in CATALOGUE.items():
        assert entry.init is not None if entry.blobs else entry.init is None, name
        if entry.bias_field:
            assert entry.blobs and entry.bias_field.endswith(".bias_term"), name
        role = entry.pruning
        assert role.kind in (PRODUCER, CHANNELWISE, EXIT), name
        if role.kind == PRODUCER:
            assert role.filters and entry.blobs, f"{name}: a producer's filters are its weights"
    producers = sorted(n for n, e in CATALOGUE.items() if e.pruning.kind == PRODUCER)
    assert producers == ["Convolution", "InnerProduct"]
    assert CATALOGUE["ReLU"].channelwise and not CATALOGUE["Eltwise"].channelwise


def test_register_refuses_half_a_description():
    before = dict(CATALOGUE)
    with pytest.raises(ValueError, match="described twice"):
        register("ReLU", shape=CATALOGUE["ReLU"].shape, description="again")
    with pytest.raises(ValueError, match="shape rule"):
        register("NewType", description="no shape, no reason")
    with pytest.raises(ValueError, match="blobs and their initialiser"):
        register("NewType", shape=CATALOGUE["ReLU"].shape, blobs=lambda layer, b: [])
    with pytest.raises(ValueError, match="no emitter"):
        register("NewType", unsupported="a fork layer", emitter="SimpleEmitter")
    assert CATALOGUE == before


# -- the fields other modules read instead of naming types ------------------------------------


def _field_paths(entry):
    role = entry.pruning
    return [p for p in (entry.bias_field, role.axis, role.filters, role.group) if p]


@pytest.mark.parametrize("name", HANDLED)
def test_field_paths_name_real_fields(name):
    """A misspelt path would only fail when a net with that type is pruned or read."""
    from cocotune._proto import caffe_pb2

    entry = CATALOGUE[name]
    for path in _field_paths(entry):
        field_value(caffe_pb2.LayerParameter(), path)  # AttributeError on a misspelt path


def test_pruning_roles_are_complete():
    for name, entry in CATALOGUE.items():
        role = entry.pruning
        if role.group or role.kind == PRODUCER:
            assert role.filters, f"{name}: a group or filters to prune need the filter count"
        if role.filters and role.kind == CHANNELWISE:  # depthwise: its filters follow channels
            assert entry.blobs, f"{name}: a depthwise convolution has filters"
        if role.kind == EXIT:
            assert not (role.axis or role.filters or role.group or role.exit_when), name


def _case_nets(tmp_path):
    from cocotune.frontend.load import load_net

    for case, text in sorted(CASES.items()):
        path = tmp_path / f"{case}.prototxt"
        path.write_text(text)
        yield case, load_net(path)


def test_blob_rules_say_which_axis_follows_the_channels(tmp_path):
    """Pruning reads off the blob rule which axis of which blob loses the pruned channels
    (cocotune.tuning.pruning.channel_axes); a rule whose blobs do not shrink along exactly one
    axis, in proportion, would be pruned wrong. Checked on every conversion case."""
    from cocotune.tuning.pruning import CONSUMER, _producer_problem, _role, channel_axes

    seen = set()
    for case, net in _case_nets(tmp_path):
        for layer in net.layers:
            entry = CATALOGUE[layer.type]
            if entry.blobs is None or len(layer.inputs) != 1:
                continue
            role, _ = _role(layer, layer.module)
            channels = layer.inputs[0].shape[1] if len(layer.inputs[0].shape) > 1 else 1
            if role is not None and channels > 1:  # a depthwise one loses filters and inputs
                dw = depthwise(layer)
                follows = channel_axes(layer, channels - 1, outputs=dw, inputs=True)
                if role == CONSUMER or dw:
                    assert follows[0], f"{case}: {layer.type} keeps every input channel"
                seen.add(layer.type)
            if entry.pruning.filters and _producer_problem(layer) is None:
                n = field_value(layer.param, entry.pruning.filters)
                if n > 1:
                    through = entry.pruning.kind == CHANNELWISE
                    follows = channel_axes(layer, n - 1, outputs=True, inputs=through)
                    assert follows[0], f"{case}: {layer.type}'s weights keep every filter"
    expected = {n for n, e in CATALOGUE.items() if e.blobs and e.pruning.kind != EXIT}
    assert seen == expected


def test_depthwise_is_read_off_the_pruning_role(tmp_path):
    nets = dict(_case_nets(tmp_path))
    conv = {
        case: nets[case].layer("c")
        for case in (
            "conv-depthwise",
            "conv-groups",
            "conv-depthwise-multiplier",
            "convolution-depthwise-fork",
        )
    }
    assert depthwise(conv["conv-depthwise"]) and depthwise(conv["convolution-depthwise-fork"])
    assert not depthwise(conv["conv-groups"]) and not depthwise(conv["conv-depthwise-multiplier"])
    assert depthwise(conv["conv-depthwise-multiplier"], multiplier=True)
    assert not depthwise(nets["deconv"].layer("d"))  # no pruning role: never depthwise


def test_no_emitter_keeps_its_own_list_of_types():
    """Which emitter converts a type is said once, by the type's entry; per-type emitters
    (SimpleEmitter's constructors) are keyed by exactly the types whose entries name them."""
    from cocotune.convert.emitters.activations import SIMPLE_EMITTERS
    from cocotune.convert.emitters.base import Emitter

    assert not hasattr(Emitter, "types")
    assert not any(hasattr(emitter, "types") for emitter in EMITTERS.values())
    simple = sorted(n for n, e in CATALOGUE.items() if e.emitter == "SimpleEmitter")
    assert sorted(SIMPLE_EMITTERS) == simple
    assert all(EMITTERS[n] is SIMPLE_EMITTERS[n] for n in simple)


#: Modules that must ask the catalogue rather than name Caffe types -> the type names they may
#: still spell out, and why (an emitter's own dispatch among the types its entries send it).
ASKS_THE_CATALOGUE = ("cocotune/tuning", "cocotune/convert", "cocotune/caffemodel.py")
MAY_NAME = {
    "cocotune/convert/emitters/activations.py": "SIMPLE_EMITTERS: each element-wise type's "
    "Keras constructor, checked against the entries naming SimpleEmitter",
    "cocotune/convert/emitters/io.py": "InputEmitter: Input's tops are all inputs, a data "
    "layer's second top is a label",
    "cocotune/convert/emitters/norm.py": "ScaleEmitter tells Scale from Bias; the BatchNorm + "
    "Scale fold pairs two particular types",
    "cocotune/caffemodel.py": "a hint, in a weight-shape error, about the one field that "
    "transposes an InnerProduct's matrix",
}


def _named_types(path) -> set[str]:
    import ast

    tree = ast.parse(path.read_text())
    exported = {
        id(c)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(getattr(t, "id", "") == "__all__" for t in node.targets)
        for c in ast.walk(node.value)
    }
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in CATALOGUE and id(node) not in exported
    }


def test_modules_that_ask_the_catalogue_name_no_types():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    files = []
    for where in ASKS_THE_CATALOGUE:
        path = root / where
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    naming = {str(p.relative_to(root)): _named_types(p) for p in files}
    naming = {p: sorted(names) for p, names in naming.items() if names}
    assert set(naming) == set(MAY_NAME), naming
