"""Benchmark: Sequitur throughput at growing input sizes, and block selection at paper scale.

Input: CoCo-Tune-like sequences, not uniform noise. A network has 50 modules, each at one of 4
rates; configurations are variations of a few dozen base configurations (a promising subspace
clusters), and each configuration ends with a unique separator, exactly as blocks.py feeds
Sequitur. Linear time shows as a flat symbols/s column and a time ratio near 10 per decade.

Usage:
    python benchmarks/sequitur.py [--quick] [--out DIR] [--seed N] [--repeat K]

Writes ``DIR/sequitur.json`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cocotune.tuning.blocks import Separator, Symbol, select_blocks
from cocotune.tuning.sequitur import build_grammar

MODULES = [f"res{i}" for i in range(50)]
RATES = (0.0, 0.3, 0.5, 0.7)


def configurations(count: int, rng: random.Random, bases: int = 40) -> list[dict[str, float]]:
    """``count`` configurations, each a base configuration with ~10% of its modules re-drawn."""
    base = [[rng.choice(RATES) for _ in MODULES] for _ in range(bases)]
    out = []
    for _ in range(count):
        row = list(rng.choice(base))
        for i in range(len(row)):
            if rng.random() < 0.1:
                row[i] = rng.choice(RATES)
        out.append(dict(zip(MODULES, row)))
    return out


def symbol_sequence(length: int, rng: random.Random) -> list:
    """About ``length`` symbols: whole configurations plus separators, cut to size."""
    per_config = len(MODULES) + 1
    seq: list = []
    for index, cfg in enumerate(configurations(length // per_config + 1, rng)):
        seq.extend(Symbol(m, str(cfg[m])) for m in MODULES)
        seq.append(Separator(index))
    return seq[:length]


def best_of(repeat: int, fn) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10^3..10^4 symbols, 100 configurations")
    ap.add_argument("--out", default="benchmarks/results", help="directory for sequitur.json")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per size; best is kept")
    args = ap.parse_args(argv)

    sizes = [10**3, 10**4] if args.quick else [10**4, 10**5, 10**6]
    n_configs = 100 if args.quick else 500
    rng = random.Random(args.seed)

    rows = []
    print(f"{'symbols':>9} {'seconds':>9} {'symbols/s':>11} {'x time':>7} {'rules':>7} {'size':>8}")
    previous = None
    for n in sizes:
        seq = symbol_sequence(n, rng)
        repeat = 1 if n >= 10**6 else args.repeat
        seconds, grammar = best_of(repeat, lambda seq=seq: build_grammar(seq))
        ratio = seconds / previous[1] if previous else None
        scale = n / previous[0] if previous else None
        previous = (n, seconds)
        row = {
            "symbols": n,
            "seconds": round(seconds, 4),
            "symbols_per_second": round(n / seconds),
            "time_ratio_to_previous": round(ratio, 2) if ratio else None,
            "size_ratio_to_previous": scale,
            "rules": len(grammar),
            "grammar_size": grammar.size(),
        }
        rows.append(row)
        shown = f"{ratio:7.2f}" if ratio else f"{'-':>7}"
        print(
            f"{n:>9} {seconds:>9.3f} {n / seconds:>11,.0f} {shown} {len(grammar):>7} {grammar.size():>8}"
        )

    configs = configurations(n_configs, rng)
    seconds, result = best_of(args.repeat, lambda: select_blocks(MODULES, configs))
    multi = sum(1 for b in result.blocks if len(b.modules) > 1)
    selection = {
        "configurations": n_configs,
        "modules": len(MODULES),
        "seconds": round(seconds, 4),
        "blocks": len(result.blocks),
        "multi_module_blocks": multi,
        "rules": len(result.grammar),
    }
    print(
        f"block selection, {n_configs} configurations x {len(MODULES)} modules: {seconds:.3f} s, "
        f"{len(result.blocks)} blocks ({multi} multi-module), {len(result.grammar)} rules"
    )

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": "sequitur",
        "quick": args.quick,
        "seed": args.seed,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "build_grammar": rows,
        "select_blocks": selection,
    }
    (out / "sequitur.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out / 'sequitur.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
