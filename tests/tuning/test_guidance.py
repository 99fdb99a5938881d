"""Guidance for the common mistakes: a net without modules, a subspace with many bad lines."""

from __future__ import annotations

import pytest

from cocotune.errors import SubspaceError
from cocotune.tuning.subspace import SubspaceErrors, parse_subspace_text
from tests.conftest import EXAMPLES

NO_MODULES = """
name: "plain"
input: "data"
input_shape { dim: 1 dim: 1 dim: 8 dim: 8 }
layer { name: "res2a_branch2a" type: "Convolution" bottom: "data" top: "c1"
        convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "fc" type: "InnerProduct" bottom: "c1" top: "fc"
        inner_product_param { num_output: 10 } }
"""
MODULES = ["res2a", "res2b", "res3a"]


@pytest.mark.parametrize("command", ["subspace", "blocks", "gen"])
def test_a_net_without_modules_points_to_cocotune_modules(command, run_cli, write_net, tmp_path):
    net = write_net(NO_MODULES, "plain.prototxt")
    sub = tmp_path / "sub.txt"
    sub.write_text("0.5\n")
    args = {
        "subspace": ["subspace", net],
        "blocks": ["blocks", net, sub],
        "gen": ["gen", net, sub, "-o", tmp_path / "pkg"],
    }[command]
    r = run_cli(*args)
    assert r.code == 2 and "Traceback" not in r.err
    assert f"{net}: the net has no module {{ }} blocks: nothing to prune" in r.err
    assert f"note: add them with: cocotune modules {net} > {tmp_path}/plain-modules.prototxt" in (
        r.err
    )
    assert not (tmp_path / "pkg").exists()


def test_the_suggested_modules_command_works(run_cli, write_net, tmp_path):
    net = write_net(NO_MODULES, "plain.prototxt")
    r = run_cli("modules", net)
    assert r.code == 0 and 'name: "res2a"' in r.out


def test_every_bad_line_and_token_of_a_subspace_is_reported():
    text = "\n".join(
        [
            "0.3 0.5 0.7",  # fine
            "0.3 abc 1.5",  # two bad tokens on one line
            "0.3 0.5",  # too few rates
            "res2a=0.3, res9=0.5",  # unknown module
            "0.5 0.5 0.5",  # fine
        ]
    )
    with pytest.raises(SubspaceErrors) as info:
        parse_subspace_text("sub.txt", text, MODULES)
    err = info.value
    assert isinstance(err, SubspaceError)
    where = [(e.line, e.col) for e in err.errors]
    assert where == [(2, 5), (2, 9), (3, 1), (4, 12)]
    text_out = err.render()
    assert "sub.txt:2:5: error: 'abc' is not a rate" in text_out
    assert "sub.txt:2:9: error: rate '1.5' is not below 1" in text_out
    assert "sub.txt:3:1: error: line has 2 rates for 3 modules" in text_out
    assert "sub.txt:4:12: error: unknown module 'res9'" in text_out
    assert text_out.splitlines()[-1] == "error: sub.txt: 4 errors on 3 lines (2, 3, 4)"


def test_a_single_bad_line_is_still_one_plain_error():
    with pytest.raises(SubspaceError) as info:
        parse_subspace_text("sub.txt", "0.3 0.5 0.7\n0.3 0.5 x\n", MODULES)
    assert not isinstance(info.value, SubspaceErrors)
    assert (info.value.line, info.value.col) == (2, 9)


def test_blocks_cli_lists_all_bad_lines(run_cli, tmp_path):
    sub = tmp_path / "sub.txt"
    sub.write_text("0.3 0.3 0.3 0.3 0.3 0.3\n0.3 0.3 0.3 0.3 0.3 7\n0.3 0.3\n")
    r = run_cli("blocks", EXAMPLES / "resnet_digits" / "net.prototxt", sub)
    assert r.code == 2
    assert f"{sub}:2:21: error: rate '7' is not below 1" in r.err
    assert f"{sub}:3:1: error: line has 2 rates for 6 modules" in r.err
