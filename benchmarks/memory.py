"""Peak memory per process of train / pretrain / explore on ResNet-50 (224x224x3), side by side
with a plain Keras ResNet-50 trained at the same batch size.

The package is built the way a user builds it (``cocotune modules``, ``cocotune subspace -n 3``,
``cocotune gen``) from a ResNet-50 deploy Prototxt (written here, layer for layer the published
KaimingHe ResNet-50-deploy.prototxt; ``--prototxt FILE`` uses another one). The data are a
generated 3-class folder of 224x224 PNGs, 40 training and 10 test images per class: enough
that evaluation and BatchNorm re-estimation run on batches of realistic size. Every phase runs
as the user runs it, in its own process(es): ``train.py`` (one process: it trains on rank 0
only), ``pretrain.py`` and ``explore.py`` under ``mpirun -n RANKS`` (an unreachable accuracy
threshold, so every configuration fine-tunes for ``--steps``; BatchNorm re-estimated on 256
images as in the demo). The reference is ``keras.applications.ResNet50(weights=None)``
compiled with SGD and ``fit`` for the same number of steps at the same batch size; the floor
is a process that only imports TensorFlow and Keras.

Each process reports its own peak resident set (``VmHWM`` of /proc/self/status, read at exit by
a wrapper that runs the script with ``runpy``), so the figures are per rank. The ratio of a
phase is its largest rank's peak over the Keras reference's peak (target: at most 2). Writes
benchmarks/results/memory.json with every rank's figure.

Usage: python benchmarks/memory.py [--steps 3] [--batch-size 8] [--ranks 2] [--prototxt FILE]
                                  [--train-per-class 40] [--test-per-class 10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import runpy
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TARGET_RATIO = 2.0
# Rank of this process under mpirun (MPICH/Hydra, Open MPI); 0 when run alone.
RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")


# --- the measuring wrapper (runs inside each measured process) --------------------------------


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def _measure(prefix: str, script: str, args: list[str]) -> None:
    """Run ``script`` as ``__main__``; at exit write this process's peak RSS to a JSON file."""
    import atexit

    started = time.perf_counter()
    rank = next((int(os.environ[v]) for v in RANK_VARIABLES if v in os.environ), 0)

    def report() -> None:
        record = {
            "rank": rank,
            "peak_mb": round(_status_mb("VmHWM"), 1),
            "seconds": round(time.perf_counter() - started, 1),
        }
        Path(f"{prefix}.rank{rank}.json").write_text(json.dumps(record))

    atexit.register(report)
    sys.argv = [script, *args]
    sys.path.insert(0, str(Path(script).resolve().parent))
    runpy.run_path(script, run_name="__main__")


KERAS_REFERENCE = """\
import sys
import keras
import numpy as np

steps, batch = int(sys.argv[1]), int(sys.argv[2])
keras.utils.set_random_seed(0)
model = keras.applications.ResNet50(weights=None)
model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
              loss="sparse_categorical_crossentropy")
rng = np.random.default_rng(0)
x = rng.uniform(0, 255, (steps * batch, 224, 224, 3)).astype("float32")
y = rng.integers(0, 3, steps * batch)
model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
"""

FLOOR = "import tensorflow, keras\n"


# --- inputs -------------------------------------------------------------------------------------


