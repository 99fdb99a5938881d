"""``cocotune check`` on a solver file: its settings, checked, and the nets it names, checked.

Users hand ``check`` whatever Caffe file they have; a solver used to fail with "unknown field
'net' in the net". A solver is recognised by its top-level fields (a net file has ``layer``,
``layers``, ``input`` or ``name`` at the top, a solver has ``base_lr``, ``max_iter``, ``net``,
... and none of those), checked as a ``SolverParameter`` against proto/caffe.proto, then the
value rules Caffe's Solver applies are checked, and each net it names is found the way Caffe
finds it (relative to the working directory) or next to the solver file, and checked in the
phase Caffe runs it in.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from cocotune._proto import caffe_pb2
from cocotune._proto.caffe_pb2 import NetParameter, SolverParameter
from cocotune.errors import CocotuneError, SchemaError
from cocotune.frontend.parser import TextField, TextMessage, parse_text
from cocotune.frontend.problems import raise_problems
from cocotune.frontend.source import Source
from cocotune.frontend.to_proto import (
    ParsedNet,
    PositionTree,
    fill_message_from_text,
    parse_float,
    parse_int,
)
from cocotune.ir.net import Net, Shape

_SOLVER_FIELDS = set(caffe_pb2.SolverParameter.DESCRIPTOR.fields_by_name)
_NET_FIELDS = set(caffe_pb2.NetParameter.DESCRIPTOR.fields_by_name) | {"module"}
SOLVER_ONLY = frozenset(_SOLVER_FIELDS - _NET_FIELDS)
NET_ONLY = frozenset(_NET_FIELDS - _SOLVER_FIELDS)

# Caffe's registered solvers (SolverRegistry) and learning-rate policies (SGDSolver).
SOLVER_TYPES = ("SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam")
LR_POLICIES = ("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid")
_TOKENS = re.compile(
    r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|#[^\n]*|[{}<>\[\]]|[A-Za-z_][A-Za-z0-9_]*'
)


def top_level_names(text: str):
    """Field names written at the top level of a Prototxt, in order (a cheap scan, no parse)."""
    depth = 0
    for m in _TOKENS.finditer(text):
        tok = m.group()
        if tok[0] in "\"'#":
            continue
        if tok in "{<[":
            depth += 1
        elif tok in "}>]":
            depth -= 1
        elif depth == 0:
            rest = text[m.end() : m.end() + 64].lstrip()
            if rest[:1] in (":", "{", "<"):
                yield tok


def looks_like_solver(text: str) -> bool:
    """A solver has solver-only fields at the top and none that only a net has.

    Stops at the first net-only field (``layer`` comes early in a net), so a big net costs
    almost nothing. A file with neither kind (only typos) is treated as a net, as before.
    """
    solver = False
    for name in top_level_names(text):
        if name in NET_ONLY:
            return False
        solver = solver or name in SOLVER_ONLY
    return solver


@dataclass
class NetCheck:
    """One net the solver names, where it was looked for, and how its check went."""

    role: str  # "net", "train_net", "test_net", "net_param" (inline), ...
    phase: str
    stages: list[str]
    written: str  # the path as written, or "(inline)"
    tried: list[str] = field(default_factory=list)
    found: str | None = None
    net: Net | None = None
    error: CocotuneError | None = None


@dataclass
class SolverCheck:
    path: str
    settings: list[tuple[str, object, str, int]]  # (field, value, value as written, line)
    summary: str
    nets: list[NetCheck]

    @property
    def ok(self) -> bool:
        return all(n.error is None for n in self.nets)


def _shown(f: TextField) -> str:
    """A top-level value as it reads in the file (strings quoted, enums bare)."""
    if isinstance(f.value, TextMessage):
        return "{ ... }"
    values = f.value if isinstance(f.value, list) else [f.value]
    texts = [json.dumps(v.value) if v.kind == "string" else v.value for v in values]
    return "[" + ", ".join(texts) + "]" if isinstance(f.value, list) else texts[0]


def _value(f: TextField) -> object:
    """A top-level value as written (numbers as numbers), for printing and JSON."""
    if isinstance(f.value, TextMessage):
        return "{ ... }"
    values = f.value if isinstance(f.value, list) else [f.value]
    out: list[object] = []
    for v in values:
        if v.kind == "number":
            as_int = parse_int(v.value)
            out.append(as_int if as_int is not None else parse_float(v.value))
        elif v.kind == "identifier" and v.value in ("true", "false"):
            out.append(v.value == "true")
        else:
            out.append(v.value)
    return out if isinstance(f.value, list) else out[0]


def _caffe_rules(source: Source, param: SolverParameter, tree: PositionTree) -> None:
    """What Caffe's Solver refuses although the schema allows it (all reported at once)."""
    problems: list[CocotuneError] = []

    def err(message: str, name: str) -> None:
        problems.append(source.error_at(SchemaError, message, tree.find(name)))

    train = [n for n in ("net", "net_param", "train_net", "train_net_param") if param.HasField(n)]
    if not train:
        problems.append(
            SchemaError(
                f"{source.path}: the solver names no net: give net (or train_net, net_param, "
                "train_net_param), as Caffe requires"
            )
        )
    elif len(train) > 1:
        err(
            f"the solver names its train net {len(train)} times ({', '.join(train)}); Caffe "
            "accepts exactly one",
            train[1],
        )
    if param.HasField("type") and param.type not in SOLVER_TYPES:
        err(f"unknown solver type '{param.type}': Caffe has {', '.join(SOLVER_TYPES)}", "type")
    if param.HasField("type") and param.HasField("solver_type"):
        err(
            "both 'type' and the deprecated 'solver_type' are set; Caffe refuses that: keep "
            "only 'type'",
            "solver_type",
        )
    if param.HasField("lr_policy") and param.lr_policy not in LR_POLICIES:
        err(
            f"unknown lr_policy '{param.lr_policy}': Caffe has {', '.join(LR_POLICIES)}",
            "lr_policy",
        )
    elif not param.HasField("lr_policy"):
        problems.append(
            SchemaError(
                f"{source.path}: the solver sets no lr_policy (Caffe stops at the first "
                f"iteration without one): use one of {', '.join(LR_POLICIES)}"
            )
        )
    if param.lr_policy == "step" and param.stepsize <= 0:
        err("lr_policy 'step' needs a positive stepsize", "lr_policy")
    if param.lr_policy == "multistep" and not len(param.stepvalue):
        err("lr_policy 'multistep' needs stepvalue entries", "lr_policy")
    raise_problems(problems)


