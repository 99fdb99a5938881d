"""``[mpirun -n N] python DIR/pretrain.py``: teacher-student pre-training of the tuning blocks.

Blocks are trained several at a time in one "pretrain" model (one shared teacher pass feeds
every student), groups are spread over the ranks, and each block is saved as soon as its
group finishes (``blocks/<id>.weights.h5``, temp file + rename). A block already saved is
skipped, so a killed run resumes where it stopped. Each student starts from the full model's
L1-pruned weights and learns to reproduce the teacher's activation at its output (MSE).

Budget (why pre-training cannot cost more than it saves): the unit is one configuration's
fine-tuning limit ``L`` -- the steps (batches: Caffe ``max_iter`` x ``iter_size``, same batch
size) that ``explore.py`` allows one configuration, taken from the same settings chain (preset
< package solver < ``--solver``; ``--finetune-limit`` if explore runs with ``--steps``). Each
group of blocks gets at most ``ceil(L / 3)`` steps by default: the paper pre-trains ResNet-50's
blocks for 10k iterations and fine-tunes each configuration for up to 30k (Inception-V3: 20k vs
30k), so a group never costs more than one configuration's fine-tuning. A group also stops
early when its reconstruction loss plateaus: every ``--eval-every`` steps the training loss
(sum over the group's blocks of the mean squared error) averaged over those steps is taken, and
the group stops once ``-log(loss)`` has not improved by ``--min-delta`` (default 0.01, i.e.
about 1 % relative) for ``--patience`` (default 3) consecutive measurements -- the same rule
(:class:`~cocotune.runtime.training_loop.StopRule`) as fine-tuning's plateau, on a loss instead of an
accuracy. The summary states the total in seconds and in "configurations' worth": total steps
of all groups / ``L``. A pre-training step (one teacher pass plus several students) costs more
than a fine-tuning step; the seconds say by how much.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from cocotune.errors import CocotuneError
from cocotune.runtime.options import base_parser, load_data, run_main, settings_from

#: Pre-training steps per group as a share of one configuration's fine-tuning limit (the
#: paper's 10k pre-training vs 30k fine-tuning iterations for ResNet-50).
PRETRAIN_SHARE = 1 / 3
DEFAULT_PATIENCE = 3
DEFAULT_MIN_DELTA = 0.01
PROBE_IMAGES = 256


def _groups(blocks: list[dict], per_model: int) -> list[list[dict]]:
    return [blocks[i : i + per_model] for i in range(0, len(blocks), per_model)]


def _errors(model, x: np.ndarray) -> list[float]:
    """Mean reconstruction error of every block over ``x`` (compiled, bounded batches: an
    eager call would keep every activation of every image, ~150 MB each at 224x224)."""
    from cocotune.runtime.model import predict_outputs

    return [float(np.mean(o)) for o in predict_outputs(model, x)]


def default_pretrain_steps(finetune_limit: int) -> int:
    """Steps per group: ``ceil(PRETRAIN_SHARE x finetune_limit)``, at least 1."""
    return max(1, math.ceil(PRETRAIN_SHARE * int(finetune_limit)))


def plateau_rule(
    steps: int,
    eval_every: int | None = None,
    patience: int | None = None,
    min_delta: float | None = None,
):
    """The :class:`StopRule` of a group: limit ``steps``, plateau on ``-log(mean loss)``."""
    from cocotune.runtime.training_loop import StopRule

    every = eval_every if eval_every is not None else max(1, int(steps) // 10)
    return StopRule(
        max_steps=int(steps),
        eval_every=max(1, min(int(every), max(int(steps), 1))),
        patience=int(patience if patience is not None else DEFAULT_PATIENCE),
        min_delta=float(min_delta if min_delta is not None else DEFAULT_MIN_DELTA),
    )


def pretrain_group(
    pkg, group, full, data, settings, steps: int, seed: int, ctx=None, rule=None
) -> list[dict]:
    """Train one group of blocks together; save each; return one record per block.

    ``rule`` (a :class:`~cocotune.runtime.training_loop.StopRule`, see :func:`plateau_rule`) stops
    the group early when its reconstruction loss plateaus; without it the group trains
    exactly ``steps`` steps (what a benchmark comparing fixed budgets wants). Records state
    ``steps``, ``stop`` (plateau/limit/aborted), ``seconds`` (the whole group: build, train,
    measurements, BatchNorm re-estimation) and the loss ``curve`` ``[[step, seconds, mean loss]]``.
    """
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
    from cocotune.runtime.training_loop import StopRule, fit, recalibrate_batchnorm

    keras.utils.set_random_seed(seed)
    t0 = time.perf_counter()
    model = pkg.build("pretrain", {"blocks": group})
    load_into(model, pkg.plan, full, strict=False)
    for block in group:
        rates = dict(zip(block["modules"], block["rates"]))
        layers = set(block_layers(pkg.plan, block["modules"]))
        start = {
            k: v
            for k, v in default_weights(pkg.plan, full, rates, pkg.analysis).items()
            if k in layers
        }
        load_into(model, pkg.plan, start, prefix=block_prefix(block["id"]))
    # Reconstruction is measured on held-out validation images (training images if the data
    # have no validation part); test images are never looked at.
    probe_source = data.x_val if len(data.x_val) else data.x_train
    probe = np.asarray(probe_source[:PROBE_IMAGES], np.float32)
    before = _errors(model, probe)
    batches = make_tf_dataset(
        data.x_train, data.y_train, settings.batch_size, shuffle=True, seed=seed, repeat=True
    )

    def loss_fn(_, outputs):
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return tf.add_n([tf.reduce_mean(o) for o in outputs])

    if rule is None:  # exactly ``steps`` steps: no plateau stop
        rule = StopRule(
            max_steps=int(steps),
            eval_every=max(int(steps), 1),
            patience=10**9,
            min_delta=DEFAULT_MIN_DELTA,
        )

    window: list[float] = []

    def on_step(_step: int, loss: float) -> None:
        window.append(loss)

    def score() -> float:
        """-log of the mean training loss since the last measurement (higher is better, and
        ``min_delta`` becomes a relative step). The loss is what the students minimise, with
        the batch statistics they train on; the inference-mode error would mostly track the
        BatchNorms' slow moving averages. Nothing measured yet (step 0): -inf."""
        if not window:
            return -math.inf
        value = -math.log(max(float(np.mean(window)), 1e-30))
        window.clear()
        return value

    should_abort = ctx.should_abort if ctx is not None else None
    result = fit(
        model,
        batches,
        make_optimizer(settings),
        loss_fn,
        rule,
        score,
        should_abort=should_abort,
        on_step=on_step,
    )
    # Students trained on batch statistics; give their BatchNorms statistics that match (the
    # frozen teacher's BatchNorms run in inference mode and are not touched).
    recalibrate_batchnorm(model, data.x_train[:1024])
    after = _errors(model, probe)
    seconds = time.perf_counter() - t0
    # [step, seconds, mean training loss over the steps since the previous point]
    curve = [
        [step, sec, math.exp(-v) if math.isfinite(v) else None] for step, sec, v in result.curve
    ]
    records = []
    for i, block in enumerate(group):
        save_block(
            pkg.block_path(block["id"]),
            student_weights(pkg.plan, model, block),
            {
                "id": block["id"],
                "modules": block["modules"],
                "rates": block["rates"],
                "steps": result.steps,
                "stop": result.stop,
            },
        )
        records.append(
            {
                "id": block["id"],
                "modules": block["modules"],
                "rates": block["rates"],
                "error_before": before[i],
                "error_after": after[i],
                "steps": result.steps,
                "stop": result.stop,
                "limit": rule.max_steps,
                "seconds": round(seconds, 2),
                "train_seconds": round(result.train_seconds, 2),
                "eval_seconds": round(result.eval_seconds, 2),
                "curve": curve,
                "group": [b["id"] for b in group],
                "group_size": len(group),
                "rank": ctx.rank if ctx is not None else 0,
            }
        )
    return records


