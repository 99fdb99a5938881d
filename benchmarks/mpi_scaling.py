"""Exploration throughput with 1 vs 2 MPI ranks on the bundled example (steady state and whole
command, measured side by side).

Generates the examples/resnet_digits package, trains the full model briefly, then explores the
same configurations (default networks, an unreachable threshold so every one is evaluated) with
``python explore.py`` and ``mpirun -n 2 python explore.py``, each in a fresh copy, alternating
1-rank and 2-rank runs (1,2 then 2,1, ...) so that a change in the machine's load hits both.

Two figures per run:
- steady-state throughput: configurations per second once every rank is running. Per rank,
  (its completions - 1) / (time of its last completion - time of its first); the job's rate is
  the sum over ranks. Completion times come from explore.py's progress lines (one plain line
  per finished configuration with the elapsed seconds when the output is not a terminal) paired
  with results.jsonl, which rank 0 appends in the same completion order and which records the
  rank that ran each configuration. Start-up (imports, data, full-model check) and each rank's
  first configuration (first tracing of TensorFlow functions) are excluded.
- whole command: configurations / wall-clock seconds of the complete command, start-up included.

Reports medians over the repeats and the ratio 2 ranks / 1 rank of each (target >= 1.8 steady
state on 2 cores), the machine's load average around every run (os.getloadavg), and writes
benchmarks/results/mpi_scaling.json with every run's raw figures.

Usage: python benchmarks/mpi_scaling.py [--configs 12] [--steps 200] [--repeats 3] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cocotune.runtime.results import atomic_write_json

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# "explore (default): 3/12 (25%), 41.2 s, ~98 s left, ..." (cocotune.runtime.progress.LineProgress)
PROGRESS = re.compile(r"^explore \([^)]*\): (\d+)/(\d+) \(\d+%\), ([0-9.]+) s\b")


def run(cmd: list[str], log: Path) -> tuple[float, float]:
    """Run ``cmd`` with stdout+stderr to ``log`` (not a terminal); return its wall seconds and
    the CPU seconds it and its descendants (mpirun's ranks) used."""
    cpu = _children_cpu()
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{log.read_text()[-3000:]}")
    return seconds, _children_cpu() - cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def completions(log: Path, results: Path) -> list[tuple[float, int]]:
    """(elapsed seconds, rank) of every finished configuration, in completion order."""
    times = [float(m.group(3)) for m in map(PROGRESS.match, log.read_text().splitlines()) if m]
    ranks = [json.loads(line)["rank"] for line in results.read_text().splitlines()]
    if len(times) != len(ranks):
        raise SystemExit(f"{log}: {len(times)} progress lines but {len(ranks)} results")
    return list(zip(times, ranks))


def steady_rate(events: list[tuple[float, int]]) -> float:
    """Configurations per second with every rank past its first configuration."""
    rate = 0.0
    for rank in sorted({r for _, r in events}):
        mine = [t for t, r in events if r == rank]
        if len(mine) >= 2 and mine[-1] > mine[0]:
            rate += (len(mine) - 1) / (mine[-1] - mine[0])
    return rate


def load() -> float:
    return round(os.getloadavg()[0], 2)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=12)
    parser.add_argument("--steps", type=int, default=200, help="fine-tuning steps per config")
    parser.add_argument("--repeats", type=int, default=3, help="pairs of 1-rank/2-rank runs")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    from cocotune.frontend.load import load_net
    from cocotune.gen.write_package import generate_package
    from cocotune.tuning.subspace import format_subspace, sample_subspace

    net_path = REPO / "examples" / "resnet_digits" / "net.prototxt"
    runs: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        configs = sample_subspace(load_net(net_path), args.configs, [0.3, 0.5, 0.7], seed=1)
        (tmp / "sub.txt").write_text(format_subspace(load_net(net_path).module_names, configs))
        base = tmp / "base"
        generate_package(str(net_path), str(tmp / "sub.txt"), base)
        run([sys.executable, str(base / "train.py"), "--quiet", "--steps", "150"], tmp / "t.log")
        explore = ["--baseline", "--acc-threshold", "1.01", "--steps", str(args.steps)]
        for repeat in range(args.repeats):
            for ranks in (1, 2) if repeat % 2 == 0 else (2, 1):
                pkg = tmp / f"r{repeat}-{ranks}"
                shutil.copytree(base, pkg, ignore=shutil.ignore_patterns("runs"))
                cmd = [sys.executable, str(pkg / "explore.py"), *explore]
                if ranks > 1:
                    cmd = [str(BIN / "mpirun"), "-n", str(ranks), *cmd]
                before = load()
                seconds, cpu = run(cmd, pkg / "explore.log")
                events = completions(pkg / "explore.log", pkg / "runs" / "results.jsonl")
                if len(events) != args.configs:
                    raise SystemExit(f"{pkg}: {len(events)} of {args.configs} configurations")
                steady = steady_rate(events)
                runs.append(
                    {
                        "repeat": repeat,
                        "ranks": ranks,
                        "seconds": round(seconds, 2),
                        "configs_per_s": round(args.configs / seconds, 4),
                        "cpu_seconds": round(cpu, 1),
                        "steady_configs_per_s": round(steady, 4),
                        "per_rank": {
                            str(r): sum(1 for _, x in events if x == r) for r in range(ranks)
                        },
                        "completions": [[round(t, 1), r] for t, r in events],
                        "load_before": before,
                        "load_after": load(),
                    }
                )
                print(
                    f"repeat {repeat}, {ranks} rank(s): {seconds:.1f} s whole command "
                    f"({cpu:.0f} CPU s), steady {steady:.4f} configurations/s (load {before} "
                    f"-> {runs[-1]['load_after']})",
                    flush=True,
                )

    def median(ranks: int, key: str) -> float:
        return statistics.median(r[key] for r in runs if r["ranks"] == ranks)

    def pair_ratios(key: str) -> list[float]:
        by = {(r["repeat"], r["ranks"]): r[key] for r in runs}
        return [round(by[(i, 2)] / by[(i, 1)], 3) for i in range(args.repeats)]

    steady = {r: median(r, "steady_configs_per_s") for r in (1, 2)}
    whole = {r: median(r, "configs_per_s") for r in (1, 2)}
    steady_ratio, whole_ratio = steady[2] / steady[1], whole[2] / whole[1]
    for r in runs:  # cores the job actually got: low when other work shares the machine
        r["cores_used"] = round(r["cpu_seconds"] / r["seconds"], 2)
    cores = {r: median(r, "cores_used") for r in (1, 2)}
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load_range = [min(r["load_before"] for r in runs), max(r["load_after"] for r in runs)]
    for r in (1, 2):
        print(
            f"{r} rank(s): steady {steady[r]:.4f} configurations/s, whole command "
            f"{median(r, 'seconds'):.1f} s ({whole[r]:.4f} configurations/s) (medians)"
        )
    print(
        f"steady-state ratio 2 ranks / 1 rank: {steady_ratio:.2f} (target >= 1.8); "
        f"per pair {pair_ratios('steady_configs_per_s')}"
    )
    print(f"whole-command ratio: {whole_ratio:.2f}; per pair {pair_ratios('configs_per_s')}")
    print(
        f"cores used (CPU s / wall s, medians): 1 rank {cores[1]:.2f}, 2 ranks {cores[2]:.2f}; "
        f"load average {load_range[0]}..{load_range[1]} on {cpus} CPUs"
    )
    report = {
        "benchmark": "mpi_scaling",
        "method": (
            f"{args.repeats} pairs of runs of explore.py --baseline --acc-threshold 1.01 (every "
            f"one of {args.configs} configurations x {args.steps} fine-tuning steps), 1 rank "
            "and mpirun -n 2 alternating (1,2 / 2,1 / ...), fresh package copy each; steady "
            "state = per rank (completions - 1) / (last - first completion time), summed over "
            "ranks; whole command = configurations / wall clock including start-up; medians"
        ),
        "configurations": args.configs,
        "steps": args.steps,
        "repeats": args.repeats,
        "steady_configs_per_s_1_rank": round(steady[1], 4),
        "steady_configs_per_s_2_ranks": round(steady[2], 4),
        "steady_ratio": round(steady_ratio, 3),
        "steady_ratio_per_pair": pair_ratios("steady_configs_per_s"),
        "seconds_1_rank": round(median(1, "seconds"), 2),
        "seconds_2_ranks": round(median(2, "seconds"), 2),
        "whole_command_ratio": round(whole_ratio, 3),
        "whole_command_ratio_per_pair": pair_ratios("configs_per_s"),
        "cores_used_1_rank": cores[1],
        "cores_used_2_ranks": cores[2],
        "cpus": cpus,
        "load_average_range": load_range,
        "python": platform.python_version(),
        "runs": runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "mpi_scaling.json"
    atomic_write_json(path, report)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
