"""The cocogen CLI (through its own argparse parser: the lead's cli.py calls the same register)."""

import argparse
import json
import subprocess
import sys

import pytest

from cocotune.cocogen.commands import register
from cocotune.cocogen.errors import CocogenError


def _parser():
    p = argparse.ArgumentParser(prog="cocotune")
    register(p.add_subparsers(dest="command"))
    return p


def run(argv):
    args = _parser().parse_args(argv)
    return args.func(args)


def test_import_does_not_load_tensorflow():
    code = "import sys, cocotune.cocogen, cocotune.cocogen.commands; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_bad_rate_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as e:
        _parser().parse_args(["cocogen", "prune", "m.keras", "--connectivity", "0.5", "-o", "x"])
    assert e.value.code == 2
    assert "connectivity rate" in capsys.readouterr().err


def test_missing_model_is_a_user_error(tmp_path):
    with pytest.raises(CocogenError, match="does not exist"):
        run(["cocogen", "compile", str(tmp_path / "nope.keras"), "-o", str(tmp_path / "b")])


def test_bench_needs_a_build_dir(tmp_path):
    with pytest.raises(CocogenError, match="not a cocogen build directory"):
        run(["cocogen", "bench", str(tmp_path)])


@pytest.mark.slow
def test_prune_compile_bench(tmp_path, trained_model_path, capsys):
    pruned = tmp_path / "pruned"
    assert (
        run(
            [
                "cocogen",
                "prune",
                str(trained_model_path),
                "--data",
                "digits",
                "--patterns",
                "4",
                "--connectivity",
                "2",
                "--admm-epochs",
                "2",
                "--retrain-epochs",
                "1",
                "-o",
                str(pruned),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "after ADMM" in out and "after retraining" in out and "compression" in out
    info = json.loads((pruned / "pruning.json").read_text())
    assert info["compression_rate"] > 2
    assert (pruned / "masks.npz").is_file()
    build = tmp_path / "build"
    assert (
        run(["cocogen", "compile", str(pruned / "model.keras"), "-o", str(build), "--no-tune"]) == 0
    )
    assert "stock runtime" in capsys.readouterr().out
    assert run(["cocogen", "bench", str(build), "--threads", "1,2", "--rounds", "2"]) == 0
    res = json.loads((build / "bench.json").read_text())
    assert res["layers"] and "speedup_vs_tflite_2t" in res["layers"][0]
    assert "whole_model" in res
