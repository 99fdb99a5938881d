"""Caffemodel blobs: Caffe's shapes per layer, reading every file format, writing, bad files."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cocotune._proto import caffe_pb2
from cocotune.caffemodel import (
    CaffemodelWeights,
    expected_blob_shapes,
    random_weights,
    read_caffemodel,
    write_caffemodel,
)
from cocotune.errors import CocotuneError, WeightsError
from cocotune.frontend.load import load_net
from tests.conftest import corpus_file

INPUT = 'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 4 dim: 6 dim: 6 } } }\n'

# One layer of every parameterised type, chained; SMALL_SHAPES is what Caffe allocates for it.
SMALL = INPUT + """
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 8 kernel_size: 3 pad: 1 } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" }
layer { name: "sc1" type: "Scale" bottom: "conv1" top: "conv1" scale_param { bias_term: true } }
layer { name: "relu1" type: "PReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
        convolution_param { num_output: 6 kernel_h: 3 kernel_w: 1 group: 2 bias_term: false } }
layer { name: "relu2" type: "PReLU" bottom: "conv2" top: "conv2" prelu_param { channel_shared: true } }
layer { name: "dw" type: "ConvolutionDepthwise" bottom: "conv2" top: "dw"
        convolution_param { num_output: 6 kernel_size: 3 pad: 1 } }
layer { name: "up" type: "Deconvolution" bottom: "dw" top: "up"
        convolution_param { num_output: 4 kernel_size: 2 stride: 2 group: 2 } }
layer { name: "bias" type: "Bias" bottom: "up" top: "up" }
layer { name: "pool" type: "Pooling" bottom: "up" top: "pool" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "pool" top: "fc" inner_product_param { num_output: 5 } }
layer { name: "fct" type: "InnerProduct" bottom: "fc" top: "fct"
        inner_product_param { num_output: 3 transpose: true bias_term: false } }
