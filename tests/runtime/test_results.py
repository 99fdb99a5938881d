"""cocotune.runtime.results: the JSONL log survives kills; atomic replacement of files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cocotune.runtime.results import ResultsError, ResultsLog, atomic_save, atomic_write_json


class _Rank1:
    is_root = False


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_append_writes_one_line_per_record_and_fsyncs(tmp_path, monkeypatch):
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    path = tmp_path / "runs" / "results.jsonl"  # the directory is created
    log = ResultsLog(path)
    assert log.append({"id": "c0", "accuracy": 0.5})
    assert log.append({"id": "c1", "accuracy": np.float32(0.75), "rates": np.array([0.3, 0.5])})
    assert len(synced) == 2
    assert path.read_text().endswith("\n")
    assert [json.loads(line) for line in lines(path)] == [
        {"id": "c0", "accuracy": 0.5},
        {"id": "c1", "accuracy": 0.75, "rates": [0.3, 0.5]},
    ]
    assert ResultsLog(path).load() == [json.loads(line) for line in lines(path)]


def test_load_of_missing_file_is_empty(tmp_path):
    log = ResultsLog(tmp_path / "none.jsonl")
    assert log.load() == [] and log.done_ids() == set() and len(log) == 0


def test_truncated_last_line_is_dropped_and_repaired(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text('{"id": "c0", "acc": 0.5}\n{"id": "c1", "acc": 0.6}\n{"id": "c2", "ac')
    log = ResultsLog(path)
    assert [r["id"] for r in log.load()] == ["c0", "c1"]
    assert path.read_text() == '{"id": "c0", "acc": 0.5}\n{"id": "c1", "acc": 0.6}\n'
    assert log.done_ids() == {"c0", "c1"}  # c2 will be evaluated again
    log.append({"id": "c2", "acc": 0.7})
    assert [json.loads(line)["id"] for line in lines(path)] == ["c0", "c1", "c2"]


def test_complete_last_record_without_newline_is_kept(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text('{"id": "c0"}\n{"id": "c1"}')
    log = ResultsLog(path)
    assert log.done_ids() == {"c0", "c1"}
    log.append({"id": "c2"})
    assert lines(path) == ['{"id": "c0"}', '{"id": "c1"}', '{"id": "c2"}']


def test_append_repairs_before_writing_even_without_load(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_bytes(b'{"id": "c0"}\n{"id": "c1", "x": [1, 2')
    ResultsLog(path).append({"id": "c1"})
    assert lines(path) == ['{"id": "c0"}', '{"id": "c1"}']


def test_other_ranks_read_but_never_write(tmp_path):
    path = tmp_path / "results.jsonl"
    damaged = b'{"id": "c0"}\n{"id": "c1'
    path.write_bytes(damaged)
    log = ResultsLog(path, comm=_Rank1())
    assert log.done_ids() == {"c0"}
    assert log.append({"id": "c9"}) is False
    assert path.read_bytes() == damaged  # repairing is rank 0's job


def test_resume_skips_done_ids_and_never_duplicates(tmp_path):
    path = tmp_path / "results.jsonl"
    configs = [f"c{i}" for i in range(6)]

    def run(stop_after: int | None = None) -> list[str]:
        log = ResultsLog(path)
        todo = [c for c in configs if c not in log.done_ids()]
        for count, c in enumerate(todo):
            if stop_after is not None and count == stop_after:
                break  # "killed"
            log.append({"id": c})
        return todo

    assert run(stop_after=3) == configs
    assert run() == configs[3:]
    assert run() == []
    assert [json.loads(line)["id"] for line in lines(path)] == configs
    assert ResultsLog(path).append({"id": "c0", "again": True}) is False
    assert len(lines(path)) == 6


def test_damaged_line_in_the_middle_is_reported(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text('{"id": "c0"}\nnot json\n{"id": "c2"}\n')
    with pytest.raises(ResultsError, match="line 2 is not valid JSON") as info:
        ResultsLog(path).load()
    assert info.value.line == 2
    path.write_text('{"id": "c0"}\n[1, 2]\n')
    with pytest.raises(ResultsError, match="not an object"):
        ResultsLog(path).load()


_WRITER = """
import sys
from cocotune.runtime.results import ResultsLog
log = ResultsLog(sys.argv[1])
i = 0
print("ready", flush=True)
while True:
    log.append({"id": f"c{i}", "payload": "x" * 5000})
    i += 1
"""


def test_killed_writer_leaves_a_loadable_file(tmp_path):
    # A real SIGKILL of a process appending as fast as it can, then a partial line on top
    # (what a kill inside a write() would leave), then a resume.
    path = tmp_path / "results.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    with open(path, "ab") as handle:
        handle.write(b'{"id": "partial", "payload": "xxx')
    log = ResultsLog(path)
    records = log.load()
    assert records and all(r["payload"] == "x" * 5000 for r in records)
    assert "partial" not in log.done_ids()
    log.append({"id": "partial", "payload": ""})
    assert [json.loads(line)["id"] for line in lines(path)][-1] == "partial"


def test_atomic_write_json_replaces_whole_file(tmp_path):
    path = tmp_path / "best.json"
    atomic_write_json(path, {"id": "c1", "accuracy": np.float64(0.9)})
    atomic_write_json(path, {"id": "c2", "accuracy": 0.95})
    assert json.loads(path.read_text()) == {"id": "c2", "accuracy": 0.95}
    assert [p.name for p in tmp_path.iterdir()] == ["best.json"]  # no temp files left


def test_atomic_save_keeps_the_suffix_and_the_old_file_on_failure(tmp_path):
    target = tmp_path / "ckpt" / "best.weights.h5"
    seen: list[Path] = []

    def writer(tmp: Path) -> None:
        seen.append(tmp)
        assert not tmp.exists()
        tmp.write_bytes(b"new weights")

    assert atomic_save(target, writer) == target
    assert seen[0].parent == target.parent and seen[0].name.endswith("best.weights.h5")
    assert target.read_bytes() == b"new weights"

    def failing(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_save(target, failing)
    assert target.read_bytes() == b"new weights"
    assert [p.name for p in target.parent.iterdir()] == ["best.weights.h5"]


def test_atomic_save_requires_the_writer_to_write(tmp_path):
    with pytest.raises(FileNotFoundError):
        atomic_save(tmp_path / "x.bin", lambda tmp: None)
    assert list(tmp_path.iterdir()) == []


def test_supersede_appends_a_newer_record_and_latest_returns_it(tmp_path):
    log = ResultsLog(tmp_path / "r.jsonl", id_key="key")
    assert log.append({"key": "a", "v": 1})
    assert not log.append({"key": "a", "v": 2})  # duplicates are refused by default
    assert log.append({"key": "a", "v": 3}, supersede=True)
    log.append({"key": "b", "v": 4})
    reread = ResultsLog(tmp_path / "r.jsonl", id_key="key")
    assert [r["v"] for r in reread.load()] == [1, 3, 4]  # nothing lost
    assert {k: r["v"] for k, r in reread.latest().items()} == {"a": 3, "b": 4}
