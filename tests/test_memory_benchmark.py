"""benchmarks/memory.py: its ResNet-50 Prototxt is the published one, its wrapper measures peaks."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

from tests.conftest import REPO, corpus_file

BENCH = REPO / "benchmarks" / "memory.py"


def _bench():
    spec = importlib.util.spec_from_file_location("memory_benchmark", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_resnet50_is_the_published_deploy_net(run_cli, tmp_path):
    ours = tmp_path / "ours.prototxt"
    ours.write_text(_bench().resnet50_prototxt())
    mine = run_cli("check", ours)
    assert mine.code == 0, mine.err
    assert "25,610,216 parameters" in mine.out and "229 layers" in mine.out
    published = run_cli("check", corpus_file("resnet__KaimingHe__ResNet-50-deploy.prototxt"))
    assert mine.out == published.out  # every layer: name, type, shape, parameters, MACs


def test_measure_wrapper_reports_the_scripts_peak_even_when_it_exits_nonzero(tmp_path):
    script = tmp_path / "alloc.py"
    script.write_text(
        "import sys\nimport numpy as np\n"
        "a = np.ones(int(sys.argv[1]) * 2**20 // 8)\n"  # touch N MB
        "del a\nsys.exit(3)\n"
    )
    prefix = tmp_path / "peak-alloc"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--measure", str(prefix), str(script), "300"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 3, proc.stderr
    record = json.loads((tmp_path / "peak-alloc.rank0.json").read_text())
    assert record["rank"] == 0
    assert 300 <= record["peak_mb"] < 600  # the freed array still counts: it is a peak
