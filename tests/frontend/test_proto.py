"""Tests for the Caffe schema (proto/caffe.proto) and its generated caffe_pb2 module.

Three kinds of check:
  * the committed cocotune/_proto/caffe_pb2.py is exactly what
    scripts/gen_caffe_pb2.py generates now;
  * field numbers, types and defaults agree with upstream BVLC Caffe
    (src/caffe/proto/caffe.proto at 9b891540183ddc834a02b2bd81b31afae71b2153);
  * the real nets and solvers in ../shared/corpus parse with
    google.protobuf.text_format as SOURCES.md says, plus the fork nets that
    need our two fork extensions.
"""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, text_format
from google.protobuf.descriptor import FieldDescriptor

from cocotune._proto import caffe_pb2

REPO_ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).parents[2].parent / "shared" / "corpus"
GENERATOR = REPO_ROOT / "scripts" / "gen_caffe_pb2.py"
MODULE = REPO_ROOT / "cocotune" / "_proto" / "caffe_pb2.py"


def _load_generator():
    spec = importlib.util.spec_from_file_location("gen_caffe_pb2", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _field(message: str, name: str) -> FieldDescriptor:
    return getattr(caffe_pb2, message).DESCRIPTOR.fields_by_name[name]


# ---------------------------------------------------------------------------
# 1. Generation is reproducible
# ---------------------------------------------------------------------------


def test_regenerated_module_is_identical(tmp_path):
    pytest.importorskip("grpc_tools", reason="grpcio-tools is needed to regenerate caffe_pb2")
    generator = _load_generator()
    fresh = generator.generate_module(tmp_path)
    assert (
        fresh.read_bytes() == MODULE.read_bytes()
    ), "cocotune/_proto/caffe_pb2.py is stale: run scripts/gen_caffe_pb2.py"


def test_check_mode_passes_on_committed_module(capsys):
    pytest.importorskip("grpc_tools", reason="grpcio-tools is needed to regenerate caffe_pb2")
    assert _load_generator().main(["--check"]) == 0


def test_check_mode_fails_on_stale_module(tmp_path, capsys):
    pytest.importorskip("grpc_tools", reason="grpcio-tools is needed to regenerate caffe_pb2")
    stale = tmp_path / "caffe_pb2.py"
    stale.write_bytes(MODULE.read_bytes() + b"# edited by hand\n")
    assert _load_generator().main(["--check", "--output", str(stale)]) == 1
    assert "changed lines" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# 2. Spot checks against upstream BVLC Caffe
# ---------------------------------------------------------------------------

T = FieldDescriptor

# (message, field, number, type, expected default or None to skip)
FIELDS = [
    ("NetParameter", "name", 1, T.TYPE_STRING, ""),
    ("NetParameter", "layers", 2, T.TYPE_MESSAGE, None),
    ("NetParameter", "input", 3, T.TYPE_STRING, None),
    ("NetParameter", "input_dim", 4, T.TYPE_INT32, None),
    ("NetParameter", "input_shape", 8, T.TYPE_MESSAGE, None),
    ("NetParameter", "layer", 100, T.TYPE_MESSAGE, None),
    ("LayerParameter", "name", 1, T.TYPE_STRING, ""),
    ("LayerParameter", "type", 2, T.TYPE_STRING, ""),
    ("LayerParameter", "phase", 10, T.TYPE_ENUM, 0),
    ("LayerParameter", "include", 8, T.TYPE_MESSAGE, None),
    ("LayerParameter", "transform_param", 100, T.TYPE_MESSAGE, None),
    ("LayerParameter", "convolution_param", 106, T.TYPE_MESSAGE, None),
    ("LayerParameter", "pooling_param", 121, T.TYPE_MESSAGE, None),
    ("LayerParameter", "batch_norm_param", 139, T.TYPE_MESSAGE, None),
    ("LayerParameter", "input_param", 143, T.TYPE_MESSAGE, None),
    ("LayerParameter", "clip_param", 148, T.TYPE_MESSAGE, None),
    ("BlobShape", "dim", 1, T.TYPE_INT64, None),
    ("BlobProto", "num", 1, T.TYPE_INT32, 0),
    ("BlobProto", "data", 5, T.TYPE_FLOAT, None),
    ("BlobProto", "shape", 7, T.TYPE_MESSAGE, None),
    ("BlobProto", "double_diff", 9, T.TYPE_DOUBLE, None),
    ("ConvolutionParameter", "num_output", 1, T.TYPE_UINT32, 0),
    ("ConvolutionParameter", "bias_term", 2, T.TYPE_BOOL, True),
    ("ConvolutionParameter", "kernel_size", 4, T.TYPE_UINT32, None),
    ("ConvolutionParameter", "group", 5, T.TYPE_UINT32, 1),
    ("ConvolutionParameter", "stride", 6, T.TYPE_UINT32, None),
    ("ConvolutionParameter", "dilation", 18, T.TYPE_UINT32, None),
    ("ConvolutionParameter", "axis", 16, T.TYPE_INT32, 1),
    ("PoolingParameter", "pool", 1, T.TYPE_ENUM, caffe_pb2.PoolingParameter.MAX),
    ("PoolingParameter", "kernel_size", 2, T.TYPE_UINT32, 0),
    ("PoolingParameter", "stride", 3, T.TYPE_UINT32, 1),
    ("PoolingParameter", "pad", 4, T.TYPE_UINT32, 0),
    ("PoolingParameter", "global_pooling", 12, T.TYPE_BOOL, False),
    ("PoolingParameter", "round_mode", 13, T.TYPE_ENUM, caffe_pb2.PoolingParameter.CEIL),
    ("LRNParameter", "local_size", 1, T.TYPE_UINT32, 5),
    ("LRNParameter", "alpha", 2, T.TYPE_FLOAT, 1.0),
    ("LRNParameter", "beta", 3, T.TYPE_FLOAT, 0.75),
    ("LRNParameter", "norm_region", 4, T.TYPE_ENUM, caffe_pb2.LRNParameter.ACROSS_CHANNELS),
    ("LRNParameter", "k", 5, T.TYPE_FLOAT, 1.0),
    ("BatchNormParameter", "use_global_stats", 1, T.TYPE_BOOL, False),
    ("BatchNormParameter", "moving_average_fraction", 2, T.TYPE_FLOAT, 0.999),
    ("BatchNormParameter", "eps", 3, T.TYPE_FLOAT, 1e-5),
    ("ScaleParameter", "bias_term", 4, T.TYPE_BOOL, False),
    ("InnerProductParameter", "num_output", 1, T.TYPE_UINT32, 0),
    ("InnerProductParameter", "axis", 5, T.TYPE_INT32, 1),
    ("ConcatParameter", "axis", 2, T.TYPE_INT32, 1),
    ("ConcatParameter", "concat_dim", 1, T.TYPE_UINT32, 1),
    ("EltwiseParameter", "operation", 1, T.TYPE_ENUM, caffe_pb2.EltwiseParameter.SUM),
    ("DropoutParameter", "dropout_ratio", 1, T.TYPE_FLOAT, 0.5),
    ("FlattenParameter", "end_axis", 2, T.TYPE_INT32, -1),
    ("ReshapeParameter", "num_axes", 3, T.TYPE_INT32, -1),
    ("ReductionParameter", "operation", 1, T.TYPE_ENUM, caffe_pb2.ReductionParameter.SUM),
    ("FillerParameter", "type", 1, T.TYPE_STRING, "constant"),
    ("FillerParameter", "std", 6, T.TYPE_FLOAT, 1.0),
    ("FillerParameter", "sparse", 7, T.TYPE_INT32, -1),
    ("NetState", "phase", 1, T.TYPE_ENUM, caffe_pb2.TEST),
    ("ParamSpec", "lr_mult", 3, T.TYPE_FLOAT, 1.0),
    ("SolverParameter", "train_net", 1, T.TYPE_STRING, ""),
    ("SolverParameter", "base_lr", 5, T.TYPE_FLOAT, 0.0),
    ("SolverParameter", "max_iter", 7, T.TYPE_INT32, 0),
    ("SolverParameter", "lr_policy", 8, T.TYPE_STRING, ""),
    ("SolverParameter", "momentum", 11, T.TYPE_FLOAT, 0.0),
    ("SolverParameter", "solver_mode", 17, T.TYPE_ENUM, caffe_pb2.SolverParameter.GPU),
    ("SolverParameter", "random_seed", 20, T.TYPE_INT64, -1),
    ("SolverParameter", "net", 24, T.TYPE_STRING, ""),
    ("SolverParameter", "delta", 31, T.TYPE_FLOAT, 1e-8),
    ("SolverParameter", "type", 40, T.TYPE_STRING, "SGD"),
    ("SolverParameter", "layer_wise_reduce", 41, T.TYPE_BOOL, True),
    ("SolverParameter", "weights", 42, T.TYPE_STRING, None),
    ("V1LayerParameter", "layer", 1, T.TYPE_MESSAGE, None),
    ("V1LayerParameter", "type", 5, T.TYPE_ENUM, caffe_pb2.V1LayerParameter.NONE),
    ("V1LayerParameter", "convolution_param", 10, T.TYPE_MESSAGE, None),
    ("V1LayerParameter", "param", 1001, T.TYPE_STRING, None),
    ("V0LayerParameter", "kernelsize", 8, T.TYPE_UINT32, 0),
    ("V0LayerParameter", "biasterm", 4, T.TYPE_BOOL, True),
    ("V0LayerParameter", "k", 22, T.TYPE_FLOAT, 1.0),
    ("V0LayerParameter", "hdf5_output_param", 1001, T.TYPE_MESSAGE, None),
    ("PReLUParameter", "channel_shared", 2, T.TYPE_BOOL, False),
]


@pytest.mark.parametrize(
    "message, name, number, ftype, default", FIELDS, ids=[f"{m}.{n}" for m, n, *_ in FIELDS]
)
def test_field_matches_upstream(message, name, number, ftype, default):
    field = _field(message, name)
    assert field.number == number
    assert field.type == ftype
    if default is None:
        return
    if isinstance(default, float):
        # float32 defaults come back rounded to single precision
        assert math.isclose(field.default_value, default, rel_tol=1e-6)
    else:
        assert field.default_value == default


def test_labels_and_packing():
    assert _field("NetParameter", "layer").is_repeated
    assert _field("NetParameter", "layers").is_repeated
    assert _field("BlobShape", "dim").is_packed
    assert _field("BlobProto", "data").is_packed
    assert not _field("Datum", "float_data").is_packed  # upstream leaves this one unpacked
    assert _field("ConvolutionParameter", "kernel_size").is_repeated
    assert not _field("PoolingParameter", "kernel_size").is_repeated
    # ClipParameter is the only message with `required` fields upstream.
    assert _field("ClipParameter", "min").is_required
    assert _field("ClipParameter", "max").is_required


def test_enum_values_match_upstream():
    v1 = caffe_pb2.V1LayerParameter
    assert v1.CONVOLUTION == 4
    assert v1.POOLING == 17
    assert v1.RELU == 18
    assert v1.INNER_PRODUCT == 14
    assert v1.SOFTMAX == 20
    assert v1.SOFTMAX_LOSS == 21
    assert v1.DROPOUT == 6
    assert v1.LRN == 15
    assert v1.CONCAT == 3
    assert v1.ABSVAL == 35
    assert v1.DECONVOLUTION == 39
    assert len(v1.LayerType.keys()) == 40
    assert caffe_pb2.TRAIN == 0 and caffe_pb2.TEST == 1
    assert caffe_pb2.PoolingParameter.AVE == 1
    assert caffe_pb2.PoolingParameter.FLOOR == 1
    assert caffe_pb2.EltwiseParameter.PROD == 0
    assert caffe_pb2.EltwiseParameter.MAX == 2
    assert caffe_pb2.ReductionParameter.MEAN == 4
    assert caffe_pb2.HingeLossParameter.L1 == 1
    assert caffe_pb2.SolverParameter.ADAM == 5
    assert caffe_pb2.FillerParameter.AVERAGE == 2


def test_all_upstream_messages_present():
    expected = {
        "BlobShape", "BlobProto", "BlobProtoVector", "Datum", "FillerParameter",
        "NetParameter", "SolverParameter", "SolverState", "NetState", "NetStateRule",
        "ParamSpec", "LayerParameter", "TransformationParameter", "LossParameter",
        "AccuracyParameter", "ArgMaxParameter", "ClipParameter", "ConcatParameter",
        "BatchNormParameter", "BiasParameter", "ContrastiveLossParameter",
        "ConvolutionParameter", "CropParameter", "DataParameter", "DropoutParameter",
        "DummyDataParameter", "EltwiseParameter", "ELUParameter", "EmbedParameter",
        "ExpParameter", "FlattenParameter", "HDF5DataParameter", "HDF5OutputParameter",
        "HingeLossParameter", "ImageDataParameter", "InfogainLossParameter",
        "InnerProductParameter", "InputParameter", "LogParameter", "LRNParameter",
        "MemoryDataParameter", "MVNParameter", "ParameterParameter", "PoolingParameter",
        "PowerParameter", "PythonParameter", "RecurrentParameter", "ReductionParameter",
        "ReLUParameter", "ReshapeParameter", "ScaleParameter", "SigmoidParameter",
        "SliceParameter", "SoftmaxParameter", "SwishParameter", "TanHParameter",
        "TileParameter", "ThresholdParameter", "WindowDataParameter", "SPPParameter",
        "V1LayerParameter", "V0LayerParameter", "PReLUParameter",
    }  # fmt: skip
    names = set(caffe_pb2.DESCRIPTOR.message_types_by_name)
    assert len(expected) == 63
    assert names - expected == {"ShuffleChannelParameter"}
    assert expected <= names
    assert set(caffe_pb2.DESCRIPTOR.enum_types_by_name) == {"Phase"}
    assert caffe_pb2.DESCRIPTOR.package == "caffe"
    file_proto = descriptor_pb2.FileDescriptorProto()
    caffe_pb2.DESCRIPTOR.CopyToProto(file_proto)
    assert file_proto.syntax in ("", "proto2")  # protoc leaves proto2 implicit


def test_fork_extensions():
    ceil_mode = _field("PoolingParameter", "ceil_mode")
    assert (ceil_mode.number, ceil_mode.type, ceil_mode.default_value) == (1013, T.TYPE_BOOL, True)
    shuffle = _field("LayerParameter", "shuffle_channel_param")
    assert shuffle.number == 164
    assert shuffle.message_type.name == "ShuffleChannelParameter"
    group = _field("ShuffleChannelParameter", "group")
    assert (group.number, group.type, group.default_value) == (1, T.TYPE_UINT32, 1)


def test_fork_numbers_do_not_collide():
    for message in ("LayerParameter", "PoolingParameter"):
        numbers = [f.number for f in getattr(caffe_pb2, message).DESCRIPTOR.fields]
        assert len(numbers) == len(set(numbers))


@pytest.mark.parametrize(
    "name", ["prior_box_param", "detection_output_param", "permute_param", "roi_pooling_param"]
)
def test_detection_extensions_are_absent(name):
    assert name not in caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name


def test_binary_round_trip_of_fork_fields():
    layer = caffe_pb2.LayerParameter(name="pool", type="Pooling")
    layer.pooling_param.ceil_mode = False
    layer.shuffle_channel_param.group = 3
    decoded = caffe_pb2.LayerParameter.FromString(layer.SerializeToString())
    assert decoded.pooling_param.HasField("ceil_mode") and not decoded.pooling_param.ceil_mode
    assert not decoded.pooling_param.HasField("round_mode")
    assert decoded.shuffle_channel_param.group == 3


# ---------------------------------------------------------------------------
# 3. The shared corpus
# ---------------------------------------------------------------------------


def _corpus_rows() -> list[tuple[str, str, str]]:
    """(file, description, check) for each file row of SOURCES.md's table."""
    sources = CORPUS / "SOURCES.md"
    if not sources.is_file():
        return []
    rows = []
    for line in sources.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 7 and cells[0].endswith(".prototxt"):
            rows.append((cells[0], cells[5], cells[6]))
    return rows


CORPUS_ROWS = _corpus_rows()
STRICT_ROWS = [row for row in CORPUS_ROWS if row[2].startswith("parses")]


def _require_corpus():
    if not CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS}")


