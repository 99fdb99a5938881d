"""`cocotune gen` on ResNet-152 (one module per residual block) with a 500-configuration subspace.

Prints wall time, the number of tuning blocks and the time of each stage (frontend, Sequitur
+ block selection, code generation), and writes benchmarks/results/gen.json.
Usage: python benchmarks/gen.py [--configs 500] [--out DIR]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

from cocotune.runtime.results import atomic_write_json

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=500)
    parser.add_argument("--net", default="resnet__KaimingHe__ResNet-152-deploy.prototxt")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    source = CORPUS / args.net
    if not source.exists():
        print(f"needs the shared corpus ({source} not found)")
        return 1
    from cocotune.frontend.load import load_net
    from cocotune.gen.write_package import generate_package
    from cocotune.tuning.modules import wrap_in_modules
    from cocotune.tuning.subspace import format_subspace, sample_subspace

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        net_path = tmp / "net.prototxt"
        net_path.write_text(wrap_in_modules(load_net(source)))
        net = load_net(net_path)
        t1 = time.perf_counter()
        configs = sample_subspace(net, args.configs, [0.3, 0.5, 0.7], seed=0)
        sub_path = tmp / "subspace.txt"
        sub_path.write_text(format_subspace(net.module_names, configs))
        t2 = time.perf_counter()
        result = generate_package(str(net_path), str(sub_path), tmp / "pkg")
        t3 = time.perf_counter()
    timings = {k: round(v, 3) for k, v in result["timings"].items()}
    report = {
        "benchmark": "gen",
        "net": args.net,
        "modules": result["modules"],
        "configurations": result["configurations"],
        "blocks": result["blocks"],
        "add_modules_s": round(t1 - t0, 3),
        "sample_subspace_s": round(t2 - t1, 3),
        "gen_wall_s": round(t3 - t2, 3),
        "gen_stages_s": timings,
        "python": platform.python_version(),
        "method": "one run, wall clock (time.perf_counter); gen = cocotune.gen.write_package.generate_package",
    }
    print(f"{args.net}: {result['modules']} modules, {result['configurations']} configurations")
    print(
        f"cocotune gen wall time: {report['gen_wall_s']:.2f} s "
        f"(frontend {timings['frontend_s']:.2f} s, Sequitur + blocks {timings['blocks_s']:.3f} s, "
        f"code generation {timings['codegen_s']:.2f} s)"
    )
    print(f"tuning blocks: {result['blocks']}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "gen.json"
    atomic_write_json(path, report)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