def _pretrain(package_dir: Path, argv: list[str]) -> int:
    from cocotune.runtime.generated_package import Package
    from cocotune.runtime.mpi import get_comm
    from cocotune.runtime.results import ResultsLog
    from cocotune.runtime.scheduler import run_tasks
    from cocotune.runtime.threads import configure_threads

    parser = base_parser("pretrain.py", "Pre-train this package's tuning blocks.")
    parser.add_argument(
        "--steps",
        type=int,
        help="step limit per group of blocks (default: ceil(L/3), L = one "
        "configuration's fine-tuning limit; see --finetune-limit)",
    )
    parser.add_argument(
        "--finetune-limit",
        type=int,
        help="L, the steps explore.py allows one configuration (default: the "
        "settings' max_iter x iter_size, as explore.py without --steps)",
    )
    parser.add_argument(
        "--eval-every",
        type=int,
        help="steps per window of the mean reconstruction loss (default: limit/10)",
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=DEFAULT_PATIENCE,
        help="stop a group after this many measurements without improvement "
        f"(default {DEFAULT_PATIENCE})",
    )
    parser.add_argument(
        "--min-delta",
        type=float,
        default=DEFAULT_MIN_DELTA,
        help="improvement of -log(mean reconstruction loss) that counts (default "
        f"{DEFAULT_MIN_DELTA}: about 1%% relative)",
    )
    parser.add_argument(
        "--blocks-per-model",
        type=int,
        default=4,
        help="blocks trained together on one shared teacher pass (default 4)",
    )
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
    settings = settings_from(args, pkg, "demo")
    if args.finetune_limit is not None and args.finetune_limit < 1:
        raise CocotuneError(f"--finetune-limit must be >= 1, not {args.finetune_limit}")
    unit = args.finetune_limit or settings.total_batches
    limit = args.steps if args.steps is not None else default_pretrain_steps(unit)
    if limit < 1:
        raise CocotuneError(f"--steps must be >= 1, not {limit}")
    rule = plateau_rule(limit, args.eval_every, args.patience, args.min_delta)
    data = load_data(args, pkg)
    full = pkg.full_caffe_weights()
    groups = _groups(todo, max(1, args.blocks_per_model))
    log = ResultsLog(pkg.runs_dir / "pretrain.jsonl", comm=comm)
    if root:
        print(
            f"pre-training {len(todo)} blocks in {len(groups)} groups of up to "
            f"{args.blocks_per_model} on {comm.size} process(es): at most {limit} steps per "
            f"group (L = {unit} fine-tuning steps per configuration"
            f"{'' if args.steps is not None else ', ceil(L/3)'}), stopping when the "
            f"mean reconstruction loss has not improved {rule.min_delta:g} in -log "
            f"for {rule.patience} measurements {rule.eval_every} steps apart"
        )

    def work(group, ctx):
        return pretrain_group(
            pkg, group, full, data, settings, limit, args.seed + ctx.index, ctx, rule=rule
        )

    def on_result(group, records):
        for record in records or []:
            log.append(record)

    t0 = time.perf_counter()
    run = run_tasks(
        groups,
        work,
        comm,
        on_result=on_result,
        progress=None if args.quiet else "pre-train block groups",
    )
    if root:
        records = [r for rs in run.results if rs for r in rs]
        print(
            f"pre-trained {len(records)} blocks in {time.perf_counter() - t0:.1f} s "
            f"on {comm.size} process(es); reconstruction error (mean squared):"
        )
        for r in records:
            print(
                f"  {r['id']:>5} {'+'.join(r['modules']):30s} {r['error_before']:.4g} -> "
                f"{r['error_after']:.4g}  ({r['steps']} steps, {r['stop']})"
            )
        print(pretrain_summary(records, unit))
        print(f"blocks in {pkg.blocks_dir}; log in {log.path}")
    return 0


