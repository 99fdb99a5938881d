"""Add ``module { }`` blocks to an existing net: group consecutive layers by a name pattern.

Real Prototxt files have no modules. For regular nets the layer names say which block a layer
belongs to (ResNet: ``res2a_branch2a``, ``bn2a_branch2a``, ``scale2a_branch2a``, ``res2a``),
so a regular expression whose first group names the block is enough to write the modules.
"""

from __future__ import annotations

import argparse
import re
import sys

from google.protobuf import text_format

from cocotune.cli_support import add_net_options, load_net_from_args
from cocotune.errors import CocotuneError
from cocotune.ir.net import Net

#: KaimingHe's ResNet names: res2a_branch2a / bn2a_branch2a / scale2a_branch2a / res2a(_relu)
RESNET_BLOCKS = r"^(?:res|bn|scale)(\d+[a-z]\d*)(?:_|$)"


def group_layers(net: Net, pattern: str) -> list[tuple[str | None, list]]:
    """Runs of consecutive layers with the same block name (None: outside any module)."""
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise CocotuneError(f"bad --by pattern {pattern!r}: {exc}") from None
    if regex.groups < 1:
        raise CocotuneError("the --by pattern needs a group naming the block, e.g. res(\\d+[a-z])")
    runs: list[tuple[str | None, list]] = []
    for layer in net.layers:
        match = regex.search(layer.name)
        key = match.group(1) if match else None
        if runs and runs[-1][0] == key:
            runs[-1][1].append(layer)
        else:
            runs.append((key, [layer]))
    return runs


def wrap_in_modules(net: Net, pattern: str = RESNET_BLOCKS, prefix: str = "res") -> str:
    """The net as Prototxt text, each run of layers of one block wrapped in a module."""
    head = net.to_net_parameter()
    del head.layer[:]
    out = [text_format.MessageToString(head)]
    seen: set[str] = set()
    for key, layers in group_layers(net, pattern):
        body = "".join(
            "layer {\n" + _indent(text_format.MessageToString(layer.param), "  ") + "}\n"
            for layer in layers
        )
        if key is None:
            out.append(body)
            continue
        name = prefix + key
        if name in seen:
            raise CocotuneError(f"block '{name}' is not contiguous in the net; cannot wrap it")
        seen.add(name)
        out.append(f'module {{\n  name: "{name}"\n' + _indent(body, "  ") + "}\n")
    return "".join(out)


def _indent(text: str, pad: str) -> str:
    return "".join(pad + line + "\n" if line else "\n" for line in text.splitlines())


def cmd_modules(args: argparse.Namespace) -> int:
    net = load_net_from_args(args)
    text = wrap_in_modules(net, args.by, args.prefix)
    sys.stdout.write(text)
    n = sum(1 for key, _ in group_layers(net, args.by) if key is not None)
    print(f"{n} modules", file=sys.stderr)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "modules",
        help="print the net with module { } blocks grouped by a layer-name pattern",
        description="Group consecutive layers whose names match --by (its first group names "
        "the block) into module blocks, and print the resulting Prototxt.",
    )
    add_net_options(p)
    p.add_argument(
        "--by",
        default=RESNET_BLOCKS,
        help=f"regex whose first group names the block (default: ResNet, {RESNET_BLOCKS})",
    )
    p.add_argument("--prefix", default="res", help="module name = PREFIX + block (default res)")
    p.set_defaults(func=cmd_modules)