layer { name: "prob" type: "Softmax" bottom: "fct" top: "prob" }
"""
# conv2 output is 6 x 4 x 6 (kernel 3x1, no pad); dw keeps it; up doubles it; pool halves it.
SMALL_SHAPES = {
    "conv1": [(8, 4, 3, 3), (8,)],
    "bn1": [(8,), (8,), (1,)],
    "sc1": [(8,), (8,)],
    "relu1": [(8,)],
    "conv2": [(6, 4, 3, 1)],
    "relu2": [()],
    "dw": [(6, 1, 3, 3), (6,)],
    "up": [(6, 2, 2, 2), (4,)],
    "bias": [(4,)],
    "pool": [],
    "fc": [(5, 4 * 4 * 6), (5,)],
    "fct": [(5, 3)],
    "prob": [],
}


@pytest.fixture
def small(write_net):
    return load_net(write_net(SMALL))


def test_expected_shapes_of_every_parameterised_type(small):
    assert {layer.name: expected_blob_shapes(layer) for layer in small.layers} == {
        "data": [],
        **SMALL_SHAPES,
    }


@pytest.mark.parametrize(
    "body, want",
    [
        # Scale over two axes, and a scalar scale (num_axes 0 allocates a 0-axis blob)
        (
            'layer { name: "s" type: "Scale" bottom: "data" top: "s" scale_param { axis: 1 num_axes: 2 } }',
            [(4, 6)],
        ),
        (
            'layer { name: "s" type: "Scale" bottom: "data" top: "s" scale_param { num_axes: 0 bias_term: true } }',
            [(), ()],
        ),
        (
            'layer { name: "s" type: "Scale" bottom: "data" top: "s" scale_param { axis: 2 num_axes: -1 } }',
            [(6, 6)],
        ),
        # Scale/Bias with a second bottom: the multiplier is an input, only the bias is learned
        (
            'layer { name: "f" type: "Input" top: "f" input_param { shape { dim: 4 } } }\n'
            'layer { name: "s" type: "Scale" bottom: "data" bottom: "f" top: "s" scale_param { bias_term: true } }',
            [(4,)],
        ),
        (
            'layer { name: "f" type: "Input" top: "f" input_param { shape { dim: 4 } } }\n'
            'layer { name: "s" type: "Bias" bottom: "data" bottom: "f" top: "s" }',
            [],
        ),
        # InnerProduct with axis 2 flattens only the trailing axes
        (
            'layer { name: "s" type: "InnerProduct" bottom: "data" top: "s" inner_product_param { num_output: 7 axis: 2 } }',
            [(7, 36), (7,)],
        ),
        # N-d kernel given per axis, with dilation (which does not change the blob)
        (
            'layer { name: "s" type: "Convolution" bottom: "data" top: "s" convolution_param { num_output: 2 kernel_size: 3 kernel_size: 2 dilation: 2 } }',
            [(2, 4, 3, 2), (2,)],
        ),
        ('layer { name: "s" type: "ReLU" bottom: "data" top: "s" }', []),
    ],
)
def test_expected_shapes_follow_layer_params(write_net, body, want):
    net = load_net(write_net(INPUT + body + "\n"))
    assert expected_blob_shapes(net.layer("s")) == want


def test_embed_shapes(write_net):
    net = load_net(
        write_net(
            'layer { name: "ids" type: "Input" top: "ids" input_param { shape { dim: 2 dim: 5 } } }\n'
            'layer { name: "e" type: "Embed" bottom: "ids" top: "e" embed_param { input_dim: 100 num_output: 16 } }\n'
            'layer { name: "e2" type: "Embed" bottom: "ids" top: "e2" '
            "embed_param { input_dim: 10 num_output: 4 bias_term: false } }\n"
        )
    )
    assert expected_blob_shapes(net.layer("e")) == [(100, 16), (16,)]
    assert expected_blob_shapes(net.layer("e2")) == [(10, 4)]
    weights = random_weights(net)
    assert [w.shape for w in weights["e"]] == [(100, 16), (16,)]


def test_expected_shapes_agree_with_parameter_counts(small):
    # ir.shapes counts parameters independently; the blobs must hold exactly that many values
    # (BatchNorm's third blob, the moving-average factor, is bookkeeping, not a parameter)
    for layer in small.layers:
        factor = 1 if layer.type == "BatchNorm" else 0
        count = sum(math.prod(s) for s in expected_blob_shapes(layer)) - factor
        assert count == layer.params, layer.name


# ---------------------------------------------------------------------------------------------
# Round trip and random weights
# ---------------------------------------------------------------------------------------------


def _files(directory) -> list[str]:
    """What a test wrote besides the net's prototxt."""
    return sorted(p.name for p in directory.iterdir() if p.suffix != ".prototxt")


def test_round_trip(small, tmp_path):
    weights = random_weights(small, seed=3)
    path = tmp_path / "small.caffemodel"
    write_caffemodel(path, small, weights)
    got = read_caffemodel(path, small)
    assert isinstance(got, CaffemodelWeights) and got.warnings == []
    assert got.file_net_name == small.name
    assert set(got) == set(weights) == {n for n, s in SMALL_SHAPES.items() if s}
    for name, arrays in weights.items():
        assert len(got[name]) == len(arrays)
        for a, b in zip(arrays, got[name]):
            assert b.dtype == np.float32 and b.shape == a.shape
            np.testing.assert_array_equal(a, b)
    assert _files(tmp_path) == ["small.caffemodel"]  # no temporary file left behind


