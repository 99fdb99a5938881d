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
from cocotune.ir.catalogue import CATALOGUE, CHANNELWISE, EXIT, PRODUCER, register
from tests.convert.test_convert_layers import CASES

# Data layers read a database, an image list or HDF5 files, which a conversion case cannot
# supply; they convert to keras.Input exactly as "Input" does, which every case exercises.
_DATA = ("Data", "HDF5Data", "WindowData", "ImageData", "MemoryData", "DummyData")
# Losses and metrics produce no model code (the generated training scripts implement them), so
# there is nothing to compare against Caffe's forward pass; Silence produces nothing at all.
_TRAINING_ONLY = (
    "SoftmaxWithLoss", "EuclideanLoss", "SigmoidCrossEntropyLoss", "ContrastiveLoss",
    "HingeLoss", "InfogainLoss", "MultinomialLogisticLoss", "Accuracy", "Silence",
)  # fmt: skip

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
    assert with_blobs == {"BatchNorm", "Bias", "Convolution", "ConvolutionDepthwise",
                          "Deconvolution", "Embed", "InnerProduct", "PReLU", "Scale"}  # fmt: skip
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
