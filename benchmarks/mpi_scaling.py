"""Exploration throughput with 1 vs 2 MPI ranks on the bundled example.

Generates the examples/resnet_digits package, trains the full model briefly, then explores the
same configurations (default networks, an unreachable threshold so every one is evaluated)
once with `python explore.py` and once with `mpirun -n 2 python explore.py`, in fresh copies.
Prints configurations per second for each and their ratio (target >= 1.8 on 2 cores); writes
benchmarks/results/mpi_scaling.json.
Usage: python benchmarks/mpi_scaling.py [--configs 8] [--steps 60] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cocotune.runtime.results import atomic_write_json

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(cmd: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    from cocotune.frontend.load import load_net
    from cocotune.gen.package import generate_package
    from cocotune.tuning.subspace import format_subspace, sample_subspace

    net_path = REPO / "examples" / "resnet_digits" / "net.prototxt"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        configs = sample_subspace(load_net(net_path), args.configs, [0.3, 0.5, 0.7], seed=1)
        (tmp / "sub.txt").write_text(format_subspace(load_net(net_path).module_names, configs))
        base = tmp / "base"
        generate_package(str(net_path), str(tmp / "sub.txt"), base)
        run([sys.executable, str(base / "train.py"), "--quiet", "--steps", "150"])
        explore = ["--quiet", "--baseline", "--acc-threshold", "1.01", "--steps", str(args.steps)]
        times = {}
        for ranks in (1, 2):
            pkg = tmp / f"ranks{ranks}"
            shutil.copytree(base, pkg)
            cmd = [sys.executable, str(pkg / "explore.py"), *explore]
            if ranks > 1:
                cmd = [str(BIN / "mpirun"), "-n", str(ranks), *cmd]
            times[ranks] = run(cmd)
            lines = (pkg / "runs" / "results.jsonl").read_text().splitlines()
            assert len(lines) == args.configs, (ranks, len(lines))
    rate = {r: args.configs / t for r, t in times.items()}
    ratio = rate[2] / rate[1]
    for r in (1, 2):
        print(f"{r} rank(s): {args.configs} configurations in {times[r]:.1f} s "
              f"({rate[r]:.3f} configurations/s)")  # fmt: skip
    print(f"throughput ratio 2 ranks / 1 rank: {ratio:.2f} (target >= 1.8)")
    report = {
        "benchmark": "mpi_scaling",
        "method": "one run each, wall clock of the whole explore.py command (start-up, data, "
        f"full-accuracy check and {args.configs} configurations x {args.steps} fine-tuning steps)",
        "configurations": args.configs, "steps": args.steps,
        "seconds_1_rank": round(times[1], 2), "seconds_2_ranks": round(times[2], 2),
        "configs_per_s_1_rank": round(rate[1], 4), "configs_per_s_2_ranks": round(rate[2], 4),
        "ratio": round(ratio, 3), "python": platform.python_version(),
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "mpi_scaling.json"
    atomic_write_json(path, report)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
