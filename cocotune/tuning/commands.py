"""``cocotune subspace`` and ``cocotune blocks``: sample a subspace, show its tuning blocks.

::

    cocotune subspace net.prototxt -n 64 --rates 0.3,0.5,0.7 --seed 0 > subspace.txt
    cocotune blocks net.prototxt subspace.txt [--json] [--blocks sequitur|module]

Both need only numpy and the frontend: neither imports TensorFlow (checked by a test), so they
answer in well under a second.
"""

from __future__ import annotations

import argparse
import json
import sys

from cocotune.cli_support import add_net_options, load_net_from_args
from cocotune.errors import SubspaceError
from cocotune.ir.net import Net
from cocotune.tuning.blocks import MODES, TuningBlocks, format_rate, select_blocks
from cocotune.tuning.pruning import PruningAnalysis, analyze_pruning
from cocotune.tuning.subspace import (
    Subspace,
    format_subspace,
    no_modules_error,
    parse_rate_list,
    parse_subspace,
    sample_subspace,
)

__all__ = ["cmd_blocks", "cmd_subspace", "register"]


def _rates_arg(text: str) -> list[float]:
    try:
        return parse_rate_list(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _count_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def register(subparsers) -> None:
    """Add ``subspace`` and ``blocks`` to the ``cocotune`` subcommands."""
    p = subparsers.add_parser(
        "subspace",
        help="sample pruned configurations whose model sizes spread evenly",
        description="Print a subspace file: N configurations (one rate per module), drawn so "
        "that their parameter counts spread evenly between the smallest and the largest "
        "(docs/design.md §4). Modules without a prunable layer stay at rate 0.",
    )
    add_net_options(p)
    p.add_argument(
        "-n",
        type=_count_arg,
        default=64,
        metavar="N",
        help="number of configurations (default 64; all if fewer exist)",
    )
    p.add_argument(
        "--rates",
        type=_rates_arg,
        default=[0.3, 0.5, 0.7],
        metavar="R,R,...",
        help="rates each module may take, e.g. 0.3,0.5,0.7 or 30%%,50%% (default "
        "0.3,0.5,0.7; add 0 to let modules stay unpruned)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=cmd_subspace)

    b = subparsers.add_parser(
        "blocks",
        help="tuning blocks of a subspace (Sequitur) and each configuration's composite vector",
        description="Build the Sequitur grammar of a subspace, choose the tuning blocks to "
        "pre-train, and print them with their frequencies and pruned parameter counts, plus "
        "the composite vector (blocks) of every configuration (docs/design.md §5).",
    )
    add_net_options(b)
    b.add_argument("subspace", help="subspace file (text or .json)")
    b.add_argument("--json", action="store_true", help="print JSON (grammar, blocks, composite)")
    b.add_argument(
        "--blocks",
        choices=MODES,
        default="sequitur",
        dest="mode",
        help="sequitur: blocks from the grammar (default); module: every pruned "
        "module on its own",
    )
    b.set_defaults(func=cmd_blocks)


def _load(args: argparse.Namespace) -> tuple[Net, PruningAnalysis]:
    net = load_net_from_args(args)
    if not net.modules:
        raise no_modules_error(args.prototxt)
    return net, analyze_pruning(net)


def _warn(message: str) -> None:
    print(f"cocotune: warning: {message}", file=sys.stderr)


def _unprunable(analysis: PruningAnalysis) -> list[str]:
    return [m for m, layers in analysis.prunable.items() if not layers]


def cmd_subspace(args: argparse.Namespace) -> int:
    net, analysis = _load(args)
    for m in _unprunable(analysis):
        _warn(f"module '{m}' has no prunable layer; it stays at rate 0")
    configs = sample_subspace(net, args.n, args.rates, args.seed)
    sizes = [analysis.cost(c) for c in configs]
    rates_text = ",".join(format_rate(r) for r in args.rates)
    comments = [
        f"sampled by cocotune: subspace {args.prototxt} -n {args.n} --rates {rates_text} "
        f"--seed {args.seed}",
        f"full model: {analysis.cost({})[0]} parameters; each line's pruned size is at its end",
    ]
    notes = [f"{p} params, {macs} MACs" for p, macs in sizes]
    sys.stdout.write(format_subspace(net.module_names, configs, comments, notes))
    prunable = len(net.modules) - len(_unprunable(analysis))
    possible = len({format_rate(r) for r in args.rates}) ** prunable
    print(
        f"cocotune: {len(configs)} of {possible} possible configurations; parameters "
        f"{min(p for p, _ in sizes)}..{max(p for p, _ in sizes)}",
        file=sys.stderr,
    )
    return 0


def cmd_blocks(args: argparse.Namespace) -> int:
    net, analysis = _load(args)
    subspace = parse_subspace(args.subspace, net.module_names)
    for warning in subspace.warnings:
        print(warning, file=sys.stderr)
    configs = _ignore_unprunable(subspace, analysis)
    result = select_blocks(net.module_names, configs, args.mode)
    block_params = {b.id: _block_params(analysis, b.modules, b.rates) for b in result.blocks}
    if args.json:
        doc = result.to_json()
        for entry in doc["blocks"]:
            entry["params"] = block_params[entry["id"]]
        doc["modules"] = list(net.module_names)
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(_render(net, analysis, subspace, configs, result, block_params))
    return 0


def _ignore_unprunable(subspace: Subspace, analysis: PruningAnalysis) -> list[dict[str, float]]:
    """The configurations with the rates of modules that have no prunable layer set to 0."""
    configs = [dict(c) for c in subspace.configs]
    for m in _unprunable(analysis):
        if any(c[m] > 0 for c in configs):
            why = "; ".join(
                f"{name}: {reason}"
                for name, reason in analysis.exits.items()
                if analysis.net.layer(name).module == m
            )
            _warn(
                f"module '{m}' has no prunable layer, its rates are ignored"
                + (f" ({why})" if why else "")
            )
        for c in configs:
            c[m] = 0.0
    if not configs:
        raise SubspaceError(f"{subspace.path}: no configurations")
    return configs


def _block_params(analysis: PruningAnalysis, modules, rates) -> int:
    """Parameters of the block's layers, pruned at the block's rates."""
    return sum(analysis.module_cost(m, r).params for m, r in zip(modules, rates))


def _table(headers: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return (
            "  "
            + "  ".join(
                c.rjust(w) if i in right else c.ljust(w)
                for i, (c, w) in enumerate(zip(cells, widths))
            ).rstrip()
        )

    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def _render(
    net: Net,
    analysis: PruningAnalysis,
    subspace: Subspace,
    configs: list[dict[str, float]],
    result: TuningBlocks,
    block_params: dict[str, int],
) -> str:
    out = [
        f"net {net.name or '(unnamed)'}: {len(net.modules)} modules "
        f"({', '.join(net.module_names)}); full model {analysis.cost({})[0]} parameters",
        f"subspace {subspace.path}: {len(configs)} configurations",
        "",
    ]
    if result.grammar is not None:
        out.append(
            f"grammar ({len(result.grammar)} rules; r0 is the subspace, #i ends configuration i):"
        )
        out.extend(f"  {rid} -> {' '.join(body)}" for rid, body in result.grammar_json().items())
    else:
        out.append("grammar: none (--blocks module: every pruned module is its own block)")
    out.append("")
    out.append(f"tuning blocks ({len(result.blocks)}):")
    rows = [
        [
            b.id,
            " ".join(b.modules),
            " ".join(format_rate(r) for r in b.rates),
            str(b.frequency),
            str(block_params[b.id]),
            b.rule or "",
        ]
        for b in result.blocks
    ]
    if rows:
        out.extend(_table(["id", "modules", "rates", "frequency", "params", "rule"], rows, {3, 4}))
    else:
        out.append("  none (no pruned module or run of modules occurs in two configurations)")
    out.append("")
    out.append("composite vectors:")
    rows = [
        [
            str(line),
            " ".join(format_rate(c[m]) for m in net.module_names),
            str(analysis.cost(c)[0]),
            " ".join(vector) or "-",
        ]
        for line, c, vector in zip(subspace.lines, configs, result.composite)
    ]
    out.extend(_table(["line", "rates", "params", "blocks"], rows, {0, 2}))
    return "\n".join(out) + "\n"
