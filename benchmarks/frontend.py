"""Frontend speed: parse + shape inference on a synthetic 10,000-layer net and on ResNet-152.

Prints layers per second for each stage and writes benchmarks/results/frontend.json.
Usage: python benchmarks/frontend.py [--layers 10000] [--repeat 3] [--out DIR]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

from cocotune.frontend.load import check_supported, parse_net_text, read_source
from cocotune.ir.net import build_net
from cocotune.ir.shapes import infer_shapes
from cocotune.runtime.results import atomic_write_json

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"


def synthetic_net(n_layers: int) -> str:
    """A residual-style chain: conv/bn/scale/relu quadruples with an Eltwise every 8 layers."""
    out = [
        'name: "synthetic"\n',
        'layer { name: "data" type: "Input" top: "data" '
        "input_param { shape { dim: 1 dim: 16 dim: 32 dim: 32 } } }\n",
    ]
    prev, skip, i, count = "data", "data", 0, 1
    while count < n_layers:
        i += 1
        c = f"conv{i}"
        out.append(
            f'layer {{ name: "{c}" type: "Convolution" bottom: "{prev}" top: "{c}" '
            "convolution_param { num_output: 16 kernel_size: 3 pad: 1 bias_term: false } }\n"
            f'layer {{ name: "bn{i}" type: "BatchNorm" bottom: "{c}" top: "{c}" }}\n'
            f'layer {{ name: "scale{i}" type: "Scale" bottom: "{c}" top: "{c}" '
            "scale_param { bias_term: true } }\n"
            f'layer {{ name: "relu{i}" type: "ReLU" bottom: "{c}" top: "{c}" }}\n'
        )
        prev = c
        count += 4
        if i % 2 == 0:
            count += 1
            out.append(
                f'layer {{ name: "sum{i}" type: "Eltwise" bottom: "{skip}" bottom: "{prev}" '
                f'top: "sum{i}" }}\n'
            )
            prev = skip = f"sum{i}"
    return "".join(out)


def measure(path: Path, repeat: int) -> dict:
    best = {"read_parse_upgrade": float("inf"), "ir": float("inf"), "shapes": float("inf")}
    n_layers = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        source = read_source(path)
        net_param, records, modules, excluded = parse_net_text(source)
        t1 = time.perf_counter()
        check_supported(source, records)
        net = build_net(net_param.name, source, records, modules, "TEST", excluded)
        t2 = time.perf_counter()
        infer_shapes(net)
        t3 = time.perf_counter()
        for key, value in zip(best, (t1 - t0, t2 - t1, t3 - t2)):
            best[key] = min(best[key], value)
        n_layers = len(net.layers)
    total = sum(best.values())
    return {
        "file": path.name,
        "layers": n_layers,
        "seconds": {k: round(v, 4) for k, v in best.items()},
        "total_seconds": round(total, 4),
        "layers_per_second": round(n_layers / total),
        "parse_layers_per_second": round(n_layers / best["read_parse_upgrade"]),
        "shape_layers_per_second": round(n_layers / best["shapes"]),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        synth = Path(tmp) / "synthetic.prototxt"
        synth.write_text(synthetic_net(args.layers))
        results.append(measure(synth, args.repeat))
    resnet = CORPUS / "resnet__KaimingHe__ResNet-152-deploy.prototxt"
    if resnet.exists():
        results.append(measure(resnet, args.repeat))
    else:
        print(f"(skipping ResNet-152: {resnet} not found)")
    print(
        f"{'net':45s} {'layers':>7s} {'total s':>8s} {'layers/s':>9s} {'parse l/s':>10s} {'shape l/s':>10s}"
    )
    for r in results:
        print(
            f"{r['file']:45s} {r['layers']:7d} {r['total_seconds']:8.3f} "
            f"{r['layers_per_second']:9d} {r['parse_layers_per_second']:10d} "
            f"{r['shape_layers_per_second']:10d}"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "frontend",
        "method": f"best of {args.repeat} runs, one process, wall clock (time.perf_counter)",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "results": results,
    }
    out = args.out / "frontend.json"
    atomic_write_json(out, report)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
