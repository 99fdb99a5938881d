"""The benchmarks' small versions run and write well-formed results (figures not asserted)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def composability():
    return _load("composability_benchmark", REPO / "benchmarks" / "composability.py")


def check_composability_contract(data: dict) -> None:
    """The keys and invariants issue 12 fixes for composability.json."""
    full = data["full"]
    assert {"params", "val_accuracy", "test_accuracy", "pretrain_seconds"} <= set(full)
    assert full["pretrain_seconds"] > 0
    assert data["alphas"] == [0, 0.005, 0.01, 0.02]
    sizes = sorted(data["subspaces"], key=int)
    for small, large in zip(sizes, sizes[1:]):  # nested subsets of the largest
        assert set(data["subspaces"][small]) < set(data["subspaces"][large])
    assert len(data["subspaces"][sizes[-1]]) == int(sizes[-1])
    ids = {c["id"] for c in data["configs"]}
    if data["complete"]:
        assert ids == set(data["subspaces"][sizes[-1]])
    else:  # a run stopped early measured a prefix: the smallest subspace at least, in full
        assert set(data["subspaces"][sizes[0]]) <= ids <= set(data["subspaces"][sizes[-1]])
    for c in data["configs"]:
        assert {"id", "params", "rates", "default", "block"} <= set(c)
        for method in ("default", "block"):
            run = c[method]
            assert run["stop"] in ("plateau", "limit")
            assert run["setup_seconds"] > 0 and 0 <= run["test_accuracy"] <= 1
            assert run["curve"][0][:2] == [0, 0.0]
            steps = [q[0] for q in run["curve"]]
            secs = [q[1] for q in run["curve"]]
            assert steps == sorted(steps) and secs == sorted(secs)
    # every (size, alpha) row is reported, and recomputing from the curves gives the same table
    assert {(r["configs"], r["alpha"]) for r in data["table4"]} == {
        (int(n), a) for n in sizes for a in data["alphas"]
    }
    assert composability().table4(data) == data["table4"]


def test_composability_replay_rule_by_hand():
    """Three configurations, curves chosen so that every branch of the rule is exercised."""
    c = lambda i, params, d, b: {"id": i, "params": params, "default": d, "block": b}  # noqa
    run = lambda setup, curve: {"setup_seconds": setup, "curve": curve}  # noqa
    doc = {
        "full": {
            "val_accuracy": 0.9,
            "pretrain_seconds": 10.0,
            "pretrain_groups": [{"steps": 10}, {"steps": 20}],
        },
        "alphas": [0, 0.2],
        "subspaces": {"2": ["a", "b"], "3": ["a", "b", "c"]},
        "sizes": {"a": 200, "b": 200, "c": 100},
        "configs": [
            # "c" is smallest: default never meets 0.9, block meets it at 4 s
            c(
                "c",
                100,
                run(1.0, [[0, 0.0, 0.5], [20, 3.0, 0.8]]),
                run(2.0, [[0, 0.0, 0.7], [20, 4.0, 0.9], [40, 8.0, 0.95]]),
            ),
            c("a", 200, run(1.0, [[0, 0.0, 0.6], [20, 5.0, 0.85]]), run(1.0, [[0, 0.0, 0.91]])),
            c(
                "b",
                200,
                run(2.0, [[0, 0.0, 0.6], [20, 6.0, 0.95]]),
                run(1.0, [[0, 0.0, 0.5], [20, 2.0, 0.6]]),
            ),
        ],
    }
    rows = {(r["configs"], r["alpha"]): r for r in composability().table4(doc)}
    # size 2, alpha 0: order a, b (tie on params broken by id). default: a fails (1+5),
    # b meets at 6 s (2+6) -> 14; block: 10 pre-training + a meets at step 0 (1+0) -> 11
    r = rows[(2, 0)]
    assert r["seconds_default"] == 14.0 and r["seconds_block"] == 11.0
    assert r["speedup"] == 14.0 / 11.0 and not r["lower_bound"] and r["degenerate"] is None
    assert (r["found_default"], r["found_block"]) == ("b", "a")
    # size 3, alpha 0: order c, a, b. default: c fails (1+3), a fails (1+5), b meets (2+6);
    # block: 10 + c meets at 4 s (2+4)
    r = rows[(3, 0)]
    assert r["seconds_default"] == 18.0 and r["seconds_block"] == 16.0
    assert (r["explored_default"], r["explored_block"]) == (3, 1)
    # the same replay without setup: default 3 + 5 + 6 = 14, block 10 + 4 = 14; in steps:
    # default 20 + 20 + 20 = 60, block 30 pre-training steps (the groups') + 20 = 50
    assert r["speedup_without_setup"] == 14.0 / 14.0
    assert r["speedup_in_steps"] == 60.0 / 50.0
    # alpha 0.2 (threshold 0.72): c meets at 3 s with default and 4 s with block: all pass
    r = rows[(3, 0.2)]
    assert r["seconds_default"] == 4.0 and r["seconds_block"] == 16.0
    assert r["degenerate"] == "all pass"
    # a subspace where default never meets: the default time is a lower bound
    doc["configs"][2]["default"]["curve"][-1][2] = 0.7
    r = {(x["configs"], x["alpha"]): x for x in composability().table4(doc)}[(2, 0)]
    assert r["lower_bound"] and r["found_default"] is None
    assert r["seconds_default"] == 6.0 + 8.0
    # a stopped run (b never measured): default replay stops at b with a lower bound; block
    # exploration ended at a, so the row still has a (lower-bound) speedup
    doc["configs"] = doc["configs"][:2]
    r = {(x["configs"], x["alpha"]): x for x in composability().table4(doc)}[(2, 0)]
    assert r["partial_default"] and not r["partial_block"] and r["lower_bound"]
    assert r["seconds_default"] == 6.0 and r["speedup"] == 6.0 / 11.0
    r = {(x["configs"], x["alpha"]): x for x in composability().table4(doc)}[(3, 0.2)]
    assert r["speedup"] == 4.0 / 16.0 and not r["partial_block"]


def test_composability_committed_results():
    """The committed full run: contract, table recomputed from its curves, README in sync."""
    path = REPO / "benchmarks" / "results" / "composability.json"
    data = json.loads(path.read_text())
    assert not data["quick"]
    assert sorted(data["subspaces"], key=int) == ["16", "64", "256"]
    check_composability_contract(data)
    readme = _load("readme_results", REPO / "scripts" / "readme_results.py")
    assert readme.main(["--check"]) == 0, "README section out of date: scripts/readme_results.py"


@pytest.mark.slow
def test_composability_quick(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "composability.py"),
            "--quick",
            "--out",
            str(tmp_path),
            "--work",
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((tmp_path / "composability.json").read_text())
    assert data["quick"] and data["complete"]
    check_composability_contract(data)
    for name in ("accuracy_vs_size", "curves", "speedup"):
        png = tmp_path / f"composability_{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Table 4" in proc.stdout
    # a rerun on the same work directory reuses every result (nothing is fine-tuned again)
    rerun = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "composability.py"),
            "--quick",
            "--out",
            str(tmp_path / "again"),
            "--work",
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "fine-tuning" not in rerun.stdout
    again = json.loads((tmp_path / "again" / "composability.json").read_text())
    assert again["table4"] == data["table4"]
    readme = _load("readme_results", REPO / "scripts" / "readme_results.py")
    text = readme.section(data)
    assert "speedup" in text and "composability_speedup.png" in text


def test_frontend_benchmark_quick(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "frontend.py"),
            "--layers",
            "500",
            "--repeat",
            "1",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "frontend.json").read_text())
    assert data["results"][0]["layers"] == 500
