"""benchmarks/cocogen.py --quick writes cocogen.json with the promised keys."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NET_KEYS = {
    "speedup_vs_tflite_1t",
    "speedup_vs_tflite_2t",
    "speedup_vs_dense_1t",
    "speedup_vs_csr_1t",
    "bound_fraction_min",
    "bound_fraction_mean",
    "fkw_bytes",
    "csr_bytes",
    "delegate_speedup_1t",
    "delegate_speedup_2t",
}
DELEGATE_ONLY = {"delegate_speedup_1t", "delegate_speedup_2t"}
LAYER_KEYS = NET_KEYS - {"bound_fraction_min", "bound_fraction_mean"} - DELEGATE_ONLY | {
    "bound_fraction"
}


@pytest.mark.slow
def test_quick_benchmark(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "cocogen.py"),
            "--quick",
            "--rounds",
            "1",
            "--networks",
            "vgg16_cifar",
            "--out",
            str(tmp_path),
        ],
        check=True,
        env=env,
        capture_output=True,
        timeout=300,
    )
    res = json.loads((tmp_path / "cocogen.json").read_text())
    net = res["networks"]["vgg16_cifar"]
    assert NET_KEYS <= set(net)
    assert net["max_rel_err_vs_tflite"] <= 1e-4
    assert net["fkw_bytes"] < net["csr_bytes"]
    assert net["delegate"]["max_rel_err_vs_stock"] <= 1e-4
    assert net["delegate"]["claimed_nodes"] == net["delegate"]["compiled_layers"] == 13
    for row in net["layers"]:
        assert LAYER_KEYS <= set(row)
