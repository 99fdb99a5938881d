"""Write the generated package (docs/design.md §6) for a net, a subspace, weights and solver.

::

    DIR/model.py      build_model(mode_to_use="full", prune_info=None, outputs=None)
    DIR/tuning.json   modules, configurations (rates, params, FLOPs, composite), blocks, grammar
    DIR/net.prototxt  the network (the runtime re-reads it: no TensorFlow needed to plan)
    DIR/train.py, pretrain.py, explore.py   thin entry points into cocotune.runtime
    DIR/README.md     how to run it, for this network

Everything is checked (net, conversion, subspace, weights) before the first file is written.
The generated scripts read the package back at run time through
:mod:`cocotune.runtime.generated_package`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from cocotune import __version__
from cocotune.errors import CocotuneError
from cocotune.ir.names import comment_text, docstring_text

SCRIPTS = {
    "train": ("train", "Train the full model on the chosen data (not needed with --weights)."),
    "pretrain": (
        "pretrain",
        "Pre-train the tuning blocks: pruned students learn to reproduce "
        "the full model's activations.",
    ),
    "explore": (
        "explore",
        "Fine-tune and test pruned configurations in objective order "
        "until the objective is met.",
    ),
}


def tuning_document(net, analysis, subspace, chosen, block_mode, net_file, weights, solver):
    """The tuning.json content (JSON-able)."""
    configs = []
    for i, (rates, composite) in enumerate(zip(subspace.configs, chosen.composite)):
        params, macs = analysis.cost(rates)
        configs.append(
            {
                "id": f"c{i}",
                "line": subspace.lines[i] if i < len(subspace.lines) else None,
                "rates": {m: float(r) for m, r in rates.items()},
                "params": params,
                "macs": macs,
                "flops": 2 * macs,
                "composite": list(composite),
            }
        )
    blocks = []
    for block in chosen.blocks:
        entry = block.to_json()
        entry["layers"] = [
            layer.name for module in block.modules for layer in net.module(module).layers
        ]
        blocks.append(entry)
    full_params, full_macs = analysis.cost({})
    return {
        "cocotune_version": __version__,
        "net": net.name,
        "prototxt": net_file,
        "subspace": str(subspace.path),
        "block_mode": block_mode,
        "modules": [
            {"name": m, "prunable": [l.name for l in analysis.prunable.get(m, [])]}
            for m in net.module_names
        ],
        "full": {"params": full_params, "macs": full_macs, "flops": 2 * full_macs},
        "configurations": configs,
        "blocks": blocks,
        "grammar": chosen.grammar_json(),
        "weights": weights,
        "solver": solver,
    }


def generate_package(
    prototxt: str,
    subspace_path: str,
    out_dir: str | Path,
    weights: str | None = None,
    solver: str | None = None,
    block_mode: str = "sequitur",
    input_shapes: dict | None = None,
    command: str = "gen",
) -> dict:
    """Write the package; returns timings and counts (for the CLI summary and benchmarks)."""
    from cocotune.caffemodel import read_caffemodel
    from cocotune.convert.generate import generate_model_source
    from cocotune.convert.plan import plan_net
    from cocotune.convert.render import render, render_python
    from cocotune.frontend.load import load_net, load_solver
    from cocotune.tuning.blocks import select_blocks
    from cocotune.tuning.pruning import analyze_pruning
    from cocotune.tuning.subspace import no_modules_error, parse_subspace

    timings: dict[str, float] = {}
    start = time.perf_counter()
    net = load_net(prototxt, input_shapes=input_shapes)
    if not net.modules:
        raise no_modules_error(prototxt)
    net_plan = plan_net(net)
    analysis = analyze_pruning(net)
    timings["frontend_s"] = time.perf_counter() - start
    subspace = parse_subspace(subspace_path, net.module_names)
    for warning in subspace.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for module in net.module_names:
        if not analysis.prunable.get(module):
            reasons = [
                f"{layer.name}: {analysis.exits[layer.name]}"
                for layer in net.module(module).layers
                if layer.name in analysis.exits
            ]
            print(
                f"warning: module '{module}' has no prunable layer; its rates are ignored"
                + (f" ({'; '.join(reasons[:2])})" if reasons else ""),
                file=sys.stderr,
            )
    for rates in subspace.configs:
        analysis.check_rates(rates)
    caffe_weights = read_caffemodel(weights, net) if weights else None
    if solver:
        load_solver(solver)  # validate now, before anything is written
    t = time.perf_counter()
    chosen = select_blocks(net.module_names, subspace.configs, mode=block_mode)
    timings["blocks_s"] = time.perf_counter() - t
    t = time.perf_counter()
    source = generate_model_source(net_plan, "net.prototxt", command)
    timings["codegen_s"] = time.perf_counter() - t

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise CocotuneError(f"output '{out}' exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    from cocotune.files import write_text_atomic

    write_text_atomic(out / "net.prototxt", net.source.text)
    write_text_atomic(out / "model.py", source)
    solver_name = None
    if solver:
        solver_name = "solver.prototxt"
        write_text_atomic(out / solver_name, Path(solver).read_text(encoding="utf-8"))
    weights_name = "full.weights.h5" if caffe_weights is not None else None
    doc = tuning_document(
        net, analysis, subspace, chosen, block_mode, "net.prototxt", weights_name, solver_name
    )
    write_text_atomic(out / "tuning.json", json.dumps(doc, indent=1) + "\n")
    header = {
        "version": __version__,
        "source": comment_text(f"{prototxt} + {subspace_path}"),
        "command": comment_text(command),
    }
    for name, (entry, text) in SCRIPTS.items():
        script = render_python(
            "keras/package/script.py.j2",
            {"doc": docstring_text(text), "name": name, "entry_module": entry},
            header,
        )
        write_text_atomic(out / f"{name}.py", script)
    readme = render(
        "keras/package/README.md.j2",
        {
            "version": __version__,
            "net_name": net.name or Path(prototxt).stem,
            "source": prototxt,
            "subspace": subspace_path,
            "n_configs": len(subspace.configs),
            "n_modules": len(net.modules),
            "n_blocks": len(chosen.blocks),
            "block_mode": block_mode,
            "full_params": f"{doc['full']['params']:,}",
            "full_macs": f"{doc['full']['macs']:,}",
            "solver": solver,
            "weights": weights,
            "blocks": doc["blocks"],
        },
    )
    write_text_atomic(out / "README.md", readme)
    if caffe_weights is not None:
        from cocotune.convert.weights import caffe_to_keras, set_weights
        from cocotune.files import import_generated, save_weights_atomic

        model = import_generated(out / "model.py").build_model("full")
        set_weights(model, caffe_to_keras(net_plan, caffe_weights))
        save_weights_atomic(model, out / "full.weights.h5")
    timings["total_s"] = time.perf_counter() - start
    return {
        "configurations": len(subspace.configs),
        "blocks": len(chosen.blocks),
        "modules": len(net.modules),
        "timings": timings,
        "document": doc,
    }


def cmd_gen(args: argparse.Namespace) -> int:
    from cocotune.frontend.load import parse_input_shapes

    command = "gen " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["gen"] else "gen"
    result = generate_package(
        args.prototxt,
        args.subspace,
        args.output,
        args.weights,
        args.solver,
        args.blocks,
        parse_input_shapes(args.input_shape),
        command=command,
    )
    doc = result["document"]
    out = Path(args.output)
    sizes = [c["params"] for c in doc["configurations"]]
    print(
        f"wrote {out}/: model.py, tuning.json, train.py, pretrain.py, explore.py, README.md"
        + (", full.weights.h5" if args.weights else "")
    )
    print(
        f"{result['modules']} modules, {result['configurations']} configurations "
        f"({min(sizes):,}..{max(sizes):,} parameters; full {doc['full']['params']:,}), "
        f"{result['blocks']} tuning blocks ({args.blocks})"
    )
    print(
        f"next: python {out}/train.py; mpirun -n 2 python {out}/pretrain.py; "
        f"mpirun -n 2 python {out}/explore.py --alpha 0.01"
    )
    return 0


def register(subparsers) -> None:
    from cocotune.cli_support import add_net_options
    from cocotune.tuning.blocks import MODES

    p = subparsers.add_parser(
        "gen",
        help="generate the pruning package: multiplexing model, tuning blocks, scripts",
        description="From a Prototxt with module blocks and a promising subspace, choose tuning "
        "blocks (Sequitur) and write a Python package: model.py (full/finetune/pretrain), "
        "tuning.json, train.py, pretrain.py, explore.py, README.md (docs/design.md §6).",
    )
    add_net_options(p)
    p.add_argument("subspace", help="the promising subspace (text or .json, docs/design.md §4)")
    p.add_argument("-o", "--output", required=True, help="output directory")
    p.add_argument("--weights", help="a .caffemodel with the full model's trained weights")
    p.add_argument("--solver", help="a Caffe solver prototxt with the training settings")
    p.add_argument(
        "--blocks",
        choices=MODES,
        default="sequitur",
        help="sequitur: blocks from the grammar (default); module: one block per "
        "pruned module (the paper's basic setting)",
    )
    p.set_defaults(func=cmd_gen)
