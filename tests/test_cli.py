"""The `cocotune check` command as a user runs it: table, JSON, speed, no TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from tests.conftest import DATA, EXAMPLES, REPO, corpus_file


def test_check_table_on_the_example(run_cli):
    result = run_cli("check", EXAMPLES / "resnet_digits" / "net.prototxt")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split() == [
        "layer",
        "type",
        "module",
        "top",
        "shapes",
        "(N,C,H,W)",
        "params",
        "MACs",
    ]
    row = next(l for l in lines if l.startswith("res3a_branch2a "))
    assert row.split()[:4] == ["res3a_branch2a", "Convolution", "res3a", "(1,32,4,4)"]
    assert "6 modules" in result.out and "outputs: prob(1,10)" in result.out


def test_check_json_keys(run_cli):
    path = corpus_file("resnet__KaimingHe__ResNet-50-deploy.prototxt")
    result = run_cli("check", path, "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert set(data) >= {"layers", "totals", "modules", "outputs"}
    conv1 = data["layers"][1]
    assert conv1 == {
        "name": "conv1",
        "type": "Convolution",
        "module": None,
        "bottoms": ["data"],
        "tops": {"conv1": [1, 64, 112, 112]},
        "params": 9472,
        "macs": 118013952,
    }
    assert data["totals"]["params"] == sum(l["params"] for l in data["layers"])
    assert data["outputs"] == {"prob": [1, 1000]}


def test_check_input_shape_override(run_cli):
    path = EXAMPLES / "resnet_digits" / "net.prototxt"
    result = run_cli("check", path, "--json", "--input-shape", "data=4,1,16,16")
    data = json.loads(result.out)
    pool = next(l for l in data["layers"] if l["name"] == "pool5")
    assert pool["tops"] == {"pool5": [4, 64, 1, 1]}
    res4 = next(l for l in data["layers"] if l["name"] == "res4b")
    assert res4["tops"]["res4b"] == [4, 64, 4, 4]


def test_check_marks_fork_extensions(run_cli):
    path = corpus_file("shufflenet__farmingyard__shufflenet_1x_g3_deploy.prototxt")
    result = run_cli("check", path)
    assert "ShuffleChannel *" in result.out
    assert "* Caffe-fork extension" in result.out
    data = json.loads(run_cli("check", path, "--json").out)
    assert any(l.get("fork_extension") == "ShuffleNet fork" for l in data["layers"])


def test_check_does_not_import_tensorflow_and_is_fast():
    code = (
        "import sys, time; t = time.time(); from cocotune.cli import main; "
        "rc = main(['check', sys.argv[1]]); "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'imported TF'; "
        "sys.exit(rc)"
    )
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code, str(EXAMPLES / "resnet_digits" / "net.prototxt")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    assert time.perf_counter() - start < 5  # "well under a second" in practice; generous for CI


def test_console_script_exit_codes(tmp_path):
    exe = [sys.executable, "-m", "cocotune"]
    bad = tmp_path / "bad.prototxt"
    bad.write_text("layer { name: 'a' typo: 1 }\n")
    proc = subprocess.run([*exe, "check", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "unknown field 'typo' in layer (did you mean 'type'?)" in proc.stderr
    proc = subprocess.run([*exe, "check"], capture_output=True, text=True)
    assert proc.returncode == 2 and "required" in proc.stderr
    proc = subprocess.run([*exe, "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("cocotune ")


def test_console_script_on_fork_nets_and_solvers(tmp_path):
    """The whole list of a fork net's problems and a solver's check, through the real entry."""
    exe = [sys.executable, "-m", "cocotune", "check"]
    proc = subprocess.run(
        [*exe, str(DATA / "fasterrcnn_like_train.prototxt")], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("error: 6 problems (unsupported types: ")
    solver = tmp_path / "solver.prototxt"
    solver.write_text('net: "missing.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\n')
    proc = subprocess.run([*exe, str(solver)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (
        f'net "missing.prototxt" (TRAIN): not found; looked at {tmp_path}/missing.prototxt'
        in proc.stdout
    )
