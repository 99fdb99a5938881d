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
                   help="digits (default), digits-hard, FILE.npz or DIR/ with train/ and test/")  # fmt: skip
    p.add_argument("--solver", help="a Caffe solver prototxt (overrides the package's)")
    p.add_argument("--preset", default=None,
                   help="named settings: demo, wootz-pretrain-resnet, wootz-pretrain-inception, "
                   "wootz-finetune")  # fmt: skip
    p.add_argument("--batch-size", type=int, help="images per step")
    p.add_argument("--lr", type=float, help="base learning rate")
    p.add_argument("--seed", type=int, default=0, help="data shuffling / initialisation seed")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


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

    return load_dataset(args.data, package.input_shape, package.num_classes, seed=args.seed)


def run_main(fn, package_dir: Path, argv: list[str]) -> int:
    """Run a script body; user errors print one message and exit 2 (as the cocotune CLI)."""
    from cocotune.cli import import_tensorflow_quietly

    try:
        import_tensorflow_quietly()
        return int(fn(Path(package_dir), argv) or 0)
    except CocotuneError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished work is saved; run the same command again to resume",
              file=sys.stderr)  # fmt: skip
        return 130
