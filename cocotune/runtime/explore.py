"""``[mpirun -n N] python DIR/explore.py``: find the best pruned network, in objective order.

For each configuration (smallest first for ``--alpha``/``--acc-threshold``): build the pruned
network, assemble its weights (block-trained: the full model's L1-pruned weights overlaid with
its composite vector's pre-trained blocks; ``--baseline``: the L1-pruned weights only), then
fine-tune it until the stop rule says stop. Configurations are handed to ranks dynamically; the
first configuration *in exploration order* that meets the objective wins, even if a later one
finishes first. Switching the method changes only the starting weights: the stop rule, solver,
seeds, data order and BatchNorm handling are the same.

Decisions use validation accuracy only. The full model's reference accuracy, the threshold
test, early stopping and the ``max Accuracy`` ranking all use the validation split; test
accuracy is recorded (assembled, start, final) and reported for the chosen network, never
used to decide.

Evaluation points and BatchNorm: every accuracy that is compared or plotted is measured the
same way. With ``--bn-recalibrate N``, BatchNorm statistics are re-estimated on the same N
*training* images (contiguous chunks spread evenly over the training set) at every evaluation
point -- step 0 (after assembly), every ``--eval-every`` steps, and the last step -- and only
then is validation accuracy measured; the full model's reference is measured the same way.
Re-estimation does not change the weights and training uses batch statistics, so it does not
change the training trajectory. ``val_accuracy_assembled``/``test_accuracy_assembled`` are the
only figures measured before any re-estimation (how good assembly alone is).

Stop rule (one for both methods; :class:`cocotune.runtime.training_loop.StopRule`): validation
accuracy is measured at step 0 and every ``--eval-every`` steps (default: the solver's
``test_interval``, else 20); training stops at the first evaluation with accuracy >= the
objective's threshold ("threshold"), when the best accuracy has not improved by at least
``--min-delta`` (default 0.005) for ``--patience`` (default 3) consecutive evaluations
("plateau"), or after ``--steps`` steps (default: the solver's ``max_iter``; "limit").

Results: ``runs/results.jsonl`` gets one line per evaluated (method, configuration,
fingerprint), appended and flushed, so a killed run resumes where it stopped. The fingerprint
hashes everything that changes a result besides the configuration: the stop rule (without the
threshold), the solver settings, the BN re-estimation, the data (``Dataset.fingerprint()``), the
seed, the method and the starting weights (full model, blocks). Lines from other settings are
ignored (the run says how many) and those configurations are evaluated afresh. The verdict is
never stored: it is recomputed from ``val_accuracy`` against the current objective, so resuming
with another ``--alpha`` is correct; a line that stopped at an earlier, lower threshold is not
conclusive for a higher one and is evaluated again (the new line supersedes it).

Files: ``runs/best-block-trained.json`` + ``.keras`` and ``runs/best-default.json`` +
``.keras`` (one pair per method, so ``--baseline`` never overwrites the block-trained winner);
``runs/candidates/<method>-<id>-<fingerprint>.keras`` for the models that met the threshold
(every model with ``--keep-all`` or a ``max Accuracy`` objective without accuracy constraint).
``--fresh`` moves results.jsonl, best-*.json/.keras and candidates/ to
``runs/old/<UTC time>/`` and starts clean; nothing is deleted.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from cocotune.errors import CocotuneError
from cocotune.runtime.options import base_parser, load_data, run_main, settings_from

if TYPE_CHECKING:  # annotation only, like the functions below import training where used
    from cocotune.runtime.training_loop import StopRule

METHODS = ("block-trained", "default")


@dataclass(frozen=True)
class EvalOptions:
    """How :func:`evaluate_configuration` fine-tunes and measures one configuration.

    ``rule.threshold`` None trains without the threshold stop (one curve serves every alpha);
    ``bn_recalibrate`` is the number of training images BatchNorm statistics are re-estimated
    on at every evaluation point (0: never); ``fingerprint`` goes into the record's key.
    """

    method: str
    rule: StopRule
    seed: int = 0
    bn_recalibrate: int = 0
    keep_all: bool = False
    deadline: float | None = None
    fingerprint: str = ""


def file_digest(paths) -> str:
    """SHA-256 (16 hex digits) over the contents of ``paths`` in order; a missing file counts
    as its name only."""
    digest = hashlib.sha256()
    for path in paths:
        path = Path(path)
        digest.update(path.name.encode() + b"\0")
        if path.exists():
            with open(path, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
        else:
            digest.update(b"<missing>")
    return digest.hexdigest()[:16]


def run_settings(pkg, method, order, rule, settings, data, seed, bn_recalibrate) -> dict:
    """Everything besides the configuration that changes a result (hashed into the key)."""
    solver = {k: v for k, v in settings.as_dict().items() if k != "source"}
    stop = {k: v for k, v in rule.as_dict().items() if k != "threshold"}
    out = {
        "method": method,
        "stop_rule": stop,
        "solver": solver,
        "bn_recalibrate": bn_recalibrate,
        "data": data.fingerprint(),
        "seed": seed,
        "full_weights": file_digest([pkg.full_weights_path]),
    }
    if method == "block-trained":
        needed = sorted({b for c in order for b in c.composite})
        out["blocks"] = file_digest([pkg.block_path(b) for b in needed])
    return out


def fingerprint_of(settings: dict) -> str:
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def full_accuracy(pkg, data, comm, bn_recalibrate: int = 0) -> dict:
    """The full model's validation and test accuracy, measured as every configuration is (same
    BN re-estimation); stored in runs/full.json under ``reference`` keyed by data fingerprint,
    BN handling and weights, and computed on rank 0 only once per key."""
    from cocotune.runtime.results import atomic_write_json
    from cocotune.runtime.training_loop import accuracy, recalibrate_batchnorm, recalibration_images

    path = pkg.runs_dir / "full.json"
    value = None
    if comm.is_root:
        key = f"{data.fingerprint()}/bn{bn_recalibrate}/{file_digest([pkg.full_weights_path])}"
        stored = json.loads(path.read_text()) if path.exists() else {}
        found = stored.get("reference")
        reference = found if isinstance(found, dict) else {}
        value = reference.get(key)
        if not value:
            model = pkg.build("full")
            model.load_weights(str(pkg.full_weights_path))
            if bn_recalibrate:
                recalibrate_batchnorm(model, recalibration_images(data.x_train, bn_recalibrate))
            value = {
                "val_accuracy": accuracy(model, data.x_val, data.y_val),
                "test_accuracy": accuracy(model, data.x_test, data.y_test),
            }
            stored = json.loads(path.read_text()) if path.exists() else {}  # merge, not replace
            stored["reference"] = {**reference, key: value}
            atomic_write_json(path, stored)
    return comm.bcast(value)


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


def evaluate_configuration(
    pkg, config, full, blocks, data, settings, opts: EvalOptions, ctx=None
) -> dict:
    """Assemble, fine-tune under ``opts.rule`` and measure one configuration; its record.

    See the module docstring for what is measured when. Raises ``TaskAborted`` when the run no
    longer needs this configuration (or the time budget is spent).
    """
    import keras

    from cocotune.runtime.assemble import block_trained_weights, default_weights, load_into
    from cocotune.runtime.data import make_tf_dataset
    from cocotune.runtime.results import atomic_save
    from cocotune.runtime.scheduler import TaskAborted
    from cocotune.runtime.solver import make_optimizer
    from cocotune.runtime.training_loop import (
        accuracy,
        classification_loss,
        fit,
        recalibrate_batchnorm,
        recalibration_images,
    )

    if opts.method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {opts.method!r}")
    if opts.deadline is not None and time.time() > opts.deadline:
        raise TaskAborted()
    if len(data.x_val) == 0:
        raise CocotuneError("no validation images: every decision needs them (--val-fraction)")
    t0 = time.perf_counter()
    times = {"build": 0.0, "assemble": 0.0, "bn": 0.0, "train": 0.0, "eval": 0.0}

    def timed(part, fn, *args):
        t = time.perf_counter()
        out = fn(*args)
        times[part] += time.perf_counter() - t
        return out

    keras.utils.set_random_seed(opts.seed)
    model = timed("build", pkg.build, "finetune", {"rates": config.rates})

    def assemble():
        if opts.method == "block-trained":
            weights = block_trained_weights(
                pkg.plan, full, config.rates, config.composite, blocks, pkg.analysis
            )
        else:
            weights = default_weights(pkg.plan, full, config.rates, pkg.analysis)
        load_into(model, pkg.plan, weights)

    timed("assemble", assemble)
    recal = timed("bn", recalibration_images, data.x_train, opts.bn_recalibrate)
    val_assembled = timed("eval", accuracy, model, data.x_val, data.y_val)
    test_assembled = timed("eval", accuracy, model, data.x_test, data.y_test)
    measured: dict = {}

    def evaluate() -> float:
        if len(recal):
            timed("bn", recalibrate_batchnorm, model, recal)
        return timed("eval", accuracy, model, data.x_val, data.y_val)

    def on_eval(step, seconds, acc):
        if step == 0:  # test accuracy at the start, measured after the same BN handling
            measured["test_start"] = timed("eval", accuracy, model, data.x_test, data.y_test)

    batches = make_tf_dataset(
        data.x_train, data.y_train, settings.batch_size, shuffle=True, seed=opts.seed, repeat=True
    )
    result = fit(
        model,
        batches,
        make_optimizer(settings),
        classification_loss(pkg.outputs_probabilities),
        opts.rule,
        evaluate,
        should_abort=ctx.should_abort if ctx is not None else None,
        on_eval=on_eval,
    )
    if result.stop == "aborted":
        raise TaskAborted()
    times["train"] = result.train_seconds
    val_final = float(result.curve[-1][2])
    # the model is as at the last evaluation point (BN statistics re-estimated there)
    test_final = timed("eval", accuracy, model, data.x_test, data.y_test)
    meets = opts.rule.threshold is not None and val_final >= opts.rule.threshold
    model_path = None
    if meets or opts.keep_all:
        path = candidate_path(pkg, opts.method, config.id, opts.fingerprint)
        atomic_save(path, lambda tmp: model.save(str(tmp)))
        model_path = str(path.relative_to(pkg.runs_dir))
    first = result.first_step_at if result.first_step_at is not None else time.perf_counter()
    seconds = {k: round(v, 3) for k, v in times.items()}
    seconds["total"] = round(time.perf_counter() - t0, 3)
    return {
        "key": record_key(opts.method, config.id, opts.fingerprint),
        "id": config.id,
        "method": opts.method,
        "rates": config.rates,
        "composite": list(config.composite) if opts.method == "block-trained" else [],
        "params": config.params,
        "macs": config.macs,
        "flops": 2 * config.macs,
        "fingerprint": opts.fingerprint,
        "val_accuracy_assembled": val_assembled,
        "test_accuracy_assembled": test_assembled,
        "val_accuracy_start": float(result.curve[0][2]),
        "test_accuracy_start": measured.get("test_start", test_assembled),
        "val_accuracy": val_final,
        "test_accuracy": test_final,
        "steps": result.steps,
        "stop": result.stop,
        "curve": result.curve,
        "setup_seconds": round(first - t0, 3),
        "seconds": seconds,
        "rank": ctx.rank if ctx is not None else 0,
        "model": model_path,
    }


def record_key(method: str, config_id: str, fingerprint: str) -> str:
    return f"{method}:{config_id}:{fingerprint}"


def candidate_path(pkg, method: str, config_id: str, fingerprint: str) -> Path:
    name = f"{method}-{config_id}" + (f"-{fingerprint[:8]}" if fingerprint else "") + ".keras"
    path = pkg.runs_dir / "candidates" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def best_paths(pkg, method: str) -> tuple[Path, Path]:
    """``runs/best-<method>.json`` and ``.keras``: one pair per method."""
    return pkg.runs_dir / f"best-{method}.json", pkg.runs_dir / f"best-{method}.keras"


def move_aside(runs: Path, stamp: str | None = None) -> Path | None:
    """``--fresh``: move results.jsonl, best-*, candidates/ into runs/old/<stamp>/ (nothing is
    deleted); returns that directory, or None when there was nothing to move."""
    names = ["results.jsonl", "candidates", "best.json", "best.keras"]
    names += sorted(p.name for p in runs.glob("best-*")) if runs.is_dir() else []
    present = [runs / n for n in dict.fromkeys(names) if (runs / n).exists()]
    if not present:
        return None
    stamp = stamp or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dest = runs / "old" / stamp
    n = 1
    while dest.exists():
        n += 1
        dest = runs / "old" / f"{stamp}-{n}"
    dest.mkdir(parents=True)
    for path in present:
        path.rename(dest / path.name)
    return dest


def conclusive(record: dict, threshold: float | None) -> bool:
    """Whether a stored record answers the current objective: one that stopped at an earlier
    threshold is final only if it also meets the current one (it might have gone higher)."""
    if record.get("stop") != "threshold":
        return True
    return threshold is not None and record["val_accuracy"] >= threshold


def meets(record: dict, threshold: float | None) -> bool:
    """The verdict, always recomputed from validation accuracy (never read from a record)."""
    return threshold is not None and float(record["val_accuracy"]) >= threshold


def choose(order, records: dict, objective, threshold) -> dict | None:
    """The winner among ``records`` (config id -> record), per the objective."""
    if objective.stops_early:
        for config in order:
            record = records.get(config.id)
            if record is None:
                return None  # an earlier configuration was not evaluated: no verdict yet
            if meets(record, threshold):
                return record
        return None
    evaluated = [records[c.id] for c in order if c.id in records]
    if not evaluated:
        return None
    return max(evaluated, key=lambda r: (r["val_accuracy"], -r["params"]))


def _explore(package_dir: Path, argv: list[str]) -> int:
    from cocotune.runtime.generated_package import Package
    from cocotune.runtime.mpi import get_comm
    from cocotune.runtime.objective import objective_from_args
    from cocotune.runtime.progress import progress_bar
    from cocotune.runtime.results import ResultsLog
    from cocotune.runtime.scheduler import run_tasks
    from cocotune.runtime.threads import configure_threads
    from cocotune.runtime.training_loop import DEFAULT_MIN_DELTA, DEFAULT_PATIENCE, stop_rule

    parser = base_parser("explore.py", "Explore pruned configurations in objective order.")
    goal = parser.add_argument_group("objective (one of)")
    goal.add_argument(
        "--alpha",
        type=float,
        help="smallest model with validation accuracy >= full x (1 - ALPHA) (default 0.01)",
    )
    goal.add_argument(
        "--acc-threshold", type=float, help="smallest model with validation accuracy >= T"
    )
    goal.add_argument("--objective", help="an objective file (min ModelSize / max Accuracy ...)")
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="default networks (full weights, L1-pruned) instead of blocks",
    )
    stop = parser.add_argument_group("stop rule (the same for both methods)")
    stop.add_argument(
        "--steps",
        type=int,
        help="step limit per configuration, in solver iterations (default: the "
        "solver's max_iter)",
    )
    stop.add_argument(
        "--eval-every",
        type=int,
        help="steps between validation evaluations (default: the solver's "
        "test_interval, else 20)",
    )
    stop.add_argument(
        "--patience",
        type=int,
        help="stop after this many evaluations without improvement "
        f"(default {DEFAULT_PATIENCE})",
    )
    stop.add_argument(
        "--min-delta",
        type=float,
        help="smallest validation accuracy gain that counts as improvement "
        f"(default {DEFAULT_MIN_DELTA})",
    )
    parser.add_argument(
        "--bn-recalibrate",
        type=int,
        default=0,
        metavar="N",
        help="re-estimate BatchNorm statistics on the same N training images "
        "at every evaluation point (both methods; default 0: off)",
    )
    parser.add_argument("--max-configs", type=int, help="explore at most this many")
    parser.add_argument("--time-budget", type=float, help="stop starting new ones after S seconds")
    parser.add_argument("--keep-all", action="store_true", help="save every fine-tuned model")
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="move earlier results to runs/old/<time>/ and start clean",
    )
    args = parser.parse_args(argv)
    if args.bn_recalibrate < 0:
        raise CocotuneError(f"--bn-recalibrate must be >= 0, not {args.bn_recalibrate}")
    comm = get_comm()
    configure_threads(comm)
    root = comm.is_root
    pkg = Package(package_dir)
    objective = objective_from_args(args.alpha, args.acc_threshold, args.objective)
    method = "default" if args.baseline else "block-trained"
    settings = settings_from(args, pkg, "demo", args.steps)  # --steps is Caffe's max_iter
    rule = stop_rule(
        settings, eval_every=args.eval_every, patience=args.patience, min_delta=args.min_delta
    )
    if args.fresh:
        moved = move_aside(pkg.runs_dir) if root else None
        moved = comm.bcast(moved)  # every rank waits until the old files are out of the way
        if root and moved is not None:
            print(f"--fresh: earlier results moved to {moved}")
    data = load_data(args, pkg)
    if len(data.x_val) == 0:
        raise CocotuneError(
            "no validation images: exploration decides on a validation split "
            "(use --val-fraction > 0, x_val/y_val in the .npz, or a val/ folder)"
        )
    reference = full_accuracy(pkg, data, comm, args.bn_recalibrate)
    full_acc = float(reference["val_accuracy"])
    threshold = objective.threshold(full_acc)
    rule = stop_rule(
        settings,
        steps=rule.max_steps,
        eval_every=rule.eval_every,
        patience=rule.patience,
        min_delta=rule.min_delta,
        threshold=threshold if objective.stops_early else None,
    )
    order = objective.order(pkg.configurations)
    run_info = run_settings(
        pkg, method, order, rule, settings, data, args.seed, args.bn_recalibrate
    )
    fingerprint = fingerprint_of(run_info)
    log = ResultsLog(pkg.runs_dir / "results.jsonl", comm=comm, id_key="key")
    by_id = {c.id: c for c in order}

    def current(records) -> tuple[dict, int, int]:
        """This run's usable records by config id; counts of other-settings and inconclusive."""
        usable, other, stale = {}, set(), 0
        for r in records.values():
            if r.get("method") != method or r.get("id") not in by_id:
                continue
            if r.get("fingerprint") != fingerprint or r.get("rates") != by_id[r["id"]].rates:
                other.add(r["id"])
            elif conclusive(r, threshold):
                usable[r["id"]] = r
            else:
                stale += 1
        return usable, len(other - set(usable)), stale

    done, ignored, stale = current(log.latest())
    first_win = choose([c for c in order if c.id in done], done, objective, threshold)
    todo = [c for c in order if c.id not in done]
    if objective.stops_early and first_win is not None:
        cut = order.index(by_id[first_win["id"]])
        todo = [c for c in todo if order.index(c) < cut]  # later ones cannot win
    if args.max_configs is not None:
        todo = todo[: max(0, args.max_configs - len(done))]
    if root:
        print(
            f"objective: {objective.describe(full_acc)}; full model: "
            f"{pkg.full_params:,} parameters, validation accuracy {full_acc:.4f}, test "
            f"{reference['test_accuracy']:.4f} ({data.name})"
        )
        if ignored:
            print(
                f"{ignored} results from other settings ignored; evaluating afresh "
                "(--fresh moves old results aside)"
            )
        if stale:
            print(f"{stale} results stopped at a lower threshold; evaluating them again")
        print(
            f"{method} networks: {len(order)} configurations in order, {len(done)} already "
            f"evaluated, {len(todo)} to go on {comm.size} process(es); stop rule: "
            f"limit {rule.max_steps} steps, validation every {rule.eval_every}, patience "
            f"{rule.patience}, min delta {rule.min_delta:g}"
            + (f", threshold {threshold:.4f}" if rule.threshold is not None else "")
            + (
                f", BN re-estimated on {args.bn_recalibrate} training images at each evaluation"
                if args.bn_recalibrate
                else ""
            )
        )
    needed = {b for c in todo for b in c.composite} if method == "block-trained" else set()
    blocks = load_blocks(pkg, needed)
    full = pkg.full_caffe_weights()
    opts = EvalOptions(
        method=method,
        rule=rule,
        seed=args.seed,
        bn_recalibrate=args.bn_recalibrate,
        keep_all=args.keep_all or threshold is None,
        deadline=time.time() + args.time_budget if args.time_budget else None,
        fingerprint=fingerprint,
    )
    bar = progress_bar(total=len(todo), desc=f"explore ({method})", comm=comm, disable=args.quiet)
    best_so_far: dict = {}

    def on_result(config, record):
        if record is None:
            return
        # every finished evaluation is kept (also one finishing after the objective was met)
        log.append({**record, "settings": run_info}, supersede=True)
        if meets(record, threshold) and (
            not best_so_far or record["params"] < best_so_far["params"]
        ):
            best_so_far.update(record)
        bar.set_postfix(
            val=f"{record['val_accuracy']:.3f}",
            params=f"{record['params']:,}",
            best=best_so_far.get("id", "-"),
        )

    def work(config, ctx):
        return evaluate_configuration(pkg, config, full, blocks, data, settings, opts, ctx)

    t0 = time.perf_counter()
    run_tasks(
        todo,
        work,
        comm,
        on_result=on_result,
        stop_when=(lambda c, r: bool(r and meets(r, threshold))) if objective.stops_early else None,
        progress=bar,
    )
    bar.close()
    if not root:
        return 0
    records, _, _ = current(log.latest())
    winner = choose(order, records, objective, threshold)
    return _report(
        pkg,
        method,
        objective,
        reference,
        threshold,
        order,
        records,
        winner,
        time.perf_counter() - t0,
        log.path,
        run_info,
    )


