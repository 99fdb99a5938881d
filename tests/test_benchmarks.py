"""The benchmarks' small versions run and write well-formed results (figures not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_composability_quick(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "composability.py"), "--quick", "--out",
         str(tmp_path)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((tmp_path / "composability.json").read_text())
    assert {"table3", "table4", "table5", "paper"} <= set(data)
    row3 = {"alpha", "configs_base", "configs_comp", "time_base_s", "time_comp_s", "speedup",
            "overhead", "size_base", "size_comp"}  # fmt: skip
    assert data["table3"] and all(row3 <= set(r) for r in data["table3"])
    assert any(r["alpha"] < 0 or r["alpha"] == 0 for r in data["table3"])
    assert [r["configs"] for r in data["table4"]] == [2, 4]
    assert all({"configs", "time_base_s", "time_comp_s", "speedup"} <= set(r)
               for r in data["table4"])  # fmt: skip
    assert {r["collection"] for r in data["table5"]} == {"random", "runs of modules share one rate"}
    assert all("extra_speedup" in r for r in data["table5"])
    for png in ("composability_accuracy_vs_size.png", "composability_curves.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Table 3 style" in proc.stdout and "paper" in proc.stdout
    # the README section renders from this JSON (the full run has the same keys)
    import importlib.util

    spec = importlib.util.spec_from_file_location("readme_results", REPO / "scripts" /
                                                  "readme_results.py")  # fmt: skip
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.section(data)
    assert "speedup" in text and "composability_accuracy_vs_size.png" in text


def test_frontend_benchmark_quick(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "frontend.py"), "--layers", "500",
         "--repeat", "1", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "frontend.json").read_text())
    assert data["results"][0]["layers"] == 500
