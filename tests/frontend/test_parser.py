"""The Prototxt grammar and the schema-checked transformer, feature by feature."""

from __future__ import annotations

import math

import pytest
from google.protobuf import text_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cocotune._proto import caffe_pb2
from cocotune.errors import CocotuneError
from cocotune.frontend.parser import parse_text, unescape
from cocotune.frontend.source import Source
from cocotune.frontend.to_proto import build_net_parameter


def parse(text: str):
    """Text → NetParameter through our grammar (no upgrades), plus modules."""
    source = Source("t.prototxt", text)
    parsed = build_net_parameter(source, parse_text(source), caffe_pb2.NetParameter)
    return parsed.net, parsed.modules


def test_comments_quotes_escapes_and_concatenation():
    net, _ = parse(
        "# a comment\n"
        "name: 'it\\'s' # trailing\n"
        'layer { name: "a\\tb\\x41\\101\\n" "-tail" type: "ReLU" }\n'
    )
    assert net.name == "it's"
    assert net.layer[0].name == "a\tbAA\n-tail"


def test_numbers_exponents_inf_nan_hex_octal():
    net, _ = parse(
        "layer { name: 'x' type: 'Power' power_param { power: -1.5e-2 scale: inf shift: -inf } }\n"
        "layer { name: 'y' type: 'Threshold' threshold_param { threshold: nan } }\n"
        "layer { name: 'z' type: 'Convolution' convolution_param { num_output: 0x10 group: 010"
        " kernel_size: 3 bias_filler { value: 2.5f } } }\n"
    )
    p = net.layer[0].power_param
    assert math.isclose(p.power, -0.015, rel_tol=1e-6)
    assert p.scale == math.inf and p.shift == -math.inf
    assert math.isnan(net.layer[1].threshold_param.threshold)
    c = net.layer[2].convolution_param
    assert (c.num_output, c.group, c.bias_filler.value) == (16, 8, 2.5)


def test_enums_bools_nested_with_and_without_colon_angle_brackets_lists():
    net, _ = parse(
        "layer { name: 'p' type: 'Pooling' pooling_param: { pool: AVE global_pooling: true } }\n"
        "layer < name: 'c' type: 'Convolution' convolution_param < pad: [1, 2] kernel_size: 3 > >\n"
        "layer { name: 'r' type: 'ReLU'; bottom: 'a', top: 'b' include { phase: TRAIN } }\n"
        "layer { name: 'e' type: 'Eltwise' eltwise_param { operation: 0 } }\n"
    )
    assert net.layer[0].pooling_param.pool == caffe_pb2.PoolingParameter.AVE
    assert net.layer[0].pooling_param.global_pooling is True
    assert list(net.layer[1].convolution_param.pad) == [1, 2]
    assert net.layer[2].include[0].phase == caffe_pb2.TRAIN
    assert net.layer[3].eltwise_param.operation == caffe_pb2.EltwiseParameter.PROD


def test_repeated_fields_in_any_order():
    net, _ = parse(
        "layer { bottom: 'a' name: 'x' bottom: 'b' type: 'Concat' top: 'c' bottom: 'd' }"
    )
    assert list(net.layer[0].bottom) == ["a", "b", "d"]


def test_module_blocks_keep_network_order_and_membership():
    net, modules = parse(
        "layer { name: 'a' type: 'ReLU' }\n"
        "module { name: 'm1' layer { name: 'b' type: 'ReLU' } layer { name: 'c' type: 'ReLU' } }\n"
        "layer { name: 'd' type: 'ReLU' }\n"
        "module { name: 'm2' layer { name: 'e' type: 'ReLU' } }\n"
    )
    assert [l.name for l in net.layer] == ["a", "b", "c", "d", "e"]
    assert [(m.name, m.layer_indices) for m in modules] == [("m1", [1, 2]), ("m2", [4])]
    assert modules[0].position.line == 2


def test_module_is_an_ordinary_field_name_inside_messages():
    net, _ = parse("layer { name: 'p' type: 'Python' python_param { module: 'a.b' layer: 'L' } }")
    assert net.layer[0].python_param.module == "a.b"


