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
    p.add_argument(
        "--data",
        default="digits",
        help="digits (default), digits-hard, FILE.npz or DIR/ with train/ and test/ "
        "(and optionally val/) class folders",
    )
    add_data_options(p)
    p.add_argument("--solver", help="a Caffe solver prototxt (overrides the package's)")
    p.add_argument(
        "--preset",
        default=None,
        help="named settings: demo, wootz-pretrain-resnet, wootz-pretrain-inception, "
        "wootz-finetune",
    )
    p.add_argument("--batch-size", type=int, help="images per step")
    p.add_argument("--lr", type=float, help="base learning rate")
    p.add_argument("--seed", type=int, default=0, help="data shuffling / initialisation seed")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--devices",
        default="auto",
        type=_devices,
        help="auto (default: each MPI rank one GPU of its node, else the CPU), cpu, "
        "gpu, or GPU indices such as 0,1",
    )
    return p


def _devices(text: str):
    from cocotune.runtime.devices import DeviceError, parse_devices

    try:
        return parse_devices(text)
    except DeviceError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


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
    g.add_argument(
        "--val-fraction",
        type=_fraction,
        default=0.1,
        help="share of the training images held out for validation (stratified, "
        "fixed seed: the same on every run) when the data have no x_val/y_val or "
        "val/ folder; decisions use validation, never test (default 0.1)",
    )
    g.add_argument(
        "--resize",
        action="store_true",
        help="let the built-in digits (8x8x1) be resized to a net with another "
        "input, batch by batch (a smoke test; refused without this flag)",
    )
    g.add_argument(
        "--mean",
        type=_mean_values,
        default=None,
        help="subtract per-channel means from .npz/folder images, comma-separated, "
        "in the channel order fed to the net (BGR for folders), e.g. 104,117,123",
    )
    g.add_argument(
        "--scale",
        type=float,
        default=None,
        help="multiply .npz/folder pixel values by this after --mean, as Caffe's "
        "transform_param scale (e.g. 0.00390625 for 0..1)",
    )
    g.add_argument(
        "--crop",
        action="store_true",
        help="centre-crop folder images to the net's HxW instead of resizing them",
    )
    g.add_argument(
        "--channel-order",
        choices=("BGR", "RGB"),
        default=None,
        help="channel order of colour folder images (default BGR, as Caffe)",
    )
    g.add_argument(
        "--memory-limit-mb",
        type=float,
        default=None,
        help="image folders larger than this when decoded are streamed from disk "
        "batch by batch (default 1024)",
    )


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


#: The fields a run's settings line shows (the rest are Caffe defaults nobody asks about).
_SHOWN = (
    "solver_type",
    "base_lr",
    "lr_policy",
    "gamma",
    "stepsize",
    "stepvalues",
    "power",
    "momentum",
    "weight_decay",
    "max_iter",
    "iter_size",
    "batch_size",
    "test_interval",
)


def settings_with_sources(args, package, default_preset: str, steps_flag: int | None = None):
    """``(settings, sources)``: TrainingSettings (preset < package solver < --solver < flags)
    and, per field, where its value came from (``preset demo``, ``package solver FILE``,
    ``--solver FILE``, ``Caffe default``, ``--lr`` ...)."""
    import dataclasses

    from cocotune.runtime.solver import TrainingSettings, preset

    name = getattr(args, "preset", None) or default_preset
    settings = preset(name)
    origin = f"preset {name}" + ("" if getattr(args, "preset", None) else " (the default)")
    sources = {f.name: origin for f in dataclasses.fields(TrainingSettings)}
    solver, label = getattr(args, "solver", None), "--solver"
    if solver is None and package is not None and package.doc.get("solver"):
        solver, label = str(package.dir / package.doc["solver"]), "package solver"
    if solver is not None:
        settings = TrainingSettings.from_solver(solver)
        caffe = TrainingSettings()
        for f in dataclasses.fields(TrainingSettings):
            same = getattr(settings, f.name) == getattr(caffe, f.name)
            sources[f.name] = "Caffe default" if same else f"{label} {solver}"
        sources["batch_size"] = "default (a Caffe solver has no batch size)"
    flags = {
        "base_lr": ("--lr", getattr(args, "lr", None)),
        "batch_size": ("--batch-size", getattr(args, "batch_size", None)),
        "max_iter": ("--steps", steps_flag),
    }
    for field_name, (flag, value) in flags.items():
        if value is not None:
            sources[field_name] = flag
    settings = settings.with_overrides(**{k: v for k, (_, v) in flags.items()})
    return settings, sources