_SOLVER_TYPE_NAMES = {t.upper(): t for t in SOLVER_TYPES}


def _solver_type(param: SolverParameter) -> str:
    """The solver's type, from 'type' or the deprecated enum 'solver_type' (as Caffe upgrades)."""
    if param.HasField("solver_type"):
        return _SOLVER_TYPE_NAMES[SolverParameter.SolverType.Name(param.solver_type)]
    return param.type


def _summary(param: SolverParameter) -> str:
    policy = param.lr_policy
    extra = {
        "step": f"gamma {param.gamma:g} every {param.stepsize}",
        "exp": f"gamma {param.gamma:g}",
        "inv": f"gamma {param.gamma:g}, power {param.power:g}",
        "multistep": f"gamma {param.gamma:g} at {list(param.stepvalue)}",
        "poly": f"power {param.power:g}",
        "sigmoid": f"gamma {param.gamma:g}, stepsize {param.stepsize}",
    }.get(policy, "")
    text = (
        f"{_solver_type(param)}, base_lr {param.base_lr:g}, lr_policy {policy}"
        + (f" ({extra})" if extra else "")
        + f", max_iter {param.max_iter}"
    )
    if param.iter_size > 1:
        text += f" x iter_size {param.iter_size}"
    text += f", momentum {param.momentum:g}, weight_decay {param.weight_decay:g}"
    if len(param.test_iter):
        text += f"; tests {list(param.test_iter)} batches every {param.test_interval} iterations"
    return text


def resolve_net_path(written: str, solver_path: Path, cwd: Path) -> tuple[list[Path], Path | None]:
    """Where Caffe would look (the working directory) and next to the solver; the first found."""
    p = Path(written)
    if p.is_absolute():
        tried = [p]
    else:
        tried = [cwd / p, solver_path.resolve().parent / p]
    unique: list[Path] = []
    for t in tried:
        if t not in unique:
            unique.append(t)
    found = next((t for t in unique if t.is_file()), None)
    return unique, found


def _net_requests(
    param: SolverParameter, input_stages: list[str]
) -> list[tuple[str, str, list[str], str | NetParameter]]:
    """(role, phase, stages, path-or-inline) for every net the solver makes Caffe build."""
    train_stages = list(param.train_state.stage) + input_stages
    out: list[tuple[str, str, list[str], str | NetParameter]] = []
    for role in ("net", "train_net", "net_param", "train_net_param"):
        if param.HasField(role):
            out.append((role, "TRAIN", train_stages, getattr(param, role)))
    generic = [r for r in out if r[0] in ("net", "net_param")]
    if generic and len(param.test_iter):
        role, _, _, what = generic[0]
        seen: set[tuple[str, ...]] = set()
        for i in range(len(param.test_iter)):
            state = param.test_state[i] if i < len(param.test_state) else None
            stages = (list(state.stage) if state else []) + input_stages
            if tuple(stages) not in seen:
                seen.add(tuple(stages))
                out.append((role, "TEST", stages, what))
    for i, written in enumerate(param.test_net):
        stages = list(param.test_state[i].stage) if i < len(param.test_state) else []
        out.append(("test_net", "TEST", stages + input_stages, written))
    for inline in param.test_net_param:
        out.append(("test_net_param", "TEST", input_stages, inline))
    return out


