"""`make demo`: the whole CoCo-Tune pipeline on the bundled example, as a user would run it.

check → subspace (sampled) → gen → train the full model → pre-train tuning blocks under
`mpirun -n 2` → explore under `mpirun -n 2`, block-trained and then default (``--baseline``)
networks under the same stop rule → the chosen networks. Every step is the real command
(printed before it runs); the files end up in demo-out/.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "resnet_digits"
OUT = REPO / "demo-out"
BIN = Path(sys.executable).parent


def show(cmd: list[str]) -> str:
    text = " ".join(shlex.quote(str(c)) for c in cmd)
    return text.replace(str(REPO) + "/", "").replace(sys.executable, "python")


def step(title: str, cmd: list, stdout=None) -> float:
    cmd = [str(c) for c in cmd]
    print(f"\n=== {title}\n$ {show(cmd)}" + (f" > {stdout.name}" if stdout else ""), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True, stdout=stdout)
    seconds = time.perf_counter() - start
    print(f"({seconds:.1f} s)", flush=True)
    return seconds


def main() -> int:
    started = time.perf_counter()
    cocotune = [sys.executable, "-m", "cocotune"]
    mpirun = [str(BIN / "mpirun"), "-n", "2", sys.executable]
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir()
    pkg = OUT / "pkg"
    net = EXAMPLE / "net.prototxt"
    step(
        "1. Read the net exactly as Caffe would: modules, shapes, parameters",
        [*cocotune, "check", net],
    )
    with open(OUT / "subspace.txt", "w") as f:
        step(
            "2. Sample a promising subspace: 16 configurations, sizes spread evenly",
            [*cocotune, "subspace", net, "-n", "16", "--rates", "0.3,0.5,0.7", "--seed", "0"],
            stdout=f,
        )
    step(
        "3. Choose tuning blocks (Sequitur) and generate the pruning package",
        [*cocotune, "gen", net, OUT / "subspace.txt", "-o", pkg],
    )
    step(
        "4. Train the full model (the teacher) on the bundled digits",
        [sys.executable, pkg / "train.py", "--steps", "400"],
    )
    step(
        "5. Pre-train the tuning blocks, teacher-student, on 2 processes",
        [*mpirun, pkg / "pretrain.py", "--steps", "120"],
    )
    explore = ["--alpha", "0.02", "--steps", "60", "--eval-every", "20", "--bn-recalibrate", "512"]
    step(
        "6. Explore: the smallest network within 2% of the full model's validation accuracy",
        [*mpirun, pkg / "explore.py", *explore],
    )
    step(
        "7. The same exploration from default (L1-pruned) weights, same stop rule",
        [*mpirun, pkg / "explore.py", *explore, "--baseline"],
    )
    print("\n=== Result")
    for method in ("block-trained", "default"):
        best = json.loads((pkg / "runs" / f"best-{method}.json").read_text())
        if not best.get("found"):
            print(f"{method}: no configuration met the objective ({best['explored']} explored)")
            continue
        rates = ", ".join(f"{m}={r:g}" for m, r in best["rates"].items())
        print(
            f"{method}: chosen network {best['id']} ({rates}) after {best['explored']} of "
            f"{best['configurations']} configurations"
        )
        print(
            f"  parameters {best['params']:,} vs full {best['full_params']:,} "
            f"({best['params'] / best['full_params']:.0%}); validation accuracy "
            f"{best['val_accuracy']:.4f} vs full {best['full_val_accuracy']:.4f}; test "
            f"{best['test_accuracy']:.4f} vs full {best['full_test_accuracy']:.4f}; "
            f"{best['steps']} fine-tuning steps (stop: {best['stop']})"
        )
    print(
        f"files: {pkg.relative_to(REPO)}/ (model.py, tuning.json, blocks/, runs/results.jsonl, "
        f"runs/best-<method>.json and .keras); total {time.perf_counter() - started:.0f} s"
    )
    # CoCo-Gen on what CoCo-Tune found: the block-trained winner (else the default one)
    for method in ("block-trained", "default"):
        chosen = pkg / "runs" / f"best-{method}.keras"
        if chosen.exists():
            cocogen_steps(cocotune, chosen)
            break
    return 0


def cocogen_steps(cocotune: list, best_keras: Path) -> None:
    """CoCo-Gen on the network the exploration chose: pattern + connectivity pruning (ADMM, with
    its BatchNorm layers), generated kernels, and the result in stock TensorFlow Lite."""
    pruned, build = OUT / "cocogen" / "pruned", OUT / "cocogen" / "build"
    step(
        "8. CoCo-Gen: prune its 3x3 convolutions to 8 patterns + 3.6x connectivity (ADMM)",
        [*cocotune, "cocogen", "prune", best_keras, "--data", "digits", "-o", pruned],
    )
    step(
        "9. CoCo-Gen: generate, tune and build its kernels; model.tflite + TFLite delegate",
        [*cocotune, "cocogen", "compile", pruned / "model.keras", "-o", build],
    )
    step(
        "10. The pruned network in stock TensorFlow Lite, with vs without our delegate",
        [*cocotune, "cocogen", "evaluate", build, "--data", "digits", "--threads", "1,2"],
    )
    acc = json.loads((pruned / "pruning.json").read_text())["accuracy"]
    print(
        f"\nCoCo-Gen: accuracy {acc['before']:.4f} (chosen network) -> {acc['after_retrain']:.4f} "
        f"(pruned, retrained); files: {build.relative_to(REPO)}/ (model.tflite, "
        f"libcocogen_delegate.so, cocogen_weights.bin, build.json, evaluate.json)"
    )


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except subprocess.CalledProcessError as exc:
        print(f"demo step failed with exit code {exc.returncode}", file=sys.stderr)
        raise SystemExit(1) from None
