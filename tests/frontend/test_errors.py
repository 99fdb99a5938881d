"""One test per class of bad input: the message, its position, the caret, exit code 2."""

from __future__ import annotations

import re

import pytest

INPUT = """layer {
  name: "data" type: "Input" top: "data"
  input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } }
}
"""


def first_line(err: str) -> str:
    return err.splitlines()[0]


def caret_col(err: str) -> int:
    """Column (1-based) of the caret under the source line."""
    lines = err.splitlines()
    src = next(i for i, l in enumerate(lines) if re.match(r"\s+\d+ \| ", l))
    gutter = lines[src].index("| ") + 2
    return lines[src + 1].index("^") - gutter + 1


CASES = [
    # (id, prototxt, expected "line:col", message fragment)
    ("unterminated string", 'layer {\n  name: "conv1\n}\n', "2:9", "unterminated string"),
    ("missing brace", 'layer {\n  name: "a"\n  type: "ReLU"\n', "1:7", "'{' is never closed"),
    ("stray closing brace", 'layer { name: "a" type: "ReLU" } }\n', "1:34", "unmatched '}'"),
    ("missing colon", 'layer { name "a" }\n', "1:14", "expected ':'"),
    ("stray token", 'layer { name: "a" : }\n', "1:19", "unexpected ':'"),
    (
        "unknown field",
        INPUT + 'layer { name: "c" type: "Convolution" bottom: "data" top: "c"\n'
        "  convolution_param { num_output: 4 kernal_size: 3 } }\n",
        "6:37",
        "unknown field 'kernal_size' in convolution_param (did you mean 'kernel_size'?)",
    ),
    (
        "wrong value type (float for int)",
        INPUT + 'layer { name: "c" type: "Convolution" '
        'bottom: "data" top: "c"\n  convolution_param { num_output: 2.5 kernel_size: 3 } }\n',
        "6:35",
        "field 'num_output' expects an unsigned integer, found 2.5",
    ),
    (
        "wrong value type (number for string)",
        "layer { name: 3 }\n",
        "1:15",
        "field 'name' expects a quoted string, found 3",
    ),
    (
        "message given a scalar",
        'layer { name: "a" pooling_param: 3 }\n',
        "1:34",
        "field 'pooling_param' is a message",
    ),
    (
        "bad enum",
        INPUT + 'layer { name: "p" type: "Pooling" bottom: "data" top: "p"\n'
        "  pooling_param { pool: MEAN kernel_size: 2 } }\n",
        "6:25",
        "invalid value 'MEAN' for pool",
    ),
    (
        "negative unsigned",
        INPUT + 'layer { name: "c" type: "Convolution" bottom: "data" top: "c"\n'
        "  convolution_param { num_output: -4 kernel_size: 3 } }\n",
        "6:35",
        "out of range",
    ),
    (
        "singular field twice",
        'layer { name: "a" name: "b" }\n',
        "1:19",
        "field 'name' in layer is given twice",
    ),
    (
        "undefined bottom",
        INPUT + 'layer { name: "r" type: "ReLU" bottom: "dta" top: "r" }\n',
        "5:40",
        "reads blob 'dta', which no earlier layer produces (did you mean 'data'?)",
    ),
    (
        "duplicate layer name",
        INPUT + 'layer { name: "data" type: "ReLU" bottom: "data" top: "x" }\n',
        "5:15",
        "duplicate layer name 'data' (first at line 2)",
    ),
    (
        "top produced twice",
        INPUT + 'layer { name: "a" type: "ReLU" bottom: "data" top: "x" }\n'
        'layer { name: "b" type: "Sigmoid" bottom: "data" top: "x" }\n',
        "6:55",
        "blob 'x' is produced twice: by layer 'a' and by layer 'b'",
    ),
    (
        "nested module",
        'module { name: "m" module { name: "n" } }\n',
        "1:20",
        "modules cannot be nested",
    ),
    (
        "unnamed module",
        INPUT + 'module { layer { name: "r" type: "ReLU" bottom: "data" ' 'top: "data" } }\n',
        "5:1",
        "module has no name",
    ),
    ("empty module", 'module { name: "m" }\n', "1:1", "module 'm' holds no layer"),
    (
        "duplicate module",
        INPUT + 'module { name: "m" layer { name: "r" type: "ReLU" '
        'bottom: "data" top: "data" } }\nmodule { name: "m" layer { name: "s" type: "ReLU" '
        'bottom: "data" top: "data" } }\n',
        "6:1",
        "module 'm' is defined twice (first at line 5)",
    ),
    (
        "kernel larger than padded input",
        INPUT + 'layer { name: "c" type: "Convolution" '
        'bottom: "data" top: "c"\n  convolution_param { num_output: 4 kernel_size: 11 pad: 1 } }\n',
        "6:50",
        "layer 'c' (Convolution): kernel 11x11",
    ),
    (
        "pooling kernel larger than input",
        INPUT + 'layer { name: "p" type: "Pooling" '
        'bottom: "data" top: "p"\n  pooling_param { kernel_size: 9 } }\n',
        "6:32",
        "layer 'p' (Pooling): kernel 9 is larger than the padded input 8+2*0",
    ),
    (
        "eltwise mismatch",
        INPUT + 'layer { name: "p" type: "Pooling" bottom: "data" top: "p"\n'
        '  pooling_param { kernel_size: 2 stride: 2 } }\nlayer { name: "e" type: "Eltwise" '
        'bottom: "data" bottom: "p" top: "e" }\n',
        "7:58",
        "'data' is 1x3x8x8 but 'p' is 1x3x4x4",
    ),
    (
        "concat mismatch",
        INPUT + 'layer { name: "p" type: "Pooling" bottom: "data" top: "p"\n'
        '  pooling_param { kernel_size: 2 stride: 2 } }\nlayer { name: "c" type: "Concat" '
        'bottom: "data" bottom: "p" top: "c" }\n',
        "7:57",
        "inputs disagree outside the concatenation axis 1",
    ),
    (
        "V1 bad enum",
        'layers { name: "a" type: CONVOLUTON }\n',
        "1:26",
        "invalid value 'CONVOLUTON' for type (did you mean 'CONVOLUTION'?)",
    ),
]