def test_written_file_is_caffes_format(small, tmp_path):
    path = tmp_path / "small.caffemodel"
    write_caffemodel(path, small, random_weights(small))
    model = caffe_pb2.NetParameter()
    model.ParseFromString(path.read_bytes())
    assert [layer.name for layer in model.layer] == [layer.name for layer in small.layers]
    fc = next(layer for layer in model.layer if layer.name == "fc")
    assert (fc.type, list(fc.bottom), list(fc.top)) == ("InnerProduct", ["pool"], ["fc"])
    assert fc.inner_product_param.num_output == 5
    assert [tuple(b.shape.dim) for b in fc.blobs] == [(5, 96), (5,)]
    assert not fc.blobs[0].HasField("num")
    assert len(next(layer for layer in model.layer if layer.name == "pool").blobs) == 0


def test_write_replaces_existing_file(small, tmp_path):
    path = tmp_path / "m.caffemodel"
    path.write_bytes(b"old")
    write_caffemodel(path, small, random_weights(small, seed=1))
    np.testing.assert_array_equal(
        read_caffemodel(path, small)["fc"][0], random_weights(small, seed=1)["fc"][0]
    )


def test_random_weights_are_deterministic_and_plausible(small):
    a, b, c = random_weights(small, seed=7), random_weights(small, seed=7), random_weights(small)
    for name in a:
        for x, y in zip(a[name], b[name]):
            np.testing.assert_array_equal(x, y)
            assert x.dtype == np.float32
    assert not np.array_equal(a["conv1"][0], c["conv1"][0])
    mean, var, factor = a["bn1"]
    assert factor.tolist() == pytest.approx([0.9])
    assert np.all(var / factor >= 0.5) and np.all(var / factor <= 1.5)
    assert np.all((a["sc1"][0] >= 0.5) & (a["sc1"][0] <= 1.5))
    assert np.all((a["relu1"][0] >= 0) & (a["relu1"][0] <= 0.5)) and a["relu2"][0].shape == ()
    # He-normal: std ~ sqrt(2 / fan_in), fan_in = 4 * 3 * 3
    assert 0.5 < a["conv1"][0].std() / math.sqrt(2 / 36) < 1.5
    free = random_weights(small, bn_scale_factor=None)["bn1"][2]
    assert 0.5 <= float(free[0]) <= 2.0
    unit = random_weights(small, bn_scale_factor=1.0)["bn1"]
    assert unit[2].tolist() == [1.0]


def test_random_weights_of_a_layer_do_not_depend_on_other_layers(small, write_net):
    fewer = load_net(
        write_net(SMALL.replace("prelu_param { channel_shared: true }", ""), "b.prototxt")
    )
    np.testing.assert_array_equal(random_weights(small)["fc"][0], random_weights(fewer)["fc"][0])


# ---------------------------------------------------------------------------------------------
# Older file formats
# ---------------------------------------------------------------------------------------------


def _blob(proto_blob, array, legacy=None, double=False):
    if legacy is not None:
        proto_blob.num, proto_blob.channels, proto_blob.height, proto_blob.width = legacy
    else:
        proto_blob.shape.dim.extend(array.shape)
    (proto_blob.double_data if double else proto_blob.data).extend(np.ravel(array).tolist())


def _legacy(shape):
    return (1,) * (4 - len(shape)) + tuple(shape)


def _hand_written(small, weights, *, v1=False, legacy=False, double=False, skip=(), extra=()):
    """A NetParameter built field by field, as old Caffe versions wrote them."""
    model = caffe_pb2.NetParameter()
    model.name = "hand"
    for layer in small.layers:
        if layer.name in skip:
            continue
        if v1:
            entry = model.layers.add()
            entry.name = layer.name
            entry.type = caffe_pb2.V1LayerParameter.CONVOLUTION  # the type is not checked
        else:
            entry = model.layer.add()
            entry.name, entry.type = layer.name, layer.type
        for array in weights.get(layer.name, []):
            _blob(entry.blobs.add(), array, _legacy(array.shape) if legacy else None, double)
    for name in extra:
        entry = model.layer.add()
        entry.name, entry.type = name, "Convolution"
        _blob(entry.blobs.add(), np.ones((2, 2), np.float32))
    return model.SerializeToString()


