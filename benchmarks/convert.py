"""Conversion speed (ResNet-152) and inference speed of the generated ResNet-50 vs keras.applications.

The two ResNet-50s run side by side in one process: same batch, random weights, interleaved
repetitions, best time of each kept. Prints the ratio (ours / keras.applications throughput;
>= 1 means the generated model is at least as fast) and writes benchmarks/results/convert.json.
Usage: python benchmarks/convert.py [--batch 8] [--repeat 10] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cocotune.runtime.results import atomic_write_json

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"


def timed_convert(prototxt: Path, out: Path) -> float:
    from cocotune.convert.command import convert

    start = time.perf_counter()
    convert(str(prototxt), out)
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    r152 = CORPUS / "resnet__KaimingHe__ResNet-152-deploy.prototxt"
    r50 = CORPUS / "resnet__KaimingHe__ResNet-50-deploy.prototxt"
    if not r50.exists():
        print(f"needs the shared corpus ({r50} not found)")
        return 1
    import keras
    import tensorflow as tf

    from cocotune.files import import_generated

    with tempfile.TemporaryDirectory() as tmp:
        t152 = timed_convert(r152, Path(tmp) / "r152") if r152.exists() else None
        timed_convert(r50, Path(tmp) / "r50")
        ours = import_generated(Path(tmp) / "r50" / "model.py").build_model("full")
    theirs = keras.applications.ResNet50(weights=None)
    x = np.random.default_rng(0).standard_normal((args.batch, 224, 224, 3)).astype(np.float32)
    runners = {
        "generated": tf.function(lambda t: ours(t, training=False), jit_compile=False),
        "keras.applications": tf.function(lambda t: theirs(t, training=False), jit_compile=False),
    }
    for run in runners.values():  # trace and warm up
        run(x).numpy()
        run(x).numpy()
    best = {name: float("inf") for name in runners}
    for _ in range(args.repeat):
        for name, run in runners.items():
            start = time.perf_counter()
            run(x).numpy()
            best[name] = min(best[name], time.perf_counter() - start)
    ratio = best["keras.applications"] / best["generated"]
    print(
        f"conversion, ResNet-152 (parse, plan, generate, format, import): {t152:.2f} s"
        if t152 is not None
        else "ResNet-152 not found"
    )
    for name, seconds in best.items():
        print(
            f"ResNet-50 inference, batch {args.batch}, {name:20s}: {seconds * 1e3:8.1f} ms "
            f"({args.batch / seconds:6.1f} images/s)"
        )
    print(f"speed ratio generated / keras.applications: {ratio:.3f} (target >= 0.95)")
    report = {
        "benchmark": "convert",
        "method": f"best of {args.repeat} interleaved runs per model, tf.function, batch "
        f"{args.batch}, random weights, {os.cpu_count()} CPUs",
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "convert_resnet152_s": round(t152, 3) if t152 is not None else None,
        "resnet50_generated_ms": round(best["generated"] * 1e3, 2),
        "resnet50_keras_applications_ms": round(best["keras.applications"] * 1e3, 2),
        "speed_ratio": round(ratio, 3),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "convert.json"
    atomic_write_json(path, report)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