def _report(
    pkg,
    method,
    objective,
    reference,
    threshold,
    order,
    records,
    winner,
    seconds,
    log_path,
    run_info,
) -> int:
    from cocotune.runtime.results import atomic_save, atomic_write_json

    full_acc = float(reference["val_accuracy"])
    explored = sum(1 for c in order if c.id in records)
    best_json, best_model = best_paths(pkg, method)
    if winner is None:
        print(
            f"no configuration met the objective ({explored} of {len(order)} evaluated, "
            f"{seconds:.1f} s); results in {log_path}"
        )
        atomic_write_json(
            best_json,
            {
                "method": method,
                "found": False,
                "explored": explored,
                "objective": objective.describe(full_acc),
                "threshold": threshold,
                "settings": run_info,
            },
        )
        return 0
    candidate = pkg.runs_dir / winner["model"] if winner.get("model") else None
    if candidate is not None and candidate.exists():
        atomic_save(best_model, partial(shutil.copyfile, candidate))
    else:
        candidate = None
    summary = {
        "method": method,
        "found": True,
        "objective": objective.describe(full_acc),
        "threshold": threshold,
        "full_val_accuracy": full_acc,
        "full_test_accuracy": reference["test_accuracy"],
        "full_params": pkg.full_params,
        "explored": explored,
        "configurations": len(order),
        **winner,
        "best_model": best_model.name if candidate is not None else None,
    }
    atomic_write_json(best_json, summary)
    rates = ", ".join(f"{m}={r:g}" for m, r in winner["rates"].items())
    print(f"best ({method}): {winner['id']} after {explored} configurations ({seconds:.1f} s)")
    print(f"  rates: {rates}")
    print(
        f"  parameters: {winner['params']:,} ({winner['params'] / pkg.full_params:.1%} of "
        f"the full model's {pkg.full_params:,}); MACs {winner['macs']:,}"
    )
    print(
        f"  validation accuracy: {winner['val_accuracy']:.4f} (full {full_acc:.4f}"
        + (f", threshold {threshold:.4f})" if threshold is not None else ")")
        + f" after {winner['steps']} steps (stop: {winner['stop']})"
    )
    print(
        f"  test accuracy: {winner['test_accuracy']:.4f} (full "
        f"{reference['test_accuracy']:.4f}; reported, not used to choose)"
    )
    if candidate is None:
        print(
            "  its model was not saved (evaluated under another objective without "
            "--keep-all); rerun with --fresh --keep-all to get it"
        )
    print(
        f"  files: {best_json}"
        + (f", {best_model}" if candidate is not None else "")
        + f", {log_path}"
    )
    return 0


def main(package_dir: Path, argv: list[str]) -> int:
    return run_main(_explore, package_dir, argv)
