"""The generated scripts as a user runs them: train, pretrain, explore, alone and under mpirun.

One small package (examples/resnet_digits, 4 configurations) is generated, trained and
pre-trained once per session; tests then explore it in copies, so they do not interfere.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import EXAMPLES

pytestmark = pytest.mark.slow

SUBSPACE = "0.7 0.7 0.7 0.7 0.7 0.7\n0.5 0.5 0.5 0.5 0.5 0.5\n0.5 0.5 0.7 0.7 0.7 0.7\n0.3 0.3 0.5 0.5 0.5 0.5\n"
VENV_BIN = Path(sys.executable).parent


def run(script: Path, *args: str, mpi: int = 0, timeout: int = 600, env=None):
    cmd = [sys.executable, str(script), "--quiet", *args]
    if mpi:
        cmd = [str(VENV_BIN / "mpirun"), "-n", str(mpi), *cmd]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )
    return proc


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Path:
    from cocotune.gen.write_package import generate_package

    root = tmp_path_factory.mktemp("pipeline")
    (root / "sub.txt").write_text(SUBSPACE)
    pkg = root / "pkg"
    generate_package(str(EXAMPLES / "resnet_digits" / "net.prototxt"), str(root / "sub.txt"), pkg)
    proc = run(pkg / "train.py", "--steps", "200")
    assert proc.returncode == 0, proc.stderr
    proc = run(pkg / "pretrain.py", "--steps", "60")
    assert proc.returncode == 0, proc.stderr
    return pkg


def copy_package(trained: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "pkg"
    shutil.copytree(
        trained, dest, ignore=shutil.ignore_patterns("results.jsonl", "best.*", "candidates")
    )
    return dest


def records(pkg: Path) -> list[dict]:
    path = pkg / "runs" / "results.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_train_wrote_weights_and_accuracy(trained):
    full = json.loads((trained / "runs" / "full.json").read_text())
    assert full["accuracy"] > 0.8 and (trained / "full.weights.h5").exists()


def test_pretrain_reduces_each_blocks_error(trained):
    log = [json.loads(l) for l in (trained / "runs" / "pretrain.jsonl").read_text().splitlines()]
    blocks = json.loads((trained / "tuning.json").read_text())["blocks"]
    assert {r["id"] for r in log} == {b["id"] for b in blocks}
    for r in log:
        assert r["error_after"] < r["error_before"], r
        assert (trained / "blocks" / f"{r['id']}.weights.h5").exists()


def test_pretrain_rerun_skips_saved_blocks(trained):
    proc = run(trained / "pretrain.py", "--steps", "60")
    assert proc.returncode == 0 and "nothing to do" in proc.stdout


@pytest.mark.parametrize("recalibrate", [0, 512])
def test_block_trained_networks_start_more_accurate(trained, recalibrate):
    from cocotune.runtime.data import load_dataset
    from cocotune.runtime.explore import EvalOptions, evaluate_configuration, load_blocks
    from cocotune.runtime.generated_package import Package
    from cocotune.runtime.solver import TrainingSettings
    from cocotune.runtime.training_loop import StopRule

    pkg = Package(trained)
    data = load_dataset("digits", pkg.input_shape, pkg.num_classes)
    full = pkg.full_caffe_weights()
    blocks = load_blocks(pkg, {b for c in pkg.configurations for b in c.composite})
    settings = TrainingSettings(max_iter=0)
    start = {}
    for method in ("block-trained", "default"):
        rule = StopRule(max_steps=0, eval_every=1, patience=1, min_delta=0.01)
        opts = EvalOptions(method, rule, seed=0, bn_recalibrate=recalibrate)
        start[method] = [
            evaluate_configuration(pkg, c, full, blocks, data, settings, opts)["val_accuracy_start"]
            for c in pkg.configurations
        ]
    assert np.mean(start["block-trained"]) > np.mean(start["default"]), start


def test_explore_alone_and_under_mpirun_agree(trained, tmp_path):
    alone = copy_package(trained, tmp_path / "a")
    mpi = copy_package(trained, tmp_path / "b")
    args = ("--acc-threshold", "0.85", "--steps", "40", "--bn-recalibrate", "256")
    p1 = run(alone / "explore.py", *args)
    assert p1.returncode == 0, p1.stderr
    p2 = run(mpi / "explore.py", *args, mpi=2)
    assert p2.returncode == 0, p2.stderr
    best1 = json.loads((alone / "runs" / "best-block-trained.json").read_text())
    best2 = json.loads((mpi / "runs" / "best-block-trained.json").read_text())
    assert best1["found"] and best1["id"] == best2["id"]
    assert {r["rank"] for r in records(mpi)} <= {0, 1}
    assert (mpi / "runs" / "best-block-trained.keras").exists()
    # the best model loads in plain TensorFlow code (with cocotune's layers registered)
    code = (
        "import keras, cocotune.runtime.layers, cocotune.runtime.model, sys; "
        "m = keras.models.load_model(sys.argv[1]); print(m.count_params())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(mpi / "runs" / "best-block-trained.keras")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.split()[-1]) == best2["params"]


def test_explore_killed_and_resumed_loses_nothing(trained, tmp_path):
    pkg = copy_package(trained, tmp_path)
    cmd = [
        sys.executable,
        str(pkg / "explore.py"),
        "--quiet",
        "--acc-threshold",
        "1.01",
        "--steps",
        "60",
        "--baseline",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = pkg / "runs" / "results.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and len(records(pkg)) < 1:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = records(pkg)
    assert 1 <= len(first) < 4
    with log.open("a") as f:  # as if killed in the middle of writing a line
        f.write('{"key": "default:c9", "acc')
    again = run(pkg / "explore.py", "--acc-threshold", "1.01", "--steps", "60", "--baseline")
    assert again.returncode == 0, again.stderr
    final = records(pkg)  # parses every line: the file is valid JSONL again
    keys = [r["key"] for r in final]
    assert len(keys) == len(set(keys)) == 4
    assert final[: len(first)] == first  # finished results kept, unchanged
    best = json.loads((pkg / "runs" / "best-default.json").read_text())
    assert best["found"] is False and best["explored"] == 4


def test_objective_file_and_errors(trained, tmp_path):
    pkg = copy_package(trained, tmp_path)
    objective = tmp_path / "objective.txt"
    objective.write_text("max Accuracy\nconstraint ModelSize <= 70000\n")
    proc = run(pkg / "explore.py", "--objective", str(objective), "--steps", "20", "--baseline")
    assert proc.returncode == 0, proc.stderr
    best = json.loads((pkg / "runs" / "best-default.json").read_text())
    assert best["found"] and best["params"] <= 70000
    objective.write_text("max Accuracy\nconstraint Speed >= 3\n")
    proc = run(pkg / "explore.py", "--objective", str(objective))
    assert proc.returncode == 2 and f"{objective}:2:1: error" in proc.stderr
    proc = run(pkg / "explore.py", "--data", "nope")
    assert proc.returncode == 2 and "not a built-in dataset" in proc.stderr
