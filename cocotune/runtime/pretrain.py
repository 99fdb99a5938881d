"""``[mpirun -n N] python DIR/pretrain.py``: teacher-student pre-training of the tuning blocks.

Blocks are trained several at a time in one "pretrain" model (one shared teacher pass feeds
every student), groups are spread over the ranks, and each block is saved as soon as its
group finishes (``blocks/<id>.weights.h5``, temp file + rename). A block already saved is
skipped, so a killed run resumes where it stopped. Each student starts from the full model's
L1-pruned weights and learns to reproduce the teacher's activation at its output (MSE).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from cocotune.runtime.options import base_parser, load_data, run_main, settings_from


def _groups(blocks: list[dict], per_model: int) -> list[list[dict]]:
    return [blocks[i : i + per_model] for i in range(0, len(blocks), per_model)]


def _errors(model, x: np.ndarray) -> list[float]:
    outs = model(x, training=False)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    return [float(np.mean(np.asarray(o))) for o in outs]


def pretrain_group(pkg, group, full, data, settings, steps: int, seed: int, ctx=None) -> list[dict]:
    """Train one group of blocks together; save each; return one record per block."""
    import keras
    import tensorflow as tf

    from cocotune.runtime.assemble import (
        block_layers,
        default_weights,
        load_into,
        save_block,
        student_weights,
    )
    from cocotune.runtime.data import make_tf_dataset
    from cocotune.runtime.model import block_prefix
    from cocotune.runtime.solver import make_optimizer
    from cocotune.runtime.training import fit, recalibrate_batchnorm

    keras.utils.set_random_seed(seed)
    t0 = time.perf_counter()
    model = pkg.build("pretrain", {"blocks": group})
    load_into(model, pkg.plan, full, strict=False)
    for block in group:
        rates = dict(zip(block["modules"], block["rates"]))
        layers = set(block_layers(pkg.plan, block["modules"]))
        start = {k: v for k, v in default_weights(pkg.plan, full, rates, pkg.analysis).items()
                 if k in layers}  # fmt: skip
        load_into(model, pkg.plan, start, prefix=block_prefix(block["id"]))
    probe = data.x_test[:256]
    before = _errors(model, probe)
    batches = make_tf_dataset(data.x_train, data.y_train, settings.batch_size, shuffle=True,
                              seed=seed, repeat=True)  # fmt: skip

    def loss_fn(_, outputs):
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return tf.add_n([tf.reduce_mean(o) for o in outputs])

    should_abort = ctx.should_abort if ctx is not None else None
    result = fit(model, batches, make_optimizer(settings), steps, loss_fn,
                 should_abort=should_abort)  # fmt: skip
    # Students trained on batch statistics; give their BatchNorms statistics that match (the
    # frozen teacher's BatchNorms run in inference mode and are not touched).
    recalibrate_batchnorm(model, data.x_train[:1024])
    after = _errors(model, probe)
    seconds = time.perf_counter() - t0
    records = []
    for i, block in enumerate(group):
        save_block(pkg.block_path(block["id"]), student_weights(pkg.plan, model, block),
                   {"id": block["id"], "modules": block["modules"], "rates": block["rates"],
                    "steps": result.steps})  # fmt: skip
        records.append({
            "id": block["id"], "modules": block["modules"], "rates": block["rates"],
            "error_before": before[i], "error_after": after[i], "steps": result.steps,
            "seconds": round(seconds, 2), "group_size": len(group),
            "rank": ctx.rank if ctx is not None else 0,
        })  # fmt: skip
    return records


def _pretrain(package_dir: Path, argv: list[str]) -> int:
    from cocotune.runtime.mpi import configure_threads, get_comm, run_tasks
    from cocotune.runtime.package import Package
    from cocotune.runtime.results import ResultsLog

    parser = base_parser("pretrain.py", "Pre-train this package's tuning blocks.")
    parser.add_argument("--steps", type=int, help="steps per group of blocks (default: solver)")
    parser.add_argument("--blocks-per-model", type=int, default=4,
                        help="blocks trained together on one shared teacher pass (default 4)")  # fmt: skip
    parser.add_argument("--only", nargs="*", help="pre-train only these block ids")
    args = parser.parse_args(argv)
    comm = get_comm()
    configure_threads(comm)
    pkg = Package(package_dir)
    root = comm.is_root
    blocks = [b for b in pkg.blocks if not args.only or b["id"] in args.only]
    todo = [b for b in blocks if not pkg.block_path(b["id"]).exists()]
    if root and len(todo) < len(blocks):
        print(f"{len(blocks) - len(todo)} of {len(blocks)} blocks already pre-trained: skipped")
    if not todo:
        if root:
            print("all tuning blocks are pre-trained; nothing to do")
        return 0
    settings = settings_from(args, pkg, "demo", args.steps)
    data = load_data(args, pkg)
    full = pkg.full_caffe_weights()
    groups = _groups(todo, max(1, args.blocks_per_model))
    log = ResultsLog(pkg.runs_dir / "pretrain.jsonl", comm=comm)
    if root:
        print(f"pre-training {len(todo)} blocks in {len(groups)} groups of up to "
              f"{args.blocks_per_model} on {comm.size} process(es), "
              f"{settings.total_batches} steps each")  # fmt: skip

    def work(group, ctx):
        return pretrain_group(pkg, group, full, data, settings, settings.total_batches,
                              args.seed + ctx.index, ctx)  # fmt: skip

    def on_result(group, records):
        for record in records or []:
            log.append(record)

    t0 = time.perf_counter()
    run = run_tasks(groups, work, comm, on_result=on_result,
                    progress=None if args.quiet else "pre-train block groups")  # fmt: skip
    if root:
        records = [r for rs in run.results if rs for r in rs]
        print(f"pre-trained {len(records)} blocks in {time.perf_counter() - t0:.1f} s "
              f"on {comm.size} process(es); reconstruction error (mean squared):")  # fmt: skip
        for r in records:
            print(f"  {r['id']:>5} {'+'.join(r['modules']):30s} {r['error_before']:.4g} -> "
                  f"{r['error_after']:.4g}")  # fmt: skip
        print(f"blocks in {pkg.blocks_dir}; log in {log.path}")
    return 0


def main(package_dir: Path, argv: list[str]) -> int:
    return run_main(_pretrain, package_dir, argv)
