"""The ``cocotune`` command: subcommands, and the rule for how errors reach the user.

A :class:`CocotuneError` is the user's to fix: one message, exit code 2, no traceback.
Anything else is cocotune's bug: traceback, "please report", exit code 1. Subcommands that
need no TensorFlow (``check``, ``subspace``, ``blocks``) never import it.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from cocotune import __version__
from cocotune.cli_support import add_net_options, import_tensorflow_quietly, load_net_from_args
from cocotune.errors import CocotuneError

EXIT_OK, EXIT_INTERNAL, EXIT_USER = 0, 1, 2


class _ArgumentParser(argparse.ArgumentParser):
    """argparse exits 2 on bad usage already; keep its message but make it ours."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USER)


def cmd_check(args: argparse.Namespace) -> int:
    from cocotune.frontend.load import read_source
    from cocotune.frontend.solver_check import looks_like_solver
    from cocotune.report import net_summary, render_table

    if looks_like_solver(read_source(args.prototxt).text):
        return _check_solver(args)
    net = load_net_from_args(args)
    summary = net_summary(net)
    if net.notes:
        summary["notes"] = list(net.notes)
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_table(summary))
        sys.stdout.flush()
        for note in net.notes:
            print(f"note: {note}", file=sys.stderr)
    return EXIT_OK


def _check_solver(args: argparse.Namespace) -> int:
    """``check`` given a solver: its settings, then every net it names (see solver_check)."""
    from cocotune.frontend.load import parse_input_shapes, read_source
    from cocotune.frontend.solver_check import check_solver, render_text, to_json

    result = check_solver(
        read_source(args.prototxt, "solver prototxt"),
        stages=args.stage,
        input_shapes=parse_input_shapes(args.input_shape),
    )
    if args.json:
        json.dump(to_json(result), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        out, err = render_text(result)
        sys.stdout.write(out)
        sys.stdout.flush()
        if err:
            print(err, file=sys.stderr)
    return EXIT_OK if result.ok else EXIT_USER


def build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="cocotune",
        description="Compression-compilation co-design for CNNs described in Caffe Prototxt.",
    )
    parser.add_argument("--version", action="version", version=f"cocotune {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_ArgumentParser)
    sub.required = True

    p = sub.add_parser(
        "check",
        help="parse a Prototxt, infer Caffe's shapes, print a summary",
        description="Parse a Caffe Prototxt exactly as Caffe reads it and print "
        "every layer with its module, top shapes (N,C,H,W), parameters and "
        "multiply-accumulates per image. Given a solver file, print its "
        "settings and check the nets it names (found relative to the working "
        "directory, as Caffe does, or next to the solver) in the phases the "
        "solver runs them in.",
    )
    add_net_options(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_check)

    for register in _optional_commands():
        register(sub)
    return parser


def _optional_commands():
    """Subcommand groups that live in their own packages (each has ``register(subparsers)``)."""
    from cocotune.cocogen.commands import register as cocogen
    from cocotune.convert.command import register as convert
    from cocotune.gen.write_package import register as gen
    from cocotune.tuning.commands import register as tuning
    from cocotune.tuning.modules import register as modules

    return [convert, tuning, modules, gen, cocogen]


# Subcommands that load TensorFlow (quietly: see import_tensorflow_quietly).
TENSORFLOW_COMMANDS = frozenset({"convert", "gen", "cocogen"})


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command in TENSORFLOW_COMMANDS:
            import_tensorflow_quietly()
        return int(args.func(args) or 0)
    except CocotuneError as exc:
        sys.stdout.flush()
        print(exc.render(), file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception:  # the last line of defence: a bug, not user error
        traceback.print_exc()
        print(
            "cocotune: internal error (this is a bug in cocotune, please report it with the "
            "traceback above)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