def resnet50_prototxt() -> str:
    """ResNet-50 deploy net (He et al. 2015) in Caffe's text format, BatchNorm + Scale pairs."""
    out = ['name: "ResNet-50"', 'input: "data"'] + [f"input_dim: {d}" for d in (1, 3, 224, 224)]

    def layer(name, kind, bottom, top, params=""):
        out.append(
            f'layer {{ name: "{name}" type: "{kind}" bottom: "{bottom}" top: "{top}" {params}}}'
        )

    def conv_bn(name, bn, bottom, filters, kernel, stride, pad, relu, bias=False):
        opts = f"num_output: {filters} kernel_size: {kernel} pad: {pad} stride: {stride}"
        opts += "" if bias else " bias_term: false"
        layer(name, "Convolution", bottom, name, f"convolution_param {{ {opts} }} ")
        layer(f"bn{bn}", "BatchNorm", name, name, "batch_norm_param { use_global_stats: true } ")
        layer(f"scale{bn}", "Scale", name, name, "scale_param { bias_term: true } ")
        if relu:
            layer(f"{name}_relu", "ReLU", name, name)

    conv_bn("conv1", "_conv1", "data", 64, 7, 2, 3, relu=True, bias=True)
    layer(
        "pool1",
        "Pooling",
        "conv1",
        "pool1",
        "pooling_param { kernel_size: 3 stride: 2 pool: MAX } ",
    )
    bottom = "pool1"
    for stage, (blocks, width) in enumerate(((3, 64), (4, 128), (6, 256), (3, 512)), start=2):
        for i in range(blocks):
            b = f"{stage}{'abcdef'[i]}"
            stride = 2 if i == 0 and stage > 2 else 1
            shortcut = bottom
            if i == 0:
                conv_bn(f"res{b}_branch1", f"{b}_branch1", bottom, 4 * width, 1, stride, 0, False)
                shortcut = f"res{b}_branch1"
            conv_bn(f"res{b}_branch2a", f"{b}_branch2a", bottom, width, 1, stride, 0, True)
            conv_bn(f"res{b}_branch2b", f"{b}_branch2b", f"res{b}_branch2a", width, 3, 1, 1, True)
            conv_bn(
                f"res{b}_branch2c", f"{b}_branch2c", f"res{b}_branch2b", 4 * width, 1, 1, 0, False
            )
            out.append(
                f'layer {{ name: "res{b}" type: "Eltwise" bottom: "{shortcut}" '
                f'bottom: "res{b}_branch2c" top: "res{b}" }}'
            )
            layer(f"res{b}_relu", "ReLU", f"res{b}", f"res{b}")
            bottom = f"res{b}"
    layer(
        "pool5", "Pooling", bottom, "pool5", "pooling_param { kernel_size: 7 stride: 1 pool: AVE } "
    )
    layer("fc1000", "InnerProduct", "pool5", "fc1000", "inner_product_param { num_output: 1000 } ")
    layer("prob", "Softmax", "fc1000", "prob")
    return "\n".join(out) + "\n"