@pytest.mark.parametrize("v1", [False, True], ids=["layer", "V1 layers"])
@pytest.mark.parametrize("legacy", [False, True], ids=["shape", "legacy 4-D"])
@pytest.mark.parametrize("double", [False, True], ids=["data", "double_data"])
def test_reads_old_formats(small, tmp_path, v1, legacy, double):
    weights = random_weights(small, seed=5)
    # BatchNorm's scale factor must be representable as a legacy 1x1x1x1 blob too
    path = tmp_path / "old.caffemodel"
    path.write_bytes(_hand_written(small, weights, v1=v1, legacy=legacy, double=double))
    got = read_caffemodel(path, small)
    for name, arrays in weights.items():
        for a, b in zip(arrays, got[name]):
            assert b.shape == a.shape and b.dtype == np.float32
            np.testing.assert_array_equal(a, b)
    assert got.file_net_name == "hand"


def test_reads_v0_layers(small, tmp_path):
    weights = random_weights(small)
    model = caffe_pb2.NetParameter()
    for layer in small.layers:
        v0 = model.layers.add().layer
        v0.name, v0.type = layer.name, "conv"
        for array in weights.get(layer.name, []):
            _blob(v0.blobs.add(), array, legacy=_legacy(array.shape))
    path = tmp_path / "v0.caffemodel"
    path.write_bytes(model.SerializeToString())
    np.testing.assert_array_equal(read_caffemodel(path, small)["fc"][0], weights["fc"][0])


def test_legacy_rule_is_caffes_not_any_reshape(small, tmp_path):
    # (1, 1, 96, 5) holds the right number of values but is not (5, 96) padded with ones
    weights = random_weights(small)
    model = caffe_pb2.NetParameter.FromString(_hand_written(small, weights, legacy=True))
    fc = next(layer for layer in model.layer if layer.name == "fc")
    fc.blobs[0].height, fc.blobs[0].width = 96, 5
    path = tmp_path / "m.caffemodel"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(WeightsError) as err:
        read_caffemodel(path, small)
    assert "expects shape 5x96 but the caffemodel has 1x1x96x5 (legacy" in err.value.message
    assert "transpose" in str(err.value)


# ---------------------------------------------------------------------------------------------
# Files that are not (this net's) caffemodels
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def good_bytes(small):
    return _hand_written(small, random_weights(small))


def _read_error(path, net) -> WeightsError:
    with pytest.raises(WeightsError) as err:
        read_caffemodel(path, net)
    assert isinstance(err.value, CocotuneError)  # rendered without traceback, exit code 2
    return err.value


