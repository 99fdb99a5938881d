"""explore.py's decisions without training: verdicts, conclusiveness, ranking, --fresh."""

from __future__ import annotations

from dataclasses import dataclass

from cocotune.runtime.explore import choose, conclusive, fingerprint_of, meets, move_aside
from cocotune.runtime.objective import Objective


@dataclass(frozen=True)
class Config:
    id: str
    params: int


ORDER = [Config("c0", 10), Config("c1", 20), Config("c2", 30)]


def rec(cid, val, stop="limit", params=None, test=0.0):
    params = params or {c.id: c.params for c in ORDER}[cid]
    return {"id": cid, "val_accuracy": val, "test_accuracy": test, "stop": stop, "params": params}


def test_verdict_is_recomputed_from_validation_accuracy():
    stored = {**rec("c0", 0.9), "meets_objective": False}  # an old line's stored verdict
    assert meets(stored, 0.85) and not meets(stored, 0.95) and not meets(stored, None)
    assert not meets({**rec("c0", 0.5), "test_accuracy": 1.0}, 0.9)  # test never decides


def test_threshold_stops_are_conclusive_only_if_they_meet_the_current_threshold():
    assert conclusive(rec("c0", 0.8, "plateau"), 0.99)
    assert conclusive(rec("c0", 0.8, "threshold"), 0.7)
    assert not conclusive(rec("c0", 0.8, "threshold"), 0.9)
    assert not conclusive(rec("c0", 0.8, "threshold"), None)


def test_min_size_takes_the_first_in_order_and_needs_every_earlier_one():
    objective = Objective("min_size", min_accuracy=0.8)
    records = {"c0": rec("c0", 0.7), "c1": rec("c1", 0.85), "c2": rec("c2", 0.95)}
    assert choose(ORDER, records, objective, 0.8)["id"] == "c1"
    assert choose(ORDER, records, objective, 0.9)["id"] == "c2"
    assert choose(ORDER, {"c1": records["c1"]}, objective, 0.8) is None  # c0 not evaluated


def test_max_accuracy_ranks_by_validation_accuracy_not_test():
    objective = Objective("max_accuracy")
    records = {
        "c0": rec("c0", 0.9, test=0.5),
        "c1": rec("c1", 0.8, test=0.99),
        "c2": rec("c2", 0.9, test=0.7),
    }
    assert choose(ORDER, records, objective, None)["id"] == "c0"  # tie: fewer parameters


def test_fingerprint_depends_on_every_setting():
    base = {"method": "default", "seed": 0, "bn_recalibrate": 0, "stop_rule": {"max_steps": 5}}
    fps = {fingerprint_of(base)}
    for change in (
        {"seed": 1},
        {"bn_recalibrate": 8},
        {"stop_rule": {"max_steps": 6}},
        {"method": "block-trained"},
        {"data": "x"},
    ):
        fps.add(fingerprint_of({**base, **change}))
    assert len(fps) == 6 and fingerprint_of(dict(reversed(base.items()))) in fps


def test_fresh_moves_results_aside_and_deletes_nothing(tmp_path):
    runs = tmp_path / "runs"
    (runs / "candidates").mkdir(parents=True)
    (runs / "candidates" / "default-c0-abc.keras").write_text("m")
    for name in (
        "results.jsonl",
        "best-default.json",
        "best-default.keras",
        "full.json",
        "pretrain.jsonl",
    ):
        (runs / name).write_text(name)
    dest = move_aside(runs, "T1")
    assert dest == runs / "old" / "T1"
    assert sorted(p.name for p in dest.iterdir()) == [
        "best-default.json",
        "best-default.keras",
        "candidates",
        "results.jsonl",
    ]
    assert (dest / "candidates" / "default-c0-abc.keras").read_text() == "m"
    assert (runs / "full.json").exists() and (runs / "pretrain.jsonl").exists()
    assert move_aside(runs, "T1") is None  # nothing left to move
    (runs / "results.jsonl").write_text("again")
    assert move_aside(runs, "T1") == runs / "old" / "T1-2"  # never over an earlier one
