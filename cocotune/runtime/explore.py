"""``[mpirun -n N] python DIR/explore.py``: find the best pruned network, in objective order.

For each configuration (smallest first for ``--alpha``/``--acc-threshold``): build the pruned
network, assemble its weights (block-trained: the full model's L1-pruned weights overlaid with
its composite vector's pre-trained blocks; ``--baseline``: the L1-pruned weights only),
optionally re-estimate BatchNorm statistics, fine-tune, test, record. Configurations are handed
to ranks dynamically; the first configuration *in exploration order* that meets the objective
wins, even if a later one finishes first. ``runs/results.jsonl`` gets one line per evaluated
configuration (appended and flushed), so a rerun skips what is done.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from cocotune.errors import CocotuneError
from cocotune.runtime.options import base_parser, load_data, run_main, settings_from


def full_accuracy(pkg, data, comm) -> float:
    """The full model's test accuracy, measured once per data set and stored in runs/full.json."""
    import json

    from cocotune.runtime.results import atomic_write_json
    from cocotune.runtime.training import accuracy

    path = pkg.runs_dir / "full.json"
    value = None
    if comm.is_root:
        stored = json.loads(path.read_text()) if path.exists() else {}
        if stored.get("data") == data.name and "accuracy" in stored:
            value = float(stored["accuracy"])
        else:
            model = pkg.build("full")
            model.load_weights(str(pkg.full_weights_path))
            value = accuracy(model, data.x_test, data.y_test)
            atomic_write_json(path, {**stored, "accuracy": value, "data": data.name})
    return float(comm.bcast(value))


def load_blocks(pkg, needed: set[str]) -> dict:
    from cocotune.runtime.assemble import load_block

    missing = sorted(b for b in needed if not pkg.block_path(b).exists())
    if missing:
        raise CocotuneError(
            f"{len(missing)} tuning blocks are not pre-trained ({', '.join(missing[:6])}"
            f"{', ...' if len(missing) > 6 else ''}): run pretrain.py first, or explore "
            "default networks with --baseline"
        )
    return {b: load_block(pkg.block_path(b))[0] for b in sorted(needed)}


def evaluate_configuration(pkg, config, full, blocks, data, settings, opts, ctx=None) -> dict:
    """Assemble, (recalibrate,) fine-tune and test one configuration; returns its record."""
    import keras

    from cocotune.runtime.assemble import block_trained_weights, default_weights, load_into
    from cocotune.runtime.data import make_tf_dataset
    from cocotune.runtime.mpi import TaskAborted
    from cocotune.runtime.solver import make_optimizer
    from cocotune.runtime.training import (
        accuracy,
        classification_loss,
        fit,
        recalibrate_batchnorm,
    )

    if opts["deadline"] is not None and time.time() > opts["deadline"]:
        raise TaskAborted()
    t0 = time.perf_counter()
    keras.utils.set_random_seed(opts["seed"])
    model = pkg.build("finetune", {"rates": config.rates})
    if opts["method"] == "block-trained":
        weights = block_trained_weights(pkg.plan, full, config.rates, config.composite, blocks,
                                        pkg.analysis)  # fmt: skip
    else:
        weights = default_weights(pkg.plan, full, config.rates, pkg.analysis)
    load_into(model, pkg.plan, weights)
    recal = data.x_train[: opts["bn_recalibrate"]]
    assembled_accuracy = accuracy(model, data.x_test, data.y_test)
    if opts["bn_recalibrate"]:
        recalibrate_batchnorm(model, recal)
    start_accuracy = accuracy(model, data.x_test, data.y_test) if len(recal) else assembled_accuracy
    batches = make_tf_dataset(data.x_train, data.y_train, settings.batch_size, shuffle=True,
                              seed=opts["seed"], repeat=True)  # fmt: skip
    every = opts["eval_every"]
    result = fit(
        model, batches, make_optimizer(settings), settings.total_batches,
        classification_loss(pkg.outputs_probabilities),
        eval_every=every, evaluate_fn=(lambda: accuracy(model, data.x_test, data.y_test)),
        should_abort=ctx.should_abort if ctx is not None else None,
    )  # fmt: skip
    if result.aborted:
        raise TaskAborted()
    final_as_trained = accuracy(model, data.x_test, data.y_test)
    if opts["bn_recalibrate"]:
        # fine-tuning moved the weights; statistics from before it are stale again
        recalibrate_batchnorm(model, recal)
        final = accuracy(model, data.x_test, data.y_test)
    else:
        final = final_as_trained
    meets = opts["threshold"] is not None and final >= opts["threshold"]
    if meets or opts["keep_all"]:
        model.save(str(_candidate(pkg, opts["method"], config.id)))
    return {
        "key": f"{opts['method']}:{config.id}",
        "id": config.id, "method": opts["method"], "rates": config.rates,
        "params": config.params, "flops": 2 * config.macs, "accuracy": final,
        "accuracy_start": start_accuracy, "accuracy_assembled": assembled_accuracy,
        "accuracy_before_recalibration": final_as_trained,
        "meets_objective": meets, "steps": result.steps,
        "seconds": round(time.perf_counter() - t0, 2),
        "rank": ctx.rank if ctx is not None else 0, "composite": list(config.composite),
        "curve": [[s, a] for s, a in result.curve],
    }  # fmt: skip


