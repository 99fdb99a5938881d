"""benchmarks/cocogen_pointwise.py --quick writes cocogen_pointwise.json with the promised keys."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYER_KEYS = {
    "seconds",
    "speedup_vs_tflite_1t",
    "speedup_vs_tflite_2t",
    "bound_fraction",
    "bound_fraction_2t",
    "kept_fraction",
    "pwb_bytes",
    "csr_bytes",
    "max_rel_error_vs_tflite",
    "bound_fraction_conservative",
    "bound_fraction_unblocked",
    "bound_fraction_unblocked_2t",
}


@pytest.mark.slow
def test_quick_pointwise_benchmark(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "cocogen_pointwise.py"),
            "--quick",
            "--rounds",
            "1",
            "--only",
            "conv3_sc_s2,fc",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((tmp_path / "cocogen_pointwise.json").read_text())["resnet50_1x1"]
    assert [r["name"] for r in data["layers"]] == ["conv3_sc_s2", "fc"]
    for r in data["layers"]:
        assert LAYER_KEYS <= set(r)
        assert r["max_rel_error_vs_tflite"] < 1e-5
        assert 0.2 < r["kept_fraction"] < 0.35
        assert r["pwb_bytes"] < r["csr_bytes"]
        assert {"ours_1t", "ours_2t", "tflite_1t", "tflite_2t"} <= set(r["seconds"])
        assert {"ours_unblocked_1t", "ours_unblocked_2t"} <= set(r["seconds"])
        assert "_m" in r["kernel_unblocked"]
    assert {"conv1x1", "conv1x1_and_fc"} == set(data["totals"])