def image_folder(root: Path, train_per_class: int = 40, test_per_class: int = 10) -> Path:
    """3 classes of random 224x224 colour PNGs under root/train and root/test."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for part, n in (("train", train_per_class), ("test", test_per_class)):
        for c in range(3):
            folder = root / part / f"class{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                image = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
                image[..., c] //= 2  # a class-dependent tint, so labels mean something
                Image.fromarray(image).save(folder / f"{i}.png")
    return root


def run(cmd: list[str], log: Path, stdout: Path | None = None) -> float:
    start = time.perf_counter()
    with open(stdout or log, "w") as out, open(log, "a") as err:
        proc = subprocess.run(cmd, stdout=out, stderr=err, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(map(str, cmd))}\n{log.read_text()[-3000:]}")
    return time.perf_counter() - start


def measured(work: Path, name: str, script: str | Path, args: list, ranks: int = 0) -> dict:
    """Run ``script`` (a file) measured, alone or under ``mpirun -n ranks``; per-rank peaks."""
    prefix = work / f"peak-{name}"
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--measure",
        str(prefix),
        str(script),
        *map(str, args),
    ]
    if ranks:
        cmd = [str(BIN / "mpirun"), "-n", str(ranks), *cmd]
    seconds = run(cmd, work / f"{name}.log")
    records = sorted(
        (json.loads(p.read_text()) for p in work.glob(f"peak-{name}.rank*.json")),
        key=lambda r: r["rank"],
    )
    if len(records) != max(ranks, 1):
        raise SystemExit(f"{name}: expected {max(ranks, 1)} rank records, found {len(records)}")
    peak = max(r["peak_mb"] for r in records)
    per_rank = ", ".join(f"{r['peak_mb']:.0f}" for r in records)
    print(f"  {name:16s} {peak:8.0f} MB  (ranks: {per_rank}; {seconds:.0f} s)", flush=True)
    return {"ranks": records, "peak_mb": peak, "seconds": round(seconds, 1)}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--measure"]:
        _measure(argv[1], argv[2], argv[3:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="training steps per phase")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--ranks", type=int, default=2, help="mpirun -n for pretrain/explore")
    parser.add_argument("--prototxt", type=Path, help="a ResNet-50 deploy Prototxt to use")
    parser.add_argument("--train-per-class", type=int, default=40, help="training images/class")
    parser.add_argument("--test-per-class", type=int, default=10, help="test images per class")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    args = parser.parse_args(argv)
    from cocotune.runtime.results import atomic_write_json

    work = args.keep or Path(tempfile.mkdtemp(prefix="cocotune-memory-"))
    if work.exists() and args.keep:
        shutil.rmtree(work)
    work.mkdir(parents=True)
    try:
        cocotune = [sys.executable, "-m", "cocotune"]
        source = work / "resnet50.prototxt"
        if args.prototxt:
            shutil.copyfile(args.prototxt, source)
        else:
            source.write_text(resnet50_prototxt())
        net, sub, pkg = work / "net.prototxt", work / "sub.txt", work / "pkg"
        run([*cocotune, "modules", source], work / "modules.log", stdout=net)
        run([*cocotune, "subspace", net, "-n", "3", "--seed", "0"], work / "subspace.log", sub)
        run([*cocotune, "gen", net, sub, "-o", pkg], work / "gen.log")
        data = image_folder(work / "images", args.train_per_class, args.test_per_class)
        common = ["--data", data, "--batch-size", args.batch_size, "--quiet"]
        steps = ["--steps", args.steps]
        print(
            f"peak resident memory per process, ResNet-50 224x224x3, batch {args.batch_size}, "
            f"{args.steps} steps:",
            flush=True,
        )
        (work / "floor.py").write_text(FLOOR)
        (work / "keras_reference.py").write_text(KERAS_REFERENCE)
        floor = measured(work, "floor", work / "floor.py", [])
        keras_ref = measured(
            work, "keras-reference", work / "keras_reference.py", [args.steps, args.batch_size]
        )
        phases = {
            "train": measured(work, "train", pkg / "train.py", [*common, *steps]),
            "pretrain": measured(
                work, "pretrain", pkg / "pretrain.py", [*common, *steps], ranks=args.ranks
            ),
            "explore": measured(
                work,
                "explore",
                pkg / "explore.py",
                [
                    *common,
                    *steps,
                    "--eval-every",
                    args.steps,
                    "--bn-recalibrate",
                    "256",
                    "--acc-threshold",
                    "1.01",
                ],
                ranks=args.ranks,
            ),
        }
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    reference = keras_ref["peak_mb"]
    print(f"\n{'phase':10s} {'peak MB (max rank)':>18s} {'x Keras ResNet50':>17s}")
    for name, phase in phases.items():
        phase["ratio"] = round(phase["peak_mb"] / reference, 2)
        print(f"{name:10s} {phase['peak_mb']:18.0f} {phase['ratio']:17.2f}")
    print(
        f"{'Keras':10s} {reference:18.0f} {1.0:17.2f}   (floor: import tensorflow, keras = "
        f"{floor['peak_mb']:.0f} MB)"
    )
    worst = max(p["ratio"] for p in phases.values())
    print(f"worst ratio {worst:.2f} (target <= {TARGET_RATIO:g})")
    report = {
        "benchmark": "memory",
        "what": "peak RSS (VmHWM) per process, ResNet-50 224x224x3, as a user runs each phase",
        "settings": {
            "steps": args.steps,
            "batch_size": args.batch_size,
            "ranks": args.ranks,
            "images": f"3 classes x ({args.train_per_class} train + "
            f"{args.test_per_class} test) random 224x224 PNGs",
            "prototxt": str(args.prototxt.name) if args.prototxt else "generated",
            "explore": "--bn-recalibrate 256 --acc-threshold 1.01: all fine-tune",
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_after": [round(v, 2) for v in os.getloadavg()],
        },
        "floor_import_tensorflow_keras": floor,
        "keras_reference": keras_ref,
        "phases": phases,
        "target_ratio": TARGET_RATIO,
        "worst_ratio": worst,
        "meets_target": worst <= TARGET_RATIO,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "memory.json"
    atomic_write_json(path, report)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