def settings_report(settings, sources: dict[str, str]) -> str:
    """One line per origin: ``training settings: base_lr 0.02, ... (preset demo); ...``."""
    by_origin: dict[str, list[str]] = {}
    for name in _SHOWN:
        value = getattr(settings, name)
        if name in ("gamma", "stepsize", "power") and value in (0, 0.0):
            continue
        if name == "stepvalues" and not value:
            continue
        shown = (
            ",".join(map(str, value))
            if isinstance(value, tuple)
            else f"{value:g}" if (isinstance(value, float)) else str(value)
        )
        by_origin.setdefault(sources.get(name, "?"), []).append(f"{name} {shown}")
    parts = [f"{', '.join(items)} ({origin})" for origin, items in by_origin.items()]
    return "training settings: " + "; ".join(parts)


def settings_from(
    args, package, default_preset: str, steps_flag: int | None = None, announce: bool = True
):
    """TrainingSettings for this run (preset < package solver < --solver < flags).

    With ``announce`` (default) rank 0 prints which settings the run uses and where each came
    from, so a default silently taken from the ``demo`` preset is visible.
    """
    settings, sources = settings_with_sources(args, package, default_preset, steps_flag)
    if announce:
        from cocotune.runtime.mpi import get_comm

        if get_comm().is_root:
            print(settings_report(settings, sources), flush=True)
    return settings


def data_layer_transform(package) -> dict:
    """The first data layer's ``transform_param`` fields recorded in the package's model.py
    (``TRANSFORM_PARAMS``), or ``{}`` for a deploy net (``input:`` only) or a stand-in."""
    module = getattr(package, "model_module", None)
    params = getattr(module, "TRANSFORM_PARAMS", None) or {}
    return dict(next(iter(params.values()))) if params else {}


def load_data(args, package):
    """The run's Dataset, checked against the package's net before any training starts.

    For ``.npz`` files and image folders, a train/test net's data-layer ``transform_param``
    supplies ``mean_value`` and ``scale`` unless ``--mean``/``--scale`` are given (a deploy net
    has none: give them as flags). ``mean_file``, crops and mirrors are not taken from it.
    """
    from cocotune.runtime.data import BUILTIN, load_dataset

    options = data_options(args)
    builtin = str(args.data).partition(":")[0] in BUILTIN
    transform = data_layer_transform(package)
    taken = []
    if transform and not builtin and options["mean"] is None and options["scale"] is None:
        if transform.get("mean_value"):
            options["mean"] = [float(v) for v in transform["mean_value"]]
            taken.append("mean_value " + ",".join(f"{v:g}" for v in options["mean"]))
        if transform.get("scale") not in (None, 1.0):
            options["scale"] = float(transform["scale"])
            taken.append(f"scale {options['scale']:g}")
    data = load_dataset(
        args.data,
        package.input_shape,
        package.num_classes,
        seed=args.seed,
        val_fraction=getattr(args, "val_fraction", 0.1),
        **options,
    )
    if taken:
        data.notes.append(f"{' and '.join(taken)} from the net's data layer transform_param")
    ignored = sorted(k for k in transform if k in ("mean_file", "crop_size", "mirror"))
    if transform and builtin:
        data.notes.append(
            "the net's data layer transform_param is not applied to the built-in "
            "digits (already in [0, 1])"
        )
    elif ignored:
        data.notes.append(f"the data layer's {', '.join(ignored)} not applied (use --mean, --crop)")
    return data


def run_main(fn, package_dir: Path, argv: list[str]) -> int:
    """Run a script body; user errors print one message and exit 2 (as the cocotune CLI)."""
    from cocotune.cli_support import import_tensorflow_quietly

    try:
        import_tensorflow_quietly()
        from cocotune.runtime.startup import start_ranks

        start_ranks(package_dir, argv)  # MPI, shared package check, threads, devices
        return int(fn(Path(package_dir), argv) or 0)
    except CocotuneError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted: finished work is saved; run the same command again to resume",
            file=sys.stderr,
        )
        return 130