def test_crlf_and_bom_are_accepted(tmp_path):
    from cocotune.frontend.load import load_net

    path = tmp_path / "n.prototxt"
    path.write_bytes(
        b"\xef\xbb\xbfname: 'n'\r\nlayer {\r\n name: 'd' type: 'Input' top: 'd'\r\n"
        b" input_param { shape { dim: 2 dim: 3 } } }\r\n"
    )
    assert load_net(path).final_blobs()["d"].shape == (2, 3)


@pytest.mark.parametrize(
    "raw,expected",
    [("a\\nb", "a\nb"), ("\\\\", "\\"), ("\\x4a", "J"), ("\\0", "\0"), ("q\\'", "q'")],
)
def test_unescape(raw, expected):
    assert unescape(raw) == expected


# -----------------------------------------------------------------------------------------
# Property: random valid nets survive print -> parse unchanged
# -----------------------------------------------------------------------------------------

names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=12,
)
small = st.integers(min_value=0, max_value=2**31 - 1)
floats32 = st.floats(width=32, allow_nan=False)


@st.composite
def layers(draw):
    layer = caffe_pb2.LayerParameter()
    layer.name = draw(names)
    layer.type = draw(
        st.sampled_from(["Convolution", "Pooling", "LRN", "ReLU", "Concat", "Python"])
    )
    layer.bottom.extend(draw(st.lists(names, max_size=3)))
    layer.top.extend(draw(st.lists(names, max_size=2)))
    kind = draw(st.integers(0, 4))
    if kind == 0:
        c = layer.convolution_param
        c.num_output = draw(st.integers(0, 2**32 - 1))
        c.kernel_size.extend(draw(st.lists(st.integers(0, 2**32 - 1), max_size=3)))
        if draw(st.booleans()):
            c.bias_term = draw(st.booleans())
        if draw(st.booleans()):
            c.weight_filler.std = draw(floats32)
    elif kind == 1:
        p = layer.pooling_param
        p.pool = draw(st.sampled_from([0, 1, 2]))
        p.ceil_mode = draw(st.booleans())
        p.pad = draw(st.integers(0, 100))
    elif kind == 2:
        lrn = layer.lrn_param
        lrn.alpha = draw(floats32)
        lrn.beta = draw(st.floats(width=32, allow_nan=False, allow_infinity=True))
        lrn.norm_region = draw(st.sampled_from([0, 1]))
    elif kind == 3:
        rule = layer.include.add()
        rule.phase = draw(st.sampled_from([0, 1]))
        rule.stage.extend(draw(st.lists(names, max_size=2)))
        rule.min_level = draw(st.integers(-(2**31), 2**31 - 1))
    else:
        layer.python_param.module = draw(names)
        layer.python_param.param_str = draw(names)
        layer.loss_weight.extend(draw(st.lists(floats32, max_size=2)))
    return layer


@st.composite
def nets(draw):
    net = caffe_pb2.NetParameter()
    if draw(st.booleans()):
        net.name = draw(names)
    for layer in draw(st.lists(layers(), max_size=5)):
        net.layer.add().CopyFrom(layer)
    net.force_backward = draw(st.booleans())
    return net


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(net=nets(), as_one_line=st.booleans())
def test_printed_nets_parse_back_unchanged(net, as_one_line):
    text = text_format.MessageToString(net, as_one_line=as_one_line, as_utf8=True)
    parsed, _ = parse(text)
    assert parsed == net


@settings(max_examples=50, deadline=None)
@given(net=nets(), split=st.integers(0, 5))
def test_printed_nets_with_modules_parse_back_unchanged(net, split):
    """Wrapping a run of layers in a module block changes membership, nothing else."""
    head = caffe_pb2.NetParameter()
    head.CopyFrom(net)
    del head.layer[:]
    text = text_format.MessageToString(head)
    body = [text_format.MessageToString(l) for l in net.layer]
    k = min(split, len(body))
    text += "".join("layer {\n" + b + "}\n" for b in body[:k])
    if body[k:]:
        text += (
            "module {\n name: 'm'\n" + "".join("layer {\n" + b + "}\n" for b in body[k:]) + "}\n"
        )
    parsed, modules = parse(text)
    assert parsed == net
    assert [m.layer_indices for m in modules] == ([list(range(k, len(body)))] if body[k:] else [])


def test_solver_fields_are_checked():
    from cocotune.frontend.load import load_solver

    with pytest.raises(CocotuneError, match="unknown field 'base_rl' in solver"):
        import tempfile

        with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
            f.write("base_rl: 0.1\n")
        load_solver(f.name)
