"""What the ``cocotune`` subcommands share: the net options, loading the net, TensorFlow.

It lives apart from :mod:`cocotune.cli` because every command module needs it and ``cli``
imports every command module: helpers here import nothing from the commands, so there is no
import cycle, and ``cocotune check`` still imports neither TensorFlow nor the converter.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cocotune.ir.net import Net

__all__ = ["add_net_options", "import_tensorflow_quietly", "load_net_from_args"]


def add_net_options(p: argparse.ArgumentParser) -> None:
    """The Prototxt argument and the options that choose which of its layers form the net."""
    p.add_argument("prototxt", help="Caffe net (.prototxt), optionally with module { } blocks")
    p.add_argument(
        "--phase",
        default="TEST",
        choices=["TEST", "TRAIN"],
        help="which phase's layers to keep (include/exclude rules); default TEST",
    )
    p.add_argument(
        "--stage",
        action="append",
        default=[],
        metavar="NAME",
        help="a NetState stage for include/exclude rules (repeatable)",
    )
    p.add_argument(
        "--input-shape",
        action="append",
        default=[],
        metavar="BLOB=N,C,H,W",
        help="override or supply an input blob's shape (repeatable)",
    )


def load_net_from_args(args: argparse.Namespace) -> Net:
    """The net named by the options of :func:`add_net_options`, with shapes inferred."""
    from cocotune.frontend.load import load_net, parse_input_shapes

    return load_net(
        args.prototxt,
        phase=args.phase,
        stages=args.stage,
        input_shapes=parse_input_shapes(args.input_shape),
    )


def import_tensorflow_quietly() -> None:
    """Import TensorFlow without its banner; a missing or untested one is a user error.

    TensorFlow's C++ start-up banner goes to stderr before any Python logging setting can reach
    it, so the import happens with stderr parked. TensorFlow is not a hard requirement of the
    package (the user chooses ``tensorflow`` or ``tensorflow-cpu``), so this is where a missing
    one is reported (cocotune/dependencies.py).
    """
    from cocotune.dependencies import check_tensorflow_version, import_tensorflow

    if "tensorflow" in sys.modules:
        check_tensorflow_version(str(getattr(sys.modules["tensorflow"], "__version__", "")))
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                import_tensorflow()
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)