def _parse(path: Path):
    message = (
        caffe_pb2.SolverParameter()
        if path.name.startswith("solver__")
        else caffe_pb2.NetParameter()
    )
    text_format.Parse(path.read_text(encoding="utf-8"), message)
    return message


def _layer_count(net) -> int:
    return len(net.layer) + len(net.layers)


def test_corpus_index_is_readable():
    _require_corpus()
    assert len(CORPUS_ROWS) == 39
    assert len(STRICT_ROWS) == 34


@pytest.mark.parametrize(
    "file_name, description", [(f, d) for f, d, _ in STRICT_ROWS], ids=[r[0] for r in STRICT_ROWS]
)
def test_corpus_file_parses(file_name, description):
    _require_corpus()
    message = _parse(CORPUS / file_name)
    if file_name.startswith("solver__"):
        assert message.ListFields(), "solver parsed empty"
        return
    count = re.search(r"(\d+) layers", description)
    assert count, description
    assert _layer_count(message) == int(count.group(1))


@pytest.mark.parametrize(
    "file_name",
    [
        "resnext__soeaver__deploy_resnext50-32x4d.prototxt",
        "densenet__shicai__DenseNet_121.prototxt",
    ],
)
def test_ceil_mode_fork_nets_parse(file_name):
    _require_corpus()
    net = _parse(CORPUS / file_name)
    pools = [layer.pooling_param for layer in net.layer if layer.type == "Pooling"]
    flagged = [p for p in pools if p.HasField("ceil_mode")]
    assert flagged and all(p.ceil_mode is False for p in flagged)
    assert not any(p.HasField("round_mode") for p in pools)