def check_solver(
    source: Source,
    stages: list[str] | None = None,
    input_shapes: dict[str, Shape] | None = None,
    cwd: Path | None = None,
) -> SolverCheck:
    """Check a solver file and every net it names.

    Raises:
        CocotuneError: the solver itself is invalid (all its problems at once). Problems of
            the nets it names are kept in :attr:`NetCheck.error` so that every net is tried.
    """
    from cocotune.frontend.load import load_net, net_from_records, upgrade_and_filter

    items = parse_text(source)
    param, tree = fill_message_from_text(source, items, SolverParameter, "solver")
    raise_problems(tree.all_problems())
    _caffe_rules(source, param, tree)
    settings = [(f.name, _value(f), _shown(f), f.line) for f in items if isinstance(f, TextField)]
    cwd = cwd or Path.cwd()
    nets: list[NetCheck] = []
    for role, phase, net_stages, what in _net_requests(param, list(stages or [])):
        if isinstance(what, str):
            check = NetCheck(role, phase, net_stages, what)
            tried, found = resolve_net_path(what, Path(source.path), cwd)
            check.tried = [str(t) for t in tried]
            if found is None:
                nets.append(check)
                continue
            check.found = str(found)
            try:
                check.net = load_net(
                    found, phase=phase, stages=net_stages, input_shapes=input_shapes
                )
            except CocotuneError as exc:
                check.error = exc
        else:
            check = NetCheck(role, phase, net_stages, "(inline)", found=source.path)
            positions = tree.fields[role][0].children or PositionTree()
            if role == "test_net_param":
                index = sum(1 for n in nets if n.role == role)
                positions = tree.fields[role][index].children or PositionTree()
            try:
                parsed = upgrade_and_filter(
                    source, ParsedNet(what, positions, []), phase, net_stages
                )
                check.net = net_from_records(source, parsed, phase, input_shapes)
            except CocotuneError as exc:
                check.error = exc
        nets.append(check)
    return SolverCheck(source.path, settings, _summary(param), nets)


def render_text(result: SolverCheck) -> tuple[str, str]:
    """(stdout, stderr) of ``cocotune check SOLVER``: settings and net tables; net errors."""
    from cocotune.report import net_summary, render_table

    out = [f"solver {result.path} (SolverParameter, checked against caffe.proto)"]
    width = max((len(name) for name, *_ in result.settings), default=0)
    out.extend(f"  {name.ljust(width)}  {shown}" for name, _, shown, _ in result.settings)
    out.append(f"settings: {result.summary}")
    err: list[str] = []
    missing: dict[str, list[NetCheck]] = {}
    for n in result.nets:
        if n.found is None:
            missing.setdefault(n.written, []).append(n)
    for written, checks in missing.items():
        roles = sorted({c.role for c in checks})
        phases = " and ".join(sorted({c.phase for c in checks}, reverse=True))
        out.append(
            f"{'/'.join(roles)} \"{written}\" ({phases}): not found; looked at "
            + " and ".join(checks[0].tried)
            + " (Caffe reads it relative to the working directory)"
        )
    for n in result.nets:
        if n.found is None:
            continue
        stages = f", stages {', '.join(n.stages)}" if n.stages else ""
        where = "" if n.written == "(inline)" else f" -> {n.found}"
        out.append("")
        out.append(f"{n.role} ({n.phase} phase{stages}): {n.written}{where}")
        if n.error is not None:
            out.append("  the net has errors (see stderr)")
            err.append(n.error.render())
        else:
            assert n.net is not None, "a net that was found is either loaded or has an error"
            out.append(render_table(net_summary(n.net)).rstrip("\n"))
            err.extend(f"note: {note}" for note in n.net.notes)
    return "\n".join(out) + "\n", "\n".join(err)


def _settings_dict(settings: list[tuple[str, object, str, int]]) -> dict:
    """Field → value; a repeated field (test_iter, stepvalue) → the list of its values."""
    repeated = {fd.name for fd in caffe_pb2.SolverParameter.DESCRIPTOR.fields if fd.is_repeated}
    out: dict = {}
    for name, value, _, _ in settings:
        if name in repeated:
            out.setdefault(name, []).extend(value if isinstance(value, list) else [value])
        else:
            out[name] = value
    return out


def to_json(result: SolverCheck) -> dict:
    from cocotune.report import net_summary

    nets = []
    for n in result.nets:
        entry: dict = {
            "role": n.role,
            "phase": n.phase,
            "stages": n.stages,
            "written": n.written,
            "tried": n.tried,
            "found": n.found,
        }
        if n.net is not None:
            entry["summary"] = net_summary(n.net)
            entry["notes"] = list(n.net.notes)
        if n.error is not None:
            entry["error"] = n.error.render()
        nets.append(entry)
    return {
        "solver": result.path,
        "settings": _settings_dict(result.settings),
        "summary": result.summary,
        "nets": nets,
    }