def _candidate(pkg, method: str, config_id: str) -> Path:
    path = pkg.runs_dir / "candidates" / f"{method}-{config_id}.keras"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _explore(package_dir: Path, argv: list[str]) -> int:
    from cocotune.runtime.mpi import configure_threads, get_comm, progress_bar, run_tasks
    from cocotune.runtime.objective import objective_from_args
    from cocotune.runtime.package import Package
    from cocotune.runtime.results import ResultsLog, atomic_write_json

    parser = base_parser("explore.py", "Explore pruned configurations in objective order.")
    goal = parser.add_argument_group("objective (one of)")
    goal.add_argument("--alpha", type=float,
                      help="smallest model with accuracy >= full x (1 - ALPHA) (default 0.01)")  # fmt: skip
    goal.add_argument("--acc-threshold", type=float, help="smallest model with accuracy >= T")
    goal.add_argument("--objective", help="an objective file (min ModelSize / max Accuracy ...)")
    parser.add_argument("--baseline", action="store_true",
                        help="default networks (full weights, L1-pruned) instead of blocks")  # fmt: skip
    parser.add_argument("--steps", type=int, help="fine-tuning steps per configuration")
    parser.add_argument("--eval-every", type=int, default=0,
                        help="record test accuracy every N steps (curves in results.jsonl)")  # fmt: skip
    parser.add_argument("--bn-recalibrate", type=int, default=0, metavar="N",
                        help="re-estimate BatchNorm statistics on N training images after "
                        "assembly and after fine-tuning (both methods)")  # fmt: skip
    parser.add_argument("--max-configs", type=int, help="explore at most this many")
    parser.add_argument("--time-budget", type=float, help="stop starting new ones after S seconds")
    parser.add_argument("--keep-all", action="store_true", help="save every fine-tuned model")
    args = parser.parse_args(argv)
    comm = get_comm()
    configure_threads(comm)
    root = comm.is_root
    pkg = Package(package_dir)
    objective = objective_from_args(args.alpha, args.acc_threshold, args.objective)
    method = "default" if args.baseline else "block-trained"
    settings = settings_from(args, pkg, "demo", args.steps)
    data = load_data(args, pkg)
    full_acc = full_accuracy(pkg, data, comm)
    threshold = objective.threshold(full_acc)
    order = objective.order(pkg.configurations)
    # one line per (method, configuration): block-trained and default runs share the file
    log = ResultsLog(pkg.runs_dir / "results.jsonl", comm=comm, id_key="key")
    done = {r["id"]: r for r in log.load() if r.get("method") == method}
    # Resume: an earlier run may already have met the objective in order.
    winner_record = None
    for config in order:
        record = done.get(config.id)
        if record is None:
            break
        if objective.stops_early and record.get("meets_objective"):
            winner_record = record
            break
    todo = [] if winner_record else [c for c in order if c.id not in done]
    if args.max_configs is not None:
        todo = todo[: max(0, args.max_configs - len(done))]
    if root:
        print(f"objective: {objective.describe(full_acc)}; full model: "
              f"{pkg.full_params:,} parameters, accuracy {full_acc:.4f} ({data.name})")  # fmt: skip
        print(f"{method} networks: {len(order)} configurations in order, {len(done)} already "
              f"evaluated, {len(todo)} to go on {comm.size} process(es), "
              f"{settings.total_batches} fine-tuning steps each")  # fmt: skip
    needed = {b for c in todo for b in c.composite} if method == "block-trained" else set()
    blocks = load_blocks(pkg, needed)
    full = pkg.full_caffe_weights()
    opts = {
        "method": method, "threshold": threshold, "seed": args.seed,
        "bn_recalibrate": args.bn_recalibrate, "eval_every": args.eval_every,
        "keep_all": args.keep_all or not objective.stops_early,
        "deadline": time.time() + args.time_budget if args.time_budget else None,
    }  # fmt: skip
    bar = progress_bar(total=len(todo), desc=f"explore ({method})", comm=comm,
                       disable=args.quiet)  # fmt: skip
    best_so_far: dict = {}

    def on_result(config, record):
        if record is None:
            return
        log.append(record)
        if record["meets_objective"] and (not best_so_far or
                                          record["params"] < best_so_far["params"]):  # fmt: skip
            best_so_far.update(record)
        bar.set_postfix(acc=f"{record['accuracy']:.3f}", params=f"{record['params']:,}",
                        best=best_so_far.get("id", "-"))  # fmt: skip

    def work(config, ctx):
        return evaluate_configuration(pkg, config, full, blocks, data, settings, opts, ctx)

    t0 = time.perf_counter()
    run = run_tasks(todo, work, comm, on_result=on_result,
                    stop_when=(lambda c, r: bool(r and r["meets_objective"]))
                    if objective.stops_early else None, progress=bar)  # fmt: skip
    bar.close()
    if not root:
        return 0
    records = {r["id"]: r for r in log.load() if r.get("method") == method}
    if winner_record is None and run.winner is not None:
        winner_record = records[todo[run.winner].id]
    if winner_record is None and not objective.stops_early:
        evaluated = [records[c.id] for c in order if c.id in records]
        if evaluated:
            winner_record = max(evaluated, key=lambda r: (r["accuracy"], -r["params"]))
    return _report(pkg, method, objective, full_acc, threshold, order, records, winner_record,
                   time.perf_counter() - t0, log.path)  # fmt: skip