def test_shufflenet_parses():
    _require_corpus()
    net = _parse(CORPUS / "shufflenet__farmingyard__shufflenet_1x_g3_deploy.prototxt")
    assert len(net.layer) == 217
    types = [layer.type for layer in net.layer]
    assert types.count("ShuffleChannel") == 15
    assert types.count("ConvolutionDepthwise") == 16
    groups = {
        layer.shuffle_channel_param.group for layer in net.layer if layer.type == "ShuffleChannel"
    }
    assert groups == {3}


def test_v0_lenet_parses_through_nested_layer():
    _require_corpus()
    net = _parse(CORPUS / "lenet__BVLC-V0-2e33058__lenet.prototxt")
    assert len(net.layer) == 0 and len(net.layers) == 8
    assert all(v1.HasField("layer") for v1 in net.layers)
    v0_types = [v1.layer.type for v1 in net.layers]
    assert v0_types.count("conv") == 2
    assert v0_types.count("pool") == 2
    assert v0_types.count("innerproduct") == 2
    conv1 = net.layers[0].layer
    assert (conv1.name, conv1.num_output, conv1.kernelsize) == ("conv1", 20, 5)
    assert list(net.input_dim) == [64, 1, 28, 28]


def test_v1_lenet_parses_with_enum_types():
    _require_corpus()
    net = _parse(CORPUS / "lenet__BVLC-V1-11a4c16__lenet.prototxt")
    types = [v1.type for v1 in net.layers]
    assert types.count(caffe_pb2.V1LayerParameter.CONVOLUTION) == 2
    assert types.count(caffe_pb2.V1LayerParameter.POOLING) == 2


@pytest.mark.parametrize(
    "file_name, missing",
    [
        ("ssd__chuanqi305__MobileNetSSD_deploy.prototxt", "_param"),
        (
            "fasterrcnn__rbgirshick__pascal_voc-VGG16-faster_rcnn_end2end-test.prototxt",
            "roi_pooling_param",
        ),
    ],
)
def test_detection_fork_nets_are_rejected(file_name, missing):
    _require_corpus()
    with pytest.raises(text_format.ParseError, match=missing):
        _parse(CORPUS / file_name)
