"""explore.py's contracts: result lines, verdicts recomputed against the current objective,
results keyed by a settings fingerprint, --fresh, one best file per method, the method switch
changing only the starting weights, kill + resume with early stopping, and (under mpirun)
no saved candidate without its results line.

One tiny package (examples/resnet_digits, 3 configurations) is trained once per module;
each test explores a copy of it in-process (or as a user would, for kill and mpirun).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES

pytestmark = pytest.mark.slow

SUBSPACE = "0.7 0.7 0.7 0.7 0.7 0.7\n0.5 0.5 0.5 0.5 0.5 0.5\n0.3 0.3 0.5 0.5 0.5 0.5\n"
VENV_BIN = Path(sys.executable).parent
QUICK = ["--quiet", "--steps", "20", "--eval-every", "10", "--patience", "5"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    from cocotune.gen.write_package import generate_package
    from cocotune.runtime import pretrain, train

    root = tmp_path_factory.mktemp("explore")
    (root / "sub.txt").write_text(SUBSPACE)
    pkg = root / "pkg"
    generate_package(str(EXAMPLES / "resnet_digits" / "net.prototxt"), str(root / "sub.txt"), pkg)
    assert train.main(pkg, ["--quiet", "--steps", "150"]) == 0
    assert pretrain.main(pkg, ["--quiet", "--steps", "30"]) == 0
    return pkg


def copy(trained: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "pkg"
    shutil.copytree(trained, dest)
    return dest


def explore(pkg: Path, capsys, *args: str) -> str:
    from cocotune.runtime import explore as module

    capsys.readouterr()
    code = module.main(pkg, [*QUICK, *args])
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


def lines(pkg: Path) -> list[dict]:
    path = pkg / "runs" / "results.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def best(pkg: Path, method: str = "block-trained") -> dict:
    return json.loads((pkg / "runs" / f"best-{method}.json").read_text())


def test_result_lines_hold_every_field(trained, tmp_path, capsys):
    pkg = copy(trained, tmp_path)
    explore(pkg, capsys, "--acc-threshold", "1.01", "--bn-recalibrate", "128")
    records = lines(pkg)
    assert len(records) == 3
    for r in records:
        assert "meets_objective" not in r  # the verdict is never stored
        assert r["key"] == f"block-trained:{r['id']}:{r['fingerprint']}"
        assert r["macs"] > 0 and r["flops"] == 2 * r["macs"] and r["params"] > 0
        assert r["stop"] == "limit" and r["steps"] == 20
        assert [p[0] for p in r["curve"]] == [0, 10, 20] and r["curve"][0][1] == 0.0
        assert r["val_accuracy_start"] == r["curve"][0][2]
        assert r["val_accuracy"] == r["curve"][-1][2]
        for k in (
            "val_accuracy_assembled",
            "test_accuracy_assembled",
            "test_accuracy_start",
            "test_accuracy",
        ):
            assert 0.0 <= r[k] <= 1.0
        assert set(r["seconds"]) == {"build", "assemble", "bn", "train", "eval", "total"}
        assert r["seconds"]["bn"] > 0 and r["seconds"]["train"] > 0
        assert 0 < r["setup_seconds"] < r["seconds"]["total"]
        assert r["settings"]["bn_recalibrate"] == 128
        assert r["settings"]["stop_rule"] == {
            "max_steps": 20,
            "eval_every": 10,
            "patience": 5,
            "min_delta": 0.005,
        }
    reference = json.loads((pkg / "runs" / "full.json").read_text())["reference"]
    assert all(set(v) == {"val_accuracy", "test_accuracy"} for v in reference.values())


def test_resumed_run_recomputes_the_verdict_for_the_current_objective(trained, tmp_path, capsys):
    pkg = copy(trained, tmp_path)
    out = explore(pkg, capsys, "--acc-threshold", "1.01")
    assert "no configuration met" in out and not best(pkg)["found"]
    # Same settings, an objective every stored result meets: no new evaluation, and the
    # smallest configuration wins (the old code trusted the stored "meets": False).
    out = explore(pkg, capsys, "--acc-threshold", "0.05")
    assert "3 already evaluated, 0 to go" in out
    chosen = best(pkg)
    assert chosen["found"] and chosen["id"] == "c0" and len(lines(pkg)) == 3
    # and back: the stricter objective again finds nothing
    explore(pkg, capsys, "--acc-threshold", "1.01")
    assert not best(pkg)["found"] and len(lines(pkg)) == 3


def test_threshold_stopped_results_are_redone_for_a_higher_threshold(trained, tmp_path, capsys):
    pkg = copy(trained, tmp_path)
    explore(pkg, capsys, "--acc-threshold", "0.0", "--max-configs", "1")
    (first,) = lines(pkg)
    assert first["stop"] == "threshold" and first["steps"] == 0
    out = explore(pkg, capsys, "--acc-threshold", "1.01", "--max-configs", "1")
    assert "1 results stopped at a lower threshold" in out
    records = lines(pkg)
    assert len(records) == 2 and records[0] == first  # the old line is kept, the new supersedes
    assert records[1]["key"] == first["key"] and records[1]["stop"] == "limit"


def test_other_settings_are_ignored_and_fresh_moves_results_aside(trained, tmp_path, capsys):
    pkg = copy(trained, tmp_path)
    explore(pkg, capsys, "--acc-threshold", "1.01", "--max-configs", "2")
    old = lines(pkg)
    out = explore(
        pkg, capsys, "--acc-threshold", "1.01", "--max-configs", "2", "--bn-recalibrate", "64"
    )
    assert "2 results from other settings ignored; evaluating afresh" in out
    records = lines(pkg)
    assert records[:2] == old and len(records) == 4
    assert records[2]["fingerprint"] != old[0]["fingerprint"]
    # the same command again resumes: nothing new
    out = explore(
        pkg, capsys, "--acc-threshold", "1.01", "--max-configs", "2", "--bn-recalibrate", "64"
    )
    assert "2 already evaluated, 0 to go" in out and len(lines(pkg)) == 4
    out = explore(pkg, capsys, "--acc-threshold", "1.01", "--max-configs", "1", "--fresh")
    moved = sorted((pkg / "runs" / "old").iterdir())
    assert len(moved) == 1 and f"moved to {moved[0]}" in out
    kept = [json.loads(x) for x in (moved[0] / "results.jsonl").read_text().splitlines()]
    assert kept == records and (moved[0] / "best-block-trained.json").exists()
    assert len(lines(pkg)) == 1


def test_baseline_keeps_the_block_trained_winner_and_changes_only_the_start(
    trained, tmp_path, capsys
):
    pkg = copy(trained, tmp_path)
    explore(pkg, capsys, "--acc-threshold", "0.3", "--bn-recalibrate", "64")
    blocks_best = (pkg / "runs" / "best-block-trained.json").read_text()
    blocks_model = (pkg / "runs" / "best-block-trained.keras").read_bytes()
    explore(pkg, capsys, "--acc-threshold", "0.3", "--bn-recalibrate", "64", "--baseline")
    assert (pkg / "runs" / "best-block-trained.json").read_text() == blocks_best
    assert (pkg / "runs" / "best-block-trained.keras").read_bytes() == blocks_model
    assert best(pkg, "default")["method"] == "default"
    assert (pkg / "runs" / "best-default.keras").exists()
    by_method: dict = {}
    for r in lines(pkg):
        by_method.setdefault(r["method"], []).append(r)
    a, b = by_method["block-trained"][0], by_method["default"][0]
    # same stop rule, solver, seed, data and BN handling; different starting weights only
    sa = {k: v for k, v in a["settings"].items() if k not in ("method", "blocks")}
    sb = {k: v for k, v in b["settings"].items() if k not in ("method", "blocks")}
    assert sa == sb and set(a["settings"]) - set(b["settings"]) == {"blocks"}
    assert a["fingerprint"] != b["fingerprint"] and a["id"] == b["id"]
    assert not any(r["composite"] for r in by_method["default"])


def test_killed_and_resumed_with_early_stopping_loses_nothing(trained, tmp_path):
    pkg = copy(trained, tmp_path)
    args = [
        "--quiet",
        "--acc-threshold",
        "1.01",
        "--steps",
        "200",
        "--eval-every",
        "5",
        "--patience",
        "2",
        "--min-delta",
        "0.05",
    ]
    proc = subprocess.Popen(
        [sys.executable, str(pkg / "explore.py"), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while time.time() < deadline and len(lines(pkg)) < 1:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = lines(pkg)
    assert 1 <= len(first) < 3
    again = subprocess.run(
        [sys.executable, str(pkg / "explore.py"), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0, again.stderr
    assert f"{len(first)} already evaluated" in again.stdout
    final = lines(pkg)
    assert final[: len(first)] == first and len({r["key"] for r in final}) == len(final) == 3
    assert {r["stop"] for r in final} <= {"plateau", "limit"}
    assert any(r["stop"] == "plateau" and r["steps"] < 200 for r in final)
    assert best(pkg)["explored"] == 3


@pytest.mark.mpi
def test_every_saved_candidate_has_its_results_line_under_mpirun(trained, tmp_path):
    pkg = copy(trained, tmp_path)
    cmd = [
        str(VENV_BIN / "mpirun"),
        "-n",
        "2",
        sys.executable,
        str(pkg / "explore.py"),
        "--quiet",
        "--acc-threshold",
        "0.0",
        "--steps",
        "20",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    records = lines(pkg)
    saved = {f"candidates/{p.name}" for p in (pkg / "runs" / "candidates").glob("*.keras")}
    assert saved and saved <= {r["model"] for r in records}
    assert best(pkg)["id"] == "c0"


def test_the_method_changes_only_the_starting_weights(trained, monkeypatch):
    """Both methods get the same batches (seed, order), rule and BN images; only the weights
    they start from differ."""
    import numpy as np

    import cocotune.runtime.data as data_module
    import cocotune.runtime.training_loop as training_module
    from cocotune.runtime.data import load_dataset
    from cocotune.runtime.explore import EvalOptions, evaluate_configuration, load_blocks
    from cocotune.runtime.generated_package import Package
    from cocotune.runtime.solver import preset
    from cocotune.runtime.training_loop import stop_rule

    pkg = Package(trained)
    data = load_dataset("digits", pkg.input_shape, pkg.num_classes)
    full = pkg.full_caffe_weights()
    config = next(c for c in pkg.configurations if c.composite)
    blocks = load_blocks(pkg, set(config.composite))
    settings = preset("demo").with_overrides(max_iter=3)
    seen: dict = {"batches": [], "bn": [], "rules": []}
    real_batches, real_bn, real_fit = (
        data_module.make_tf_dataset,
        training_module.recalibrate_batchnorm,
        training_module.fit,
    )

    def spy_batches(*args, **kwargs):
        ds = real_batches(*args, **kwargs)
        seen["batches"].append([np.asarray(y).tolist() for _, y in ds.take(3)])
        return ds

    def spy_bn(model, x, *args, **kwargs):
        seen["bn"].append(np.asarray(x).sum())
        return real_bn(model, x, *args, **kwargs)

    def spy_fit(*args, **kwargs):
        seen["rules"].append(args[4])
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(data_module, "make_tf_dataset", spy_batches)
    monkeypatch.setattr(training_module, "recalibrate_batchnorm", spy_bn)
    monkeypatch.setattr(training_module, "fit", spy_fit)
    records = {}
    for method in ("block-trained", "default"):
        rule = stop_rule(settings, eval_every=1, patience=9)
        opts = EvalOptions(method, rule, seed=3, bn_recalibrate=100)
        records[method] = evaluate_configuration(pkg, config, full, blocks, data, settings, opts)
    a, b = seen["batches"]
    assert a == b  # the same labels in the same order: same data, seed and shuffling
    assert seen["rules"][0] == seen["rules"][1]
    assert len(set(seen["bn"])) == 1 and len(seen["bn"]) == 2 * 4  # same images, steps 0..3
    ra, rb = records["block-trained"], records["default"]
    assert ra["steps"] == rb["steps"] == 3 and [p[0] for p in ra["curve"]] == [0, 1, 2, 3]
    assert ra["composite"] and not rb["composite"]
