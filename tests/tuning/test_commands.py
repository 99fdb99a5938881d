"""``cocotune subspace`` and ``cocotune blocks``: outputs, JSON keys, errors and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cocotune.frontend.load import load_net
from cocotune.tuning.pruning import analyze_pruning
from cocotune.tuning.subspace import parse_subspace_text
from tests.conftest import EXAMPLES, REPO

RESNET = EXAMPLES / "resnet_digits"
NET, SUBSPACE = RESNET / "net.prototxt", RESNET / "subspace.txt"
MODULES = ["res2a", "res2b", "res3a", "res3b", "res4a", "res4b"]


# -- subspace ---------------------------------------------------------------------------------


def test_subspace_prints_a_readable_subspace(run_cli):
    r = run_cli("subspace", NET, "-n", "12", "--rates", "0.3,0.5,0.7", "--seed", "0")
    assert r.code == 0, r.err
    assert "#   res2a res2b res3a res3b res4a res4b" in r.out
    assert "12 of 729 possible configurations" in r.err
    s = parse_subspace_text("out.txt", r.out, MODULES)
    assert len(s) == 12 and not s.warnings
    analysis = analyze_pruning(load_net(NET))
    written = [int(line.split("# ")[1].split()[0]) for line in r.out.splitlines() if line[0] != "#"]
    assert written == [analysis.cost(c)[0] for c in s.configs]
    again = run_cli("subspace", NET, "-n", "12", "--rates", "30%,50%,70%", "--seed", "0")
    assert again.out.splitlines()[2:] == r.out.splitlines()[2:]  # same sample, same text


def test_subspace_rate_zero_only_when_asked(run_cli):
    r = run_cli("subspace", NET, "-n", "1000", "--rates", "0,0.5")
    s = parse_subspace_text("out.txt", r.out, MODULES)
    assert len(s) == 64 and {0.0} == set(s.configs[-1].values())


@pytest.mark.parametrize(
    "args, message",
    [
        (["--rates", "0.3,1.2"], "rate '1.2' is not below 1"),
        (["--rates", "0.3,abc"], "'abc' is not a rate"),
        (["-n", "0"], "expected a positive integer"),
    ],
)
def test_subspace_bad_arguments(run_cli, args, message):
    r = run_cli("subspace", NET, *args)
    assert r.code == 2 and message in r.err


def test_subspace_net_without_modules(run_cli, write_net):
    path = write_net(
        'layer { name: "data" type: "Input" top: "data" '
        "input_param { shape { dim: 1 dim: 1 dim: 4 dim: 4 } } }\n"
        'layer { name: "c" type: "Convolution" bottom: "data" top: "c" '
        "convolution_param { num_output: 2 kernel_size: 1 } }\n"
    )
    for args in (["subspace", path], ["blocks", path, SUBSPACE]):
        r = run_cli(*args)
        assert r.code == 2
        assert "the net has no module { } blocks: nothing to prune" in r.err
        assert "Traceback" not in r.err


# -- blocks -----------------------------------------------------------------------------------


def test_blocks_table(run_cli):
    r = run_cli("blocks", NET, SUBSPACE)
    assert r.code == 0, r.err
    out = r.out
    assert "grammar (" in out and "  r0 -> " in out and "res2a@0.3" in out
    assert "tuning blocks (" in out and "frequency" in out and "params" in out
    assert "composite vectors:" in out
    # One composite row per configuration, numbered by its line in the file.
    rows = out.split("composite vectors:")[1].strip().splitlines()[2:]
    assert len(rows) == 16 and rows[0].split()[0] == "4"


def test_blocks_json_keys(run_cli):
    r = run_cli("blocks", NET, SUBSPACE, "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert {"grammar", "blocks", "composite"} <= set(doc)
    assert len(doc["composite"]) == 16
    assert all(isinstance(v, list) for v in doc["grammar"].values())
    analysis = analyze_pruning(load_net(NET))
    for block in doc["blocks"]:
        assert {"id", "modules", "rates", "frequency", "params"} <= set(block)
        expected = sum(
            analysis.module_cost(m, rate).params
            for m, rate in zip(block["modules"], block["rates"])
        )
        assert block["params"] == expected
    ids = {b["id"] for b in doc["blocks"]}
    assert all(set(vector) <= ids for vector in doc["composite"])


def test_blocks_module_mode(run_cli):
    doc = json.loads(run_cli("blocks", NET, SUBSPACE, "--json", "--blocks", "module").out)
    assert doc["grammar"] == {}
    assert all(len(b["modules"]) == 1 for b in doc["blocks"])
    assert "grammar: none" in run_cli("blocks", NET, SUBSPACE, "--blocks", "module").out


def test_blocks_subspace_errors_have_file_line_and_token(run_cli, tmp_path):
    bad = tmp_path / "subspace.txt"
    bad.write_text("# header\n0.3 0.3 0.3 0.3 0.3 0.3\n0.3 0.5 res3b\n")
    r = run_cli("blocks", NET, bad)
    assert r.code == 2
    assert f"{bad}:3:9: error: 'res3b' is not a rate" in r.err
    assert "0.3 0.5 res3b" in r.err and "Traceback" not in r.err

    bad.write_text("0.3 0.5 0.5\n")
    r = run_cli("blocks", NET, bad)
    assert r.code == 2
    assert f"{bad}:1:1: error: line has 3 rates for 6 modules (res2a, res2b" in r.err

    bad.write_text("res2a=0.3, res5a=0.5\n")
    r = run_cli("blocks", NET, bad)
    assert "unknown module 'res5a' (did you mean" in r.err and r.code == 2


def test_blocks_warns_about_duplicates(run_cli, tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("res2a=0.3\n30% 0 0 0 0 0\nres2a=0.3 res3a=0.5\n")
    r = run_cli("blocks", NET, path, "--json")
    assert r.code == 0
    assert f"{path}:2: warning: configuration repeats line 1; dropped" in r.err
    assert len(json.loads(r.out)["composite"]) == 2


def test_blocks_ignores_modules_without_prunable_layers(run_cli, write_net, tmp_path):
    net = write_net(
        'layer { name: "data" type: "Input" top: "data" '
        "input_param { shape { dim: 1 dim: 2 dim: 4 dim: 4 } } }\n"
        'module { name: "a" layer { name: "c1" type: "Convolution" bottom: "data" top: "c1" '
        "convolution_param { num_output: 8 kernel_size: 3 pad: 1 } }\n"
        'layer { name: "c2" type: "Convolution" bottom: "c1" top: "c2" '
        "convolution_param { num_output: 4 kernel_size: 3 pad: 1 } } }\n"
        'module { name: "b" layer { name: "c3" type: "Convolution" bottom: "c2" top: "c3" '
        "convolution_param { num_output: 4 kernel_size: 1 } } }\n"
    )
    subspace = tmp_path / "s.txt"
    subspace.write_text("0.5 0.5\n0.5 0.3\n")
    r = run_cli("blocks", net, subspace, "--json")
    assert r.code == 0, r.err
    assert "module 'b' has no prunable layer, its rates are ignored" in r.err
    assert "net output 'c3'" in r.err
    doc = json.loads(r.out)
    # Both configurations become "a@0.5 b@0": one block (rate-0 modules may sit inside one).
    assert [(b["modules"], b["rates"]) for b in doc["blocks"]] == [(["a", "b"], [0.5, 0.0])]
    assert doc["composite"] == [["b0"], ["b0"]]


def test_blocks_missing_subspace_file(run_cli, tmp_path):
    r = run_cli("blocks", NET, tmp_path / "nope.txt")
    assert r.code == 2 and "no such file" in r.err


def test_commands_do_not_import_tensorflow(tmp_path):
    code = (
        "import sys; from cocotune.cli import main; "
        "rc = main(['subspace', sys.argv[1], '-n', '4']) or main(['blocks', sys.argv[1], sys.argv[2]]); "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'imported TF'; "
        "sys.exit(rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(NET), str(SUBSPACE)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