def _report(pkg, method, objective, full_acc, threshold, order, records, winner, seconds,
            log_path) -> int:  # fmt: skip
    from cocotune.runtime.results import atomic_write_json

    explored = sum(1 for c in order if c.id in records)
    if winner is None:
        print(f"no configuration met the objective ({explored} of {len(order)} evaluated, "
              f"{seconds:.1f} s); results in {log_path}")  # fmt: skip
        atomic_write_json(pkg.runs_dir / "best.json", {"method": method, "found": False,
                                                       "explored": explored})  # fmt: skip
        return 0
    candidate = _candidate(pkg, method, winner["id"])
    best_model = pkg.runs_dir / "best.keras"
    if candidate.exists():
        tmp = best_model.with_name(".best.tmp.keras")
        shutil.copyfile(candidate, tmp)
        tmp.replace(best_model)
    summary = {
        "method": method, "found": True, "objective": objective.describe(full_acc),
        "threshold": threshold, "full_accuracy": full_acc, "full_params": pkg.full_params,
        "explored": explored, "configurations": len(order), **winner,
        "model": best_model.name if candidate.exists() else None,
    }  # fmt: skip
    atomic_write_json(pkg.runs_dir / "best.json", summary)
    rates = ", ".join(f"{m}={r:g}" for m, r in winner["rates"].items())
    print(f"best ({method}): {winner['id']} after {explored} configurations ({seconds:.1f} s)")
    print(f"  rates: {rates}")
    print(f"  parameters: {winner['params']:,} ({winner['params'] / pkg.full_params:.1%} of "
          f"the full model's {pkg.full_params:,})")  # fmt: skip
    print(f"  accuracy: {winner['accuracy']:.4f} (full {full_acc:.4f}"
          + (f", threshold {threshold:.4f})" if threshold is not None else ")"))  # fmt: skip
    print(f"  files: {pkg.runs_dir / 'best.json'}, {best_model}, {log_path}")
    return 0


def main(package_dir: Path, argv: list[str]) -> int:
    return run_main(_explore, package_dir, argv)
