"""``python DIR/train.py``: train the full model (the teacher of every later step).

Writes ``full.weights.h5`` and ``runs/full.json`` (validation and test accuracy, steps, time;
the curve during training is measured on the validation split, test accuracy is only
reported). A killed run resumes from its last checkpoint (``runs/train.ckpt.weights.h5``,
written every evaluation interval by temp file + rename; the optimizer's momentum restarts
from zero on resume).
Under ``mpirun`` only rank 0 trains: one small model does not split well over processes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from cocotune.runtime.options import base_parser, load_data, run_main, settings_from


def _train(package_dir: Path, argv: list[str]) -> int:
    import keras

    from cocotune.files import save_weights_atomic
    from cocotune.runtime.data import make_tf_dataset
    from cocotune.runtime.generated_package import Package
    from cocotune.runtime.mpi import get_comm
    from cocotune.runtime.progress import progress_bar
    from cocotune.runtime.results import atomic_write_json
    from cocotune.runtime.solver import make_optimizer
    from cocotune.runtime.training_loop import (
        accuracy,
        classification_loss,
        recalibrate_batchnorm,
        train_steps,
    )

    parser = base_parser("train.py", "Train the full model of this package.")
    parser.add_argument(
        "--steps", type=int, help="optimisation steps (default: the solver's max_iter)"
    )
    parser.add_argument(
        "--force", action="store_true", help="retrain even if full.weights.h5 exists"
    )
    args = parser.parse_args(argv)
    comm = get_comm()
    if comm.rank != 0:
        return 0
    pkg = Package(package_dir)
    data = load_data(args, pkg)
    runs = pkg.runs_dir
    runs.mkdir(parents=True, exist_ok=True)
    if pkg.full_weights_path.exists() and not args.force:
        model = pkg.build("full")
        model.load_weights(str(pkg.full_weights_path))
        acc = accuracy(model, data.x_test, data.y_test)
        val = accuracy(model, data.x_val, data.y_val)
        atomic_write_json(
            runs / "full.json",
            {
                "accuracy": acc,
                "val_accuracy": val,
                "data": data.name,
                "data_fingerprint": data.fingerprint(),
                "source": "existing full.weights.h5",
            },
        )
        print(
            f"full model already trained ({pkg.full_weights_path}); validation accuracy "
            f"{val:.4f}, test accuracy {acc:.4f}. Use --force to train again."
        )
        return 0
    settings = settings_from(args, pkg, "demo", args.steps)
    keras.utils.set_random_seed(args.seed)
    model = pkg.build("full")
    steps = settings.total_batches
    ckpt, state_path = runs / "train.ckpt.weights.h5", runs / "train.ckpt.json"
    start = 0
    if ckpt.exists() and state_path.exists():
        model.load_weights(str(ckpt))
        start = int(json.loads(state_path.read_text())["step"])
        print(f"resuming training at step {start} of {steps}")
    print(data.describe())
    batches = make_tf_dataset(
        data.x_train,
        data.y_train,
        settings.batch_size,
        shuffle=True,
        seed=args.seed + start,
        repeat=True,
    )
    optimizer = make_optimizer(settings)
    if start:
        optimizer.build(model.trainable_variables)
        optimizer.iterations.assign(start * settings.iter_size)  # the schedule resumes too
    loss_fn = classification_loss(pkg.outputs_probabilities)
    every = settings.test_interval or max(steps // 5, 1)
    bar = progress_bar(
        total=steps,
        initial=start,
        desc="train full model",
        unit="step",
        comm=comm,
        disable=args.quiet,
    )

    progress = {"step": start}

    def on_step(step: int, loss: float) -> None:
        progress["step"] = step
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

    def evaluate() -> float:
        acc = accuracy(model, data.x_val, data.y_val)  # with the moving statistics so far
        save_weights_atomic(model, ckpt)
        atomic_write_json(state_path, {"step": progress["step"]})
        bar.set_postfix(val_acc=f"{acc:.4f}")
        return acc

    t0 = time.perf_counter()
    result = train_steps(
        model,
        batches,
        optimizer,
        steps,
        loss_fn,
        start_step=start,
        eval_every=every,
        evaluate_fn=evaluate,
        on_step=on_step,
    )
    bar.close()
    # Caffe's moving-average fraction (0.999) leaves BatchNorm statistics far from the data's
    # after a short run; the teacher of every later step deserves exact ones.
    recalibrate_batchnorm(model, data.x_train[:2048])
    seconds = time.perf_counter() - t0
    acc = accuracy(model, data.x_test, data.y_test)
    val = accuracy(model, data.x_val, data.y_val)
    save_weights_atomic(model, pkg.full_weights_path)
    atomic_write_json(
        runs / "full.json",
        {
            "accuracy": acc,
            "val_accuracy": val,
            "steps": result.steps,
            "seconds": round(seconds, 2),
            "data": data.name,
            "data_fingerprint": data.fingerprint(),
            "params": pkg.full_params,
            "curve": result.curve,
            "curve_measures": "val_accuracy",
            "settings": settings.as_dict(),
        },
    )
    ckpt.unlink(missing_ok=True)
    state_path.unlink(missing_ok=True)
    print(
        f"full model: validation accuracy {val:.4f}, test accuracy {acc:.4f} after "
        f"{result.steps} steps ({seconds:.1f} s); weights in {pkg.full_weights_path}"
    )
    return 0


def main(package_dir: Path, argv: list[str]) -> int:
    return run_main(_train, package_dir, argv)
