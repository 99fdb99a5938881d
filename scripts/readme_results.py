"""Write the README's "Does it work?" section from benchmarks/results/composability.json.

`make composability` runs the benchmark (under mpirun -n 2) and then this script, so the
figures and the plot in the README always come from one full run.
Usage: python scripts/readme_results.py [--check]
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
RESULTS = REPO / "benchmarks" / "results" / "composability.json"
BEGIN, END = "<!-- does-it-work:begin -->", "<!-- does-it-work:end -->"


def fmt_size(value) -> str:
    return f"{value:,}" if isinstance(value, int) else "not found"


def section(r: dict) -> str:
    p = r["parameters"]
    acc = r["median_accuracies"]
    lines = [
        f"`make composability` (= `mpirun -n 2 python benchmarks/composability.py` + this "
        f"section) on `examples/resnet_digits` with `--data {r['data']}`: a sampled subspace of "
        f"{p['configs']} configurations, a full model at accuracy {r['full_accuracy']:.4f} "
        f"({r['full_params']:,} parameters); each configuration fine-tuned "
        f"{p['finetune_steps']} steps and tested once per method (same seed, steps and order), "
        f"BatchNorm statistics re-estimated on {p['bn_recalibrate']} images for both; "
        f"exploration replayed smallest first from the measured times. Whole run: "
        f"{r['wall_seconds']:.0f} s on {r['ranks']} processes.",
        "",
        "| α | threshold | configs (default) | configs (block-trained) | time default (s) | "
        "time block-trained (s) | speedup | pre-training share | size found (default) | "
        "size found (block-trained) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in r["table3"]:
        lines.append(
            f"| {row['alpha']} | {row['threshold']} | {row['configs_base']} | "
            f"{row['configs_comp']} | {row['time_base_s']} | {row['time_comp_s']} | "
            f"**{row['speedup']}×** | {row['overhead']:.0%} | {fmt_size(row['size_base'])} | "
            f"{fmt_size(row['size_comp'])} |"
        )
    lines += ["", f"Speedup by subspace size (α = {r['table4'][0]['alpha']}): " + ", ".join(
        f"{row['configs']} configurations {row['speedup']}×" for row in r["table4"]) + ".",
        "Extra speedup of Sequitur's blocks over one block per module: " + ", ".join(
        f"{row['collection']} {row['extra_speedup']}× ({row['multi_module_blocks']} multi-module "
        "blocks)" for row in r["table5"]) + ".",
        "",
        "Median accuracy over all configurations: default networks "
        f"{acc['default']['start_as_assembled']:.3f} right after assembly, "
        f"{acc['default']['start_recalibrated']:.3f} with re-estimated statistics, "
        f"{acc['default']['final_recalibrated']:.3f} after fine-tuning; block-trained "
        f"{acc['block-trained']['start_as_assembled']:.3f}, "
        f"{acc['block-trained']['start_recalibrated']:.3f}, "
        f"{acc['block-trained']['final_recalibrated']:.3f}.",
        "",
        f"The paper ({r['paper']['source']}) reports speedups of up to "
        f"{r['paper']['max_speedup_resnet50']}× (ResNet-50) and "
        f"{r['paper']['max_speedup_inception_v3']}× (Inception-V3) on ImageNet-scale nets with "
        "10k-30k training steps per configuration; at this scale fine-tuning a configuration takes "
        "seconds, so fixed costs (building and tracing each model) weigh far more here.",
        "",
        "![accuracy vs size](benchmarks/results/composability_accuracy_vs_size.png)",
        "![accuracy vs step](benchmarks/results/composability_curves.png)",
    ]  # fmt: skip
    return "\n".join(lines)


def render(text: str, results: dict) -> str:
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    return pattern.sub(lambda _: f"{BEGIN}\n{section(results)}\n{END}", text)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    results = json.loads(RESULTS.read_text())
    if results.get("quick"):
        print("composability.json is from a --quick run; run the full benchmark first")
        return 1
    text = README.read_text()
    new = render(text, results)
    if "--check" in argv:
        return 0 if new == text else 1
    README.write_text(new)
    print(f"updated {README}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