def pretrain_summary(records: list[dict], finetune_limit: int) -> str:
    """Pre-training cost in seconds and in configurations' worth of fine-tuning steps.

    Groups are counted once (their blocks share the steps): total steps = sum over groups;
    configurations' worth = total steps / ``finetune_limit`` (one configuration's limit L).
    """
    groups: dict[tuple, dict] = {}
    for r in records:
        groups.setdefault(tuple(r.get("group") or [r["id"]]), r)
    steps = sum(int(g["steps"]) for g in groups.values())
    seconds = sum(float(g["seconds"]) for g in groups.values())
    stops: dict[str, int] = {}
    for g in groups.values():
        stops[g.get("stop", "limit")] = stops.get(g.get("stop", "limit"), 0) + 1
    worth = steps / max(int(finetune_limit), 1)
    shown = ", ".join(f"{n} {k}" for k, n in sorted(stops.items()))
    return (
        f"pre-training cost: {seconds:.1f} s of group time, {steps} steps in {len(groups)} "
        f"groups ({shown}) = {worth:.2f} configurations' worth of fine-tuning steps "
        f"(unit: one configuration's fine-tuning limit L = {int(finetune_limit)} steps)"
    )


def main(package_dir: Path, argv: list[str]) -> int:
    return run_main(_pretrain, package_dir, argv)
