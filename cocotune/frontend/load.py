"""The frontend pipeline: file → text tree → caffe_pb2 → upgraded layers → Net IR with shapes.

Each step is its own module; this one only wires them and runs the whole-net checks that
need every layer at once (unsupported types are reported together, not one by one).
"""

from __future__ import annotations

from pathlib import Path

from cocotune._proto import caffe_pb2
from cocotune._proto.caffe_pb2 import NetParameter, SolverParameter
from cocotune.errors import CocotuneError, InputFileError, Position, read_text_source
from cocotune.frontend.parser import parse_text
from cocotune.frontend.problems import check_net, check_records, raise_problems
from cocotune.frontend.source import Source
from cocotune.frontend.to_proto import (
    ParsedNet,
    PositionTree,
    build_net_parameter,
    fill_message_from_text,
)
from cocotune.frontend.upgrade import LayerRecord, collect_layers, filter_phase
from cocotune.ir.net import Layer, Net, Shape, build_net
from cocotune.ir.shapes import LAYER_RULES, infer_shapes

PHASES = {"TRAIN": caffe_pb2.TRAIN, "TEST": caffe_pb2.TEST}

#: What :func:`parse_net_text` returns: the net as written, the layer records kept for the
#: phase, module name -> position, and the records the phase rules removed.
ParsedLayers = tuple[NetParameter, list[LayerRecord], dict[str, Position], list[LayerRecord]]


def read_source(path: str | Path, what: str = "prototxt") -> Source:
    return Source(str(path), read_text_source(path, what))


def parse_net_text(
    source: Source, phase: str = "TEST", stages: list[str] | None = None
) -> ParsedLayers:
    """Parse and upgrade a net; raise every problem that blocks ``phase`` at once.

    Returns the NetParameter as written, the layer records kept for ``phase`` (and
    ``stages``), module positions, and the records the phase rules removed. Problems of
    removed layers that do not block (fork fields, unsupported types) are left in
    ``source.notes``.
    """
    items = parse_text(source)  # a syntax error stops here: nothing after it can be trusted
    parsed = build_net_parameter(source, items, NetParameter)
    return upgrade_and_filter(source, parsed, phase, stages)


def upgrade_and_filter(
    source: Source, parsed: ParsedNet, phase: str, stages: list[str] | None = None
) -> ParsedLayers:
    """The steps of :func:`parse_net_text` after the text is read into ``parsed``.

    Separate so that a net written inside another message (a solver's ``net_param``) goes
    through the same upgrades, phase rules and problem report as a net file.
    """
    net_level = parsed.positions.all_problems(skip=("layer", "layers"))
    try:
        records = collect_layers(parsed, source)
        state = caffe_pb2.NetState()
        state.CopyFrom(parsed.net.state)
        state.phase = PHASES[phase]
        state.stage.extend(stages or [])
        excluded: list[LayerRecord] = []
        records = filter_phase(records, state, source, excluded)
    except CocotuneError as exc:
        # An upgrade error on top of schema errors: report them together.
        raise_problems([*parsed.positions.all_problems(), exc])
        raise
    source.notes = check_net(source, net_level, records, excluded, phase)
    module_positions = {m.name: m.position for m in parsed.modules}
    return parsed.net, records, module_positions, excluded


def load_net(
    path: str | Path,
    *,
    phase: str = "TEST",
    stages: list[str] | None = None,
    input_shapes: dict[str, Shape] | None = None,
    infer: bool = True,
) -> Net:
    """Read a Prototxt file (with ``module`` blocks) into a :class:`Net` with Caffe's shapes.

    Raises:
        CocotuneError: every problem a user can cause, positioned in the file.
    """
    if phase not in PHASES:
        raise CocotuneError(f"unknown phase '{phase}': use TEST or TRAIN")
    source = read_source(path)
    parsed = parse_net_text(source, phase, stages)
    return net_from_records(source, parsed, phase, input_shapes, infer)


def net_from_records(
    source: Source,
    parsed: ParsedLayers,
    phase: str,
    input_shapes: dict[str, Shape] | None = None,
    infer: bool = True,
) -> Net:
    """Connect the layers :func:`parse_net_text` kept into a Net and infer its shapes."""
    net_param, records, module_positions, excluded = parsed
    net = build_net(net_param.name, source, records, module_positions, phase, excluded)
    net.notes.extend(source.notes)
    _mark_fork_extensions(net)
    if input_shapes:
        known = {b.name for b in net.blobs}
        for blob in input_shapes:
            if blob not in known:
                raise CocotuneError(
                    f"--input-shape names blob '{blob}', which the net does not have"
                )
    if infer:
        infer_shapes(net, input_shapes)
    return net


def check_supported(source: Source, records: list[LayerRecord]) -> None:
    """Report every unsupported layer type (and fork-only field) of ``records`` at once."""
    check_records(source, records)


def _mark_fork_extensions(net: Net) -> None:
    for layer in net.layers:
        rule = LAYER_RULES[layer.type]
        if rule.fork:
            layer.fork = rule.fork
        elif layer.type == "Pooling" and layer.param.pooling_param.HasField("ceil_mode"):
            layer.fork = "ceil_mode (DenseNet/ResNeXt Caffe forks)"


def load_solver(path: str | Path) -> SolverParameter:
    """Parse a solver prototxt into a caffe_pb2.SolverParameter (every schema error at once)."""
    return read_solver(read_source(path, "solver prototxt"))[0]


def read_solver(source: Source) -> tuple[SolverParameter, PositionTree]:
    """A solver's SolverParameter and the positions of its fields (for nets written inline)."""
    msg, tree = fill_message_from_text(source, parse_text(source), SolverParameter, "solver")
    raise_problems(tree.all_problems())
    return msg, tree


def parse_input_shapes(specs: list[str] | None) -> dict[str, Shape]:
    """``["data=1,3,224,224"]`` → ``{"data": (1, 3, 224, 224)}`` (for --input-shape)."""
    out: dict[str, Shape] = {}
    for spec in specs or []:
        name, sep, dims = spec.partition("=")
        try:
            shape = tuple(int(d) for d in dims.split(",")) if sep else None
        except ValueError:
            shape = None
        if not name or not shape or any(d <= 0 for d in shape):
            raise CocotuneError(
                f"bad --input-shape '{spec}': write BLOB=N,C,H,W with positive integers"
            )
        out[name.strip()] = shape
    return out


__all__ = [
    "InputFileError",
    "Layer",
    "load_net",
    "load_solver",
    "parse_input_shapes",
    "read_source",
]