def test_truncated_file(small, tmp_path, good_bytes):
    path = tmp_path / "cut.caffemodel"
    path.write_bytes(good_bytes[: len(good_bytes) // 2])
    assert "truncated or corrupt" in _read_error(path, small).message


def test_random_bytes(small, tmp_path):
    path = tmp_path / "noise.caffemodel"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    message = _read_error(path, small).message
    assert "is not a caffemodel" in message


def test_prototxt_given_as_caffemodel(small, tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text(SMALL)
    message = _read_error(path, small).message
    assert "is a text file, not a binary caffemodel" in message and "prototxt" in message


@pytest.mark.parametrize(
    "make, expect",
    [
        (lambda p: p.write_bytes(b""), "is empty"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: None, "no such file"),
    ],
    ids=["empty", "directory", "missing"],
)
def test_unreadable_paths(small, tmp_path, make, expect):
    path = tmp_path / "m.caffemodel"
    make(path)
    assert expect in _read_error(path, small).message


def test_wrong_shape_names_layer_blob_and_shapes(small, tmp_path):
    weights = random_weights(small)
    weights["conv2"] = [np.zeros((6, 8, 3, 1), np.float32)]  # as if group were 1
    path = tmp_path / "m.caffemodel"
    path.write_bytes(_hand_written(small, weights))
    err = _read_error(path, small)
    assert err.message == (
        "layer 'conv2' (Convolution) blob 0 (weights): the net expects shape 6x4x3x1 "
        "but the caffemodel has 6x8x3x1"
    )
    assert any("group" in note for note in err.notes)


def test_wrong_blob_count_points_at_bias_term(small, tmp_path):
    weights = random_weights(small)
    weights["fc"] = weights["fc"][:1]
    path = tmp_path / "m.caffemodel"
    path.write_bytes(_hand_written(small, weights))
    err = _read_error(path, small)
    assert (
        "layer 'fc' (InnerProduct): the caffemodel has 1 blob(s) but the net expects 2"
        in err.message
    )
    assert any("inner_product_param.bias_term: true" in note for note in err.notes)


def test_too_few_values(small, tmp_path):
    weights = random_weights(small)
    model = caffe_pb2.NetParameter.FromString(_hand_written(small, weights))
    bias = next(layer for layer in model.layer if layer.name == "conv1").blobs[1]
    del bias.data[-1]
    path = tmp_path / "m.caffemodel"
    path.write_bytes(model.SerializeToString())
    assert (
        "blob 1 (bias): shape 8 needs 8 values but the caffemodel stores 7"
        in _read_error(path, small).message
    )


def test_several_mismatches_are_counted(small, tmp_path):
    weights = random_weights(small)
    weights["fc"] = [np.zeros((5, 7), np.float32), weights["fc"][1]]
    weights["up"] = [np.zeros((1, 2, 3), np.float32), weights["up"][1]]
    path = tmp_path / "m.caffemodel"
    path.write_bytes(_hand_written(small, weights))
    err = _read_error(path, small)
    assert "'up'" in err.message and any("1 more layer(s)" in n and "fc" in n for n in err.notes)


def test_missing_layers_are_all_listed(small, tmp_path):
    path = tmp_path / "m.caffemodel"
    path.write_bytes(_hand_written(small, random_weights(small), skip=("fc", "bn1")))
    assert _read_error(path, small).message == (
        f"caffemodel '{path}' has no weights for 2 of the net's 11 layers with weights: bn1, fc"
    )


def test_caffemodel_of_another_net(small, tmp_path, write_net):
    other = load_net(
        write_net(
            INPUT
            + (
                'layer { name: "a" type: "Convolution" bottom: "data" top: "a" convolution_param { num_output: 2 kernel_size: 1 } }\n'
                'layer { name: "b" type: "Convolution" bottom: "a" top: "b" convolution_param { num_output: 2 kernel_size: 1 } }\n'
            ),
            "other.prototxt",
        )
    )
    path = tmp_path / "other.caffemodel"
    write_caffemodel(path, other, random_weights(other))
    err = _read_error(path, small)
    assert err.message == f"caffemodel '{path}' holds none of this net's layers (it has: a, b)"


def test_extra_layers_are_ignored_with_a_warning(small, tmp_path):
    weights = random_weights(small)
    path = tmp_path / "m.caffemodel"
    path.write_bytes(_hand_written(small, weights, extra=("fc8_old", "conv0")))
    got = read_caffemodel(path, small)
    assert set(got) == set(weights)
    assert got.warnings == [
        f"caffemodel '{path}' has weights for 2 layer(s) this net does not have, ignored: "
        "fc8_old, conv0"
    ]


def test_weights_for_a_layer_that_stores_none(small, tmp_path):
    weights = dict(random_weights(small))
    weights["pool"] = [np.ones(3, np.float32)]
    path = tmp_path / "m.caffemodel"
    path.write_bytes(_hand_written(small, weights))
    assert "layer 'pool' (Pooling) stores no weights, but the caffemodel has 1 blob(s)" in (
        _read_error(path, small).message
    )


# ---------------------------------------------------------------------------------------------
# Writing checks its input
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, expect",
    [
        (lambda w: w.pop("fc"), "no weights given for 1 of the net's 11 layers with weights: fc"),
        (
            lambda w: w.update(nope=[]),
            "weights given for 1 layer(s) that the net does not have: nope",
        ),
        (lambda w: w.update(pool=[]), "weights given for 1 layer(s) that store no weights: pool"),
        (lambda w: w["sc1"].pop(), "layer 'sc1' (Scale): 1 array(s) given but the layer stores 2"),
        (
            lambda w: w["fc"].__setitem__(0, np.zeros((96, 5))),
            "layer 'fc' (InnerProduct) blob 0 (weights): the net expects shape 5x96 but the array has 96x5",
        ),
        (lambda w: w["bn1"].__setitem__(2, np.array([np.nan])), "has NaN or infinite values"),
    ],
    ids=["missing", "unknown", "no-weights layer", "count", "shape", "nan"],
)
def test_write_rejects_bad_weights(small, tmp_path, change, expect):
    weights = random_weights(small)
    change(weights)
    path = tmp_path / "m.caffemodel"
    with pytest.raises(WeightsError) as err:
        write_caffemodel(path, small, weights)
    assert expect in err.value.message
    assert _files(tmp_path) == []


def test_write_to_missing_directory(small, tmp_path):
    with pytest.raises(WeightsError, match="no directory"):
        write_caffemodel(tmp_path / "nope" / "m.caffemodel", small, random_weights(small))


# ---------------------------------------------------------------------------------------------
# Real nets (../shared/corpus)
# ---------------------------------------------------------------------------------------------


def test_resnet50_shapes():
    net = load_net(corpus_file("resnet__KaimingHe__ResNet-50-deploy.prototxt"))
    assert expected_blob_shapes(net.layer("conv1")) == [(64, 3, 7, 7), (64,)]  # bias_term default
    assert expected_blob_shapes(net.layer("res2a_branch1")) == [(256, 64, 1, 1)]  # bias_term: false
    assert expected_blob_shapes(net.layer("bn_conv1")) == [(64,), (64,), (1,)]
    assert expected_blob_shapes(net.layer("scale_conv1")) == [(64,), (64,)]
    assert expected_blob_shapes(net.layer("fc1000")) == [(1000, 2048), (1000,)]


def test_alexnet_grouped_convolution():
    net = load_net(corpus_file("alexnet__BVLC__bvlc_alexnet-deploy.prototxt"))
    assert expected_blob_shapes(net.layer("conv2")) == [(256, 48, 5, 5), (256,)]
    assert expected_blob_shapes(net.layer("fc6")) == [(4096, 9216), (4096,)]


def test_shufflenet_depthwise_fork():
    net = load_net(corpus_file("shufflenet__farmingyard__shufflenet_1x_g3_deploy.prototxt"))
    assert expected_blob_shapes(net.layer("resx1_conv2")) == [(54, 1, 3, 3)]


def test_binary_net_without_weights(small, tmp_path):
    # a NetParameter with this net's layers but no blobs: a binary prototxt, not trained weights
    path = tmp_path / "m.caffemodel"
    path.write_bytes(_hand_written(small, {}))
    assert _read_error(path, small).message == (
        f"caffemodel '{path}' holds none of this net's layers (it has no layers with weights)"
    )


def test_duplicate_layers_use_the_last_and_warn(small, tmp_path):
    weights = random_weights(small)
    model = caffe_pb2.NetParameter.FromString(_hand_written(small, random_weights(small, seed=9)))
    model.MergeFromString(_hand_written(small, weights))  # appends a second copy of every layer
    path = tmp_path / "m.caffemodel"
    path.write_bytes(model.SerializeToString())
    got = read_caffemodel(path, small)
    np.testing.assert_array_equal(got["conv1"][0], weights["conv1"][0])
    assert len(got.warnings) == 1 and "several layers named bias, bn1, conv1" in got.warnings[0]