@pytest.mark.parametrize("text,where,fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_message_and_position(run_cli, write_net, text, where, fragment):
    path = write_net(text)
    result = run_cli("check", path)
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    head = first_line(result.err)
    assert head.startswith(f"{path}:{where}: error: "), head
    assert fragment in head, head
    line, col = (int(v) for v in where.split(":"))
    assert f"{line:>5} | " in result.err  # the source line is shown
    assert caret_col(result.err) == col


def test_bad_enum_lists_valid_names(run_cli, write_net):
    path = write_net('layer { name: "p" type: "Pooling" pooling_param { pool: MEAN } }\n')
    result = run_cli("check", path)
    assert "valid values of PoolMethod: MAX, AVE, STOCHASTIC" in result.err


def test_every_unsupported_layer_type_is_listed_at_once(run_cli, write_net):
    path = write_net(
        INPUT + 'layer { name: "perm" type: "Permute" bottom: "data" top: "perm" '
        "permute_param { order: 0 } }\n"
        'layer { name: "prior" type: "PriorBox" bottom: "perm" bottom: "data" top: "prior" }\n'
        'layer { name: "frob" type: "Frobnicate" bottom: "data" top: "f" }\n'
        'layer { name: "py" type: "Python" bottom: "data" top: "py"\n'
        '  python_param { module: "rpn.layer" layer: "Proposal" } }\n'
    )
    result = run_cli("check", path)
    assert result.code == 2
    err = result.err
    for name, kind, line in (
        ("perm", "Permute", 5),
        ("prior", "PriorBox", 6),
        ("frob", "Frobnicate", 7),
        ("py", "Python", 8),
    ):
        assert f"layer '{name}': unsupported type '{kind}'" in err
        assert f"{path}:{line}:" in err
    assert "SSD fork (weiliu89/caffe)" in err
    assert "Python layer rpn.layer.Proposal" in err
    assert err.splitlines()[-1] == (
        "error: 4 problems (unsupported types: Frobnicate (1 layer), Permute (1 layer), "
        "PriorBox (1 layer), Python (1 layer))"
    )
    # The Permute layer's own permute_param (an SSD field) only repeats its type: not listed.
    assert "fork field 'permute_param'" not in err


def test_unsupported_fork_field_is_reported_not_a_typo(run_cli, write_net):
    path = write_net(
        INPUT + 'layer { name: "r" type: "ReLU" bottom: "data" top: "r" '
        "roi_pooling_param { pooled_h: 7 } }\n"
    )
    result = run_cli("check", path)
    assert result.code == 2
    assert first_line(result.err) == (
        f"{path}:5:56: error: layer 'r': unsupported fork field 'roi_pooling_param' in layer "
        "(roi_pooling_param: Faster R-CNN fork (rbgirshick/caffe-fast-rcnn) field in "
        "LayerParameter)"
    )
    assert caret_col(result.err) == 56


@pytest.mark.parametrize(
    "setup,fragment",
    [
        (lambda p: p, "no such file"),
        (lambda p: (p.mkdir(), p)[1], "it is a directory"),
        (lambda p: (p.write_text("  \n# nothing\n"[:3]), p)[1], "is empty"),
        (lambda p: (p.write_bytes(b"\x08\x01\x12\x00\x00binary"), p)[1], "is a binary file"),
        (lambda p: (p.write_bytes(b'name: "caf\xe9"\n'), p)[1], "is not valid UTF-8"),
    ],
    ids=["missing", "directory", "empty", "binary", "latin-1"],
)
def test_unreadable_inputs(run_cli, tmp_path, setup, fragment):
    path = setup(tmp_path / "net.prototxt")
    result = run_cli("check", path)
    assert result.code == 2
    assert fragment in result.err
    assert "Traceback" not in result.err


def test_non_utf8_points_at_the_byte(run_cli, tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_bytes(b'layer {\n  name: "caf\xe9"\n}\n')
    result = run_cli("check", path)
    assert first_line(result.err).startswith(f"{path}:2:13: error: ")


def test_data_layer_without_shape_asks_for_input_shape(run_cli, write_net):
    path = write_net(
        'layer { name: "d" type: "Data" top: "data" top: "label"\n'
        '  data_param { source: "x_lmdb" batch_size: 4 backend: LMDB } }\n'
    )
    result = run_cli("check", path)
    assert result.code == 2
    assert "the file determines N=4 from data_param.batch_size (line 2)" in result.err
    assert "give --input-shape data=4,C,H,W" in result.err
    ok = run_cli("check", path, "--input-shape", "data=4,3,32,32", "--json")
    assert ok.code == 0, ok.err
    assert '"label": [\n' in ok.out


def test_phase_filtered_producer_is_explained(run_cli, write_net):
    path = write_net(
        'layer { name: "d" type: "Input" top: "data" include { phase: TRAIN }\n'
        "  input_param { shape { dim: 1 dim: 1 dim: 4 dim: 4 } } }\n"
        'layer { name: "r" type: "ReLU" bottom: "data" top: "r" }\n'
    )
    result = run_cli("check", path)
    assert result.code == 2
    assert "its include/exclude rules leave it out of the TEST phase" in result.err
    assert run_cli("check", path, "--phase", "TRAIN").code == 0


def test_bad_input_shape_option(run_cli, write_net):
    path = write_net(INPUT)
    assert "bad --input-shape" in run_cli("check", path, "--input-shape", "data=1,x").err
    assert "does not have" in run_cli("check", path, "--input-shape", "nope=1,2").err


def test_internal_error_exits_1(run_cli, write_net, monkeypatch):
    import cocotune.frontend.load as load

    def boom(*a, **k):
        raise RuntimeError("bug")

    monkeypatch.setattr(load, "load_net", boom)
    result = run_cli("check", write_net(INPUT))
    assert result.code == 1
    assert "internal error" in result.err and "Traceback" in result.err
