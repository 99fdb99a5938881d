"""Done-when, end to end: ResNet-50 from the Caffe corpus through the whole CoCo-Tune pipeline.

The real ResNet-50 deploy Prototxt, shrunk to 16x16 inputs (pool5 made global, 3 outputs), on a
generated 3-class image folder: ``cocotune modules`` (residual blocks), ``subspace -n 3``,
``gen``, ``train.py``, ``mpirun -n 2 pretrain.py``, ``mpirun -n 2 explore.py``, ``--baseline``,
then a second exploration with other settings. Checks that verdicts agree with the recorded
validation accuracies and the threshold, and that nothing is lost or overwritten. A handful of
steps everywhere: this tests the plumbing at full depth, not accuracy.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import corpus_file

pytestmark = [pytest.mark.slow, pytest.mark.mpi]

VENV_BIN = Path(sys.executable).parent
SMALL = ["--quiet", "--batch-size", "8"]


def shrink(src: Path, dest: Path) -> None:
    """ResNet-50 at 16x16: pool5's 7x7 kernel becomes global pooling, 3 classes."""
    text = src.read_text()
    text = text.replace("input_dim: 224", "input_dim: 16")
    at = text.index('name: "pool5"')
    kernel = text.index("kernel_size: 7", at)
    text = text[:kernel] + "global_pooling: true" + text[kernel + len("kernel_size: 7") :]
    dest.write_text(text.replace("num_output: 1000", "num_output: 3"))


def image_folder(root: Path) -> Path:
    """3 classes told apart by their dominant colour; train/, val/ and test/ parts."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for part, count in (("train", 12), ("val", 4), ("test", 4)):
        for label, name in enumerate(("red", "green", "blue")):
            folder = root / part / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 96, size=(16, 16, 3))
                pixels[..., label] += 150
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i}.png")
    return root


def run(cmd: list, mpi: int = 0, timeout: int = 1800) -> str:
    cmd = [str(c) for c in cmd]
    if mpi:
        cmd = [str(VENV_BIN / "mpirun"), "-n", str(mpi), *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def lines(pkg: Path) -> list[dict]:
    return [json.loads(x) for x in (pkg / "runs" / "results.jsonl").read_text().splitlines()]


def check_verdict(pkg: Path, method: str, fingerprint: str) -> dict:
    """best-<method>.json agrees with the records of this fingerprint and its threshold."""
    best = json.loads((pkg / "runs" / f"best-{method}.json").read_text())
    mine = [r for r in lines(pkg) if r["method"] == method and r["fingerprint"] == fingerprint]
    latest = {r["id"]: r for r in mine}
    order = sorted(latest.values(), key=lambda r: (r["params"], r["id"]))
    threshold = best["threshold"]
    winners = [r for r in order if r["val_accuracy"] >= threshold]
    assert best["found"] == bool(winners)
    if winners:
        assert best["id"] == winners[0]["id"]  # the smallest that meets it
        assert (pkg / "runs" / f"best-{method}.keras").exists()
    return best


def test_resnet50_pipeline_end_to_end(tmp_path):
    prototxt = corpus_file("resnet__KaimingHe__ResNet-50-deploy.prototxt")
    cocotune = [sys.executable, "-m", "cocotune"]
    shrink(prototxt, tmp_path / "net.prototxt")
    (tmp_path / "modular.prototxt").write_text(
        run([*cocotune, "modules", tmp_path / "net.prototxt"])
    )
    subspace = run([*cocotune, "subspace", tmp_path / "modular.prototxt", "-n", "3"])
    assert len([x for x in subspace.splitlines() if x and not x.startswith("#")]) == 3
    (tmp_path / "sub.txt").write_text(subspace)
    pkg = tmp_path / "pkg"
    run([*cocotune, "gen", tmp_path / "modular.prototxt", tmp_path / "sub.txt", "-o", pkg])
    tuning = json.loads((pkg / "tuning.json").read_text())
    assert len(tuning["modules"]) == 16  # res2a .. res5c
    data = ["--data", str(image_folder(tmp_path / "images"))]
    run([sys.executable, pkg / "train.py", *SMALL, *data, "--steps", "8"])
    run(
        [
            sys.executable,
            pkg / "pretrain.py",
            *SMALL,
            *data,
            "--steps",
            "2",
            "--blocks-per-model",
            "6",
        ],
        mpi=2,
    )
    assert all((pkg / "blocks" / f"{b['id']}.weights.h5").exists() for b in tuning["blocks"])

    explore = [
        sys.executable,
        pkg / "explore.py",
        *SMALL,
        *data,
        "--alpha",
        "0.5",
        "--steps",
        "4",
        "--eval-every",
        "2",
        "--bn-recalibrate",
        "12",
    ]
    run(explore, mpi=2)
    first = lines(pkg)
    assert first and {r["method"] for r in first} == {"block-trained"}
    fp_blocks = first[0]["fingerprint"]
    blocks_best = check_verdict(pkg, "block-trained", fp_blocks)
    blocks_json = (pkg / "runs" / "best-block-trained.json").read_bytes()

    run([*explore, "--baseline"], mpi=2)
    after_baseline = lines(pkg)
    assert after_baseline[: len(first)] == first
    defaults = [r for r in after_baseline if r["method"] == "default"]
    assert defaults and (pkg / "runs" / "best-block-trained.json").read_bytes() == blocks_json
    check_verdict(pkg, "default", defaults[0]["fingerprint"])
    for a in first:
        for b in defaults:
            if a["id"] == b["id"]:  # the same configuration: same rule, steps and seeds
                assert a["settings"]["stop_rule"] == b["settings"]["stop_rule"]
                assert a["curve"][0][0] == b["curve"][0][0] == 0

    candidates = sorted((pkg / "runs" / "candidates").glob("*.keras"))
    out = run([*explore[:-1], "8"], mpi=2)  # other BN settings: a different fingerprint
    assert re.search(r"\d+ results from other settings ignored; evaluating afresh", out)
    final = lines(pkg)
    assert final[: len(after_baseline)] == after_baseline  # nothing lost
    fresh = [r for r in final[len(after_baseline) :] if r["method"] == "block-trained"]
    assert fresh and {r["fingerprint"] for r in fresh} != {fp_blocks}
    assert all(p.exists() for p in candidates)  # earlier candidates not overwritten
    check_verdict(pkg, "block-trained", fresh[0]["fingerprint"])
    saved = {f"candidates/{p.name}" for p in (pkg / "runs" / "candidates").glob("*.keras")}
    assert saved <= {r["model"] for r in final}  # every saved model has its results line
    assert blocks_best["method"] == "block-trained"
