"""Options shared by the generated scripts (train.py, pretrain.py, explore.py).

Training settings come, in increasing priority, from a preset (``demo`` by default: the
bundled example trains in seconds), the package's solver (if ``cocotune gen --solver`` was
given), ``--solver FILE`` and explicit flags.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cocotune.errors import CocotuneError


def base_parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--data", default="digits",
                   help="digits (default), digits-hard, FILE.npz or DIR/ with train/ and test/ "
                   "(and optionally val/) class folders")  # fmt: skip
    add_data_options(p)
    p.add_argument("--solver", help="a Caffe solver prototxt (overrides the package's)")
    p.add_argument("--preset", default=None,
                   help="named settings: demo, wootz-pretrain-resnet, wootz-pretrain-inception, "
                   "wootz-finetune")  # fmt: skip
    p.add_argument("--batch-size", type=int, help="images per step")
    p.add_argument("--lr", type=float, help="base learning rate")
    p.add_argument("--seed", type=int, default=0, help="data shuffling / initialisation seed")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _mean_values(text: str) -> list[float]:
    try:
        return [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--mean takes numbers separated by commas (e.g. 104,117,123), not {text!r}"
        ) from None


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), not {text}")
    return value


def add_data_options(p: argparse.ArgumentParser) -> None:
    """The flags that say how --data is split and fitted to the net (see runtime/data.py)."""
    g = p.add_argument_group("data")
    g.add_argument("--val-fraction", type=_fraction, default=0.1,
                   help="share of the training images held out for validation (stratified, "
                   "fixed seed: the same on every run) when the data have no x_val/y_val or "
                   "val/ folder; decisions use validation, never test (default 0.1)")  # fmt: skip
    g.add_argument("--resize", action="store_true",
                   help="let the built-in digits (8x8x1) be resized to a net with another "
                   "input, batch by batch (a smoke test; refused without this flag)")  # fmt: skip
    g.add_argument("--mean", type=_mean_values, default=None,
                   help="subtract per-channel means from .npz/folder images, comma-separated, "
                   "in the channel order fed to the net (BGR for folders), e.g. 104,117,123")  # fmt: skip
    g.add_argument("--scale", type=float, default=None,
                   help="multiply .npz/folder pixel values by this after --mean, as Caffe's "
                   "transform_param scale (e.g. 0.00390625 for 0..1)")  # fmt: skip
    g.add_argument("--crop", action="store_true",
                   help="centre-crop folder images to the net's HxW instead of resizing them")  # fmt: skip
    g.add_argument("--channel-order", choices=("BGR", "RGB"), default=None,
                   help="channel order of colour folder images (default BGR, as Caffe)")  # fmt: skip
    g.add_argument("--memory-limit-mb", type=float, default=None,
                   help="image folders larger than this when decoded are streamed from disk "
                   "batch by batch (default 1024)")  # fmt: skip


def data_options(args) -> dict:
    """The keyword options of ``load_dataset`` that the parsed flags give (None: not given)."""
    return {
        "resize": getattr(args, "resize", False),
        "mean": getattr(args, "mean", None),
        "scale": getattr(args, "scale", None),
        "crop": getattr(args, "crop", False),
        "channel_order": getattr(args, "channel_order", None),
        "memory_limit_mb": getattr(args, "memory_limit_mb", None),
    }


def settings_from(args, package, default_preset: str, steps_flag: int | None = None):
    """TrainingSettings for this run (preset < package solver < --solver < flags)."""
    from cocotune.runtime.solver import TrainingSettings, preset

    settings = preset(args.preset or default_preset)
    solver = args.solver
    if solver is None and package.doc.get("solver"):
        solver = str(package.dir / package.doc["solver"])
    if solver is not None:
        settings = TrainingSettings.from_solver(solver)
    return settings.with_overrides(base_lr=args.lr, batch_size=args.batch_size, max_iter=steps_flag)


def load_data(args, package):
    from cocotune.runtime.data import load_dataset

    return load_dataset(args.data, package.input_shape, package.num_classes, seed=args.seed,
                        val_fraction=getattr(args, "val_fraction", 0.1),
                        **data_options(args))  # fmt: skip


def run_main(fn, package_dir: Path, argv: list[str]) -> int:
    """Run a script body; user errors print one message and exit 2 (as the cocotune CLI)."""
    from cocotune.cli import import_tensorflow_quietly

    import_tensorflow_quietly()
    try:
        return int(fn(Path(package_dir), argv) or 0)
    except CocotuneError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished work is saved; run the same command again to resume",
              file=sys.stderr)  # fmt: skip
        return 130
