"""Schema-free text tree → ``caffe_pb2`` messages, checked field by field against caffe.proto.

Every value is checked through the message descriptors generated from ``proto/caffe.proto``:
unknown fields (with a "did you mean"), wrong value types, integers out of range, bad enum
names (listing the valid ones), singular fields given twice. Positions are kept beside the
messages in a :class:`PositionTree`, because protobuf messages cannot carry them.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar, cast

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from cocotune.errors import CocotuneError, Position, PrototxtSyntaxError, SchemaError
from cocotune.frontend.forks import ForkFieldError, fork_of
from cocotune.frontend.parser import TextField, TextMessage, TextModule, TextScalar
from cocotune.frontend.source import Source

if TYPE_CHECKING:
    from cocotune._proto.caffe_pb2 import NetParameter

M = TypeVar("M", bound=Message)


@dataclass
class FieldPosition:
    """Where one occurrence of a field was written, and the positions inside it."""

    name: Position
    value: Position
    children: PositionTree | None = None


@dataclass
class PositionTree:
    """Positions of the fields of one message: field name → occurrences in order."""

    fields: dict[str, list[FieldPosition]] = field(default_factory=dict)
    # Fields a Caffe fork defines (skipped): (name, where written, the fork).
    fork_fields: list[tuple[str, Position, str]] = field(default_factory=list)
    # Schema errors found in this message's own fields (not in sub-messages); the fields
    # were skipped so that reading could go on and every problem be reported at once.
    problems: list[CocotuneError] = field(default_factory=list)

    def find(self, path: str, index: int = 0) -> Position | None:
        """Position of the value at a dotted path, e.g. ``"convolution_param.kernel_size"``.

        Falls back to the deepest enclosing field that exists, so an error about a default
        value still points into the right block.
        """
        tree: PositionTree | None = self
        last: Position | None = None
        parts = path.split(".")
        for k, part in enumerate(parts):
            if tree is None or part not in tree.fields:
                return last
            occurrences = tree.fields[part]
            occ = occurrences[min(index, len(occurrences) - 1) if k == len(parts) - 1 else 0]
            last = occ.value if k == len(parts) - 1 else occ.name
            tree = occ.children
        return last

    def record(self, name: str, pos: FieldPosition) -> None:
        self.fields.setdefault(name, []).append(pos)

    def all_problems(self, skip: tuple[str, ...] = ()) -> list[CocotuneError]:
        """Problems of this message and all its sub-messages, except fields named in ``skip``."""
        out = list(self.problems)
        for name, occurrences in self.fields.items():
            if name in skip:
                continue
            for occ in occurrences:
                if occ.children is not None:
                    out.extend(occ.children.all_problems())
        return out

    def all_fork_fields(self) -> list[tuple[str, Position, str]]:
        out = list(self.fork_fields)
        for occurrences in self.fields.values():
            for occ in occurrences:
                if occ.children is not None:
                    out.extend(occ.children.all_fork_fields())
        return out


@dataclass
class ParsedModule:
    """A ``module`` block: its name, where it is, and which layers (indices in net.layer) it holds."""

    name: str
    position: Position
    layer_indices: list[int]


_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_FLOAT_TYPES = {FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE}
_TYPE_WORDS = {
    FieldDescriptor.TYPE_BOOL: "a boolean (true or false)",
    FieldDescriptor.TYPE_STRING: "a quoted string",
    FieldDescriptor.TYPE_BYTES: "a quoted string",
    FieldDescriptor.TYPE_MESSAGE: "a message in { }",
}


def _type_word(fd: FieldDescriptor) -> str:
    if fd.type in _INT_RANGES:
        return "an unsigned integer" if _INT_RANGES[fd.type][0] == 0 else "an integer"
    if fd.type in _FLOAT_TYPES:
        return "a number"
    if fd.type == FieldDescriptor.TYPE_ENUM:
        return f"one of {', '.join(v.name for v in _enum_of(fd).values)}"
    return _TYPE_WORDS[fd.type]


def _enum_of(fd: FieldDescriptor) -> EnumDescriptor:
    """The enum type of an enum field (the descriptor's attribute is None for other types)."""
    assert fd.enum_type is not None, f"{fd.full_name} is not an enum field"
    return fd.enum_type


def parse_int(text: str) -> int | None:
    """Integer literal as protobuf's tokenizer reads it (decimal, 0x hex, leading-0 octal)."""
    neg = text.startswith("-")
    body = text[1:] if neg else text
    try:
        if body[:2].lower() == "0x":
            val = int(body[2:], 16)
        elif len(body) > 1 and body.startswith("0") and body.isdigit():
            val = int(body, 8)
        elif body.isdigit():
            val = int(body, 10)
        else:
            return None
    except ValueError:
        return None
    return -val if neg else val


def parse_float(text: str) -> float | None:
    t = text.lower()
    sign = -1.0 if t.startswith("-") else 1.0
    body = t.lstrip("-")
    if body in ("inf", "infinity"):
        return sign * math.inf
    if body == "nan":
        return math.nan
    as_int = parse_int(text)
    if as_int is not None:
        return float(as_int)
    if body.endswith("f") and not body.startswith("0x"):
        body = body[:-1]
    try:
        return sign * float(body)
    except ValueError:
        return None


class MessageFiller:
    """Fills protobuf messages from text fields, collecting positions and schema errors.

    A field with a schema error (unknown name, wrong value) is skipped and its error kept in
    the :class:`PositionTree`, so that one run reports every problem of the file; the caller
    decides when to raise (see ``cocotune.frontend.problems``).
    """

    def __init__(self, source: Source) -> None:
        self.source = source

    def _pos(self, line: int, col: int) -> Position:
        return self.source.position(line, col)

    def _err(self, cls, message: str, line: int, col: int, notes=None):
        return self.source.error(cls, message, line, col, notes)

    def fill(self, msg: Message, fields: list[TextField], where: str) -> PositionTree:
        """Set ``fields`` on ``msg``; ``where`` names the message in errors (e.g. 'layer')."""
        tree = PositionTree()
        # protobuf's stubs type DESCRIPTOR as the pure-Python or the upb class (one API).
        desc = cast(Descriptor, msg.DESCRIPTOR)
        first_seen: dict[str, TextField] = {}
        for f in fields:
            try:
                self._fill_field(msg, desc, f, where, tree, first_seen)
            except SchemaError as exc:
                tree.problems.append(exc)
        return tree

    def _fill_field(
        self,
        msg: Message,
        desc: Descriptor,
        f: TextField,
        where: str,
        tree: PositionTree,
        first_seen: dict[str, TextField],
    ) -> None:
        fd = desc.fields_by_name.get(f.name)
        if fd is None:
            fork = fork_of(desc.name, f.name)
            if fork is None:
                raise self._unknown_field(f, desc, where)
            tree.fork_fields.append((f.name, self._pos(f.line, f.col), fork))
            exc = self._err(
                ForkFieldError,
                f"unsupported fork field '{f.name}' in {where} "
                f"({f.name}: {fork} field in {desc.name})",
                f.line,
                f.col,
            )
            exc.field_name = f.name
            tree.problems.append(exc)
            return
        repeated = fd.is_repeated
        if not repeated and f.name in first_seen:
            prev = first_seen[f.name]
            raise self._err(
                SchemaError,
                f"field '{f.name}' in {where} is given twice (first at line {prev.line});"
                " it holds a single value",
                f.line,
                f.col,
            )
        first_seen[f.name] = f
        values = f.value if isinstance(f.value, list) else [f.value]
        if isinstance(f.value, list) and not repeated:
            raise self._err(
                SchemaError,
                f"field '{f.name}' in {where} holds a single value, not a list",
                f.line,
                f.col,
            )
        for value in values:
            tree.record(f.name, self._set(msg, fd, f, value, repeated))

    def _set(
        self, msg: Message, fd: FieldDescriptor, f: TextField, value, repeated: bool
    ) -> FieldPosition:
        name_pos = self._pos(f.line, f.col)
        if fd.type == FieldDescriptor.TYPE_MESSAGE:
            if not isinstance(value, TextMessage):
                raise self._err(
                    SchemaError,
                    f"field '{f.name}' is a message: write {f.name} {{ ... }}",
                    value.line,
                    value.col,
                )
            sub = getattr(msg, f.name).add() if repeated else getattr(msg, f.name)
            if not repeated:
                sub.SetInParent()
            children = self.fill(sub, value.fields, f.name)
            return FieldPosition(name_pos, name_pos, children)
        if isinstance(value, TextMessage):
            raise self._err(
                SchemaError,
                f"field '{f.name}' expects {_type_word(fd)}, not a message",
                f.line,
                f.col,
            )
        converted = self._convert(fd, f, value)
        if repeated:
            getattr(msg, f.name).append(converted)
        else:
            setattr(msg, f.name, converted)
        return FieldPosition(name_pos, self._pos(value.line, value.col))

    def _convert(self, fd: FieldDescriptor, f: TextField, value: TextScalar):
        def bad(extra: str = ""):
            shown = repr(value.value) if value.kind == "string" else value.value
            return self._err(
                SchemaError,
                f"field '{f.name}' expects {_type_word(fd)}, found {shown}{extra}",
                value.line,
                value.col,
            )

        t = fd.type
        if t in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
            if value.kind != "string":
                raise bad()
            return value.value.encode("utf-8") if t == FieldDescriptor.TYPE_BYTES else value.value
        if value.kind == "string":
            raise bad()
        if t in _INT_RANGES:
            num = parse_int(value.value) if value.kind == "number" else None
            if num is None:
                raise bad()
            lo, hi = _INT_RANGES[t]
            if not lo <= num <= hi:
                raise bad(f" (out of range {lo}..{hi})")
            return num
        if t in _FLOAT_TYPES:
            real = parse_float(value.value)
            if real is None:
                raise bad()
            return real
        if t == FieldDescriptor.TYPE_BOOL:
            word = value.value
            if word in ("true", "True", "t", "1"):
                return True
            if word in ("false", "False", "f", "0"):
                return False
            raise bad()
        if t == FieldDescriptor.TYPE_ENUM:
            enum = _enum_of(fd)
            if value.kind == "identifier":
                ev = enum.values_by_name.get(value.value)
                if ev is not None:
                    return ev.number
            else:
                num = parse_int(value.value)
                if num is not None and num in enum.values_by_number:
                    return num
            names = [v.name for v in enum.values]
            close = difflib.get_close_matches(value.value.upper(), names, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise self._err(
                SchemaError,
                f"invalid value '{value.value}' for {f.name}{hint}",
                value.line,
                value.col,
                notes=[f"valid values of {enum.name}: {', '.join(names)}"],
            )
        raise bad()  # pragma: no cover - every proto2 scalar type is handled above

    def _unknown_field(self, f: TextField, desc: Descriptor, where: str):
        names = [fd.name for fd in desc.fields]
        close = difflib.get_close_matches(f.name, names, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return self._err(SchemaError, f"unknown field '{f.name}' in {where}{hint}", f.line, f.col)


@dataclass
class ParsedNet:
    """The NetParameter as written (before upgrades), with positions and modules."""

    net: NetParameter
    positions: PositionTree
    modules: list[ParsedModule]


def build_net_parameter(
    source: Source, items: list[TextField | TextModule], net_cls: type[NetParameter]
) -> ParsedNet:
    """Fill a NetParameter from the parsed document, expanding ``module`` blocks in place.

    Layers inside a module are appended to ``net.layer`` in document order, so the network
    order is the one the user wrote; the module only records membership.
    """
    filler = MessageFiller(source)
    net = net_cls()
    plain: list[TextField] = []
    modules: list[ParsedModule] = []
    # Fill in document order, keeping module layers in place: collect plain fields, but
    # flush `layer` fields through the same path as module layers so indices line up.
    ordered_layers: list[tuple[TextField, str | None]] = []
    seen_modules: dict[str, ParsedModule] = {}
    for item in items:
        if isinstance(item, TextModule):
            mod = _read_module(source, item, seen_modules)
            modules.append(mod)
            for lf in item.fields:
                if lf.name == "layer":
                    ordered_layers.append((lf, mod.name))
        elif item.name == "layer":
            ordered_layers.append((item, None))
        else:
            plain.append(item)
    positions = filler.fill(net, plain, "the net")
    by_name = {m.name: m for m in modules}
    for lf, module_name in ordered_layers:
        if not isinstance(lf.value, TextMessage):
            raise source.error(
                SchemaError, "field 'layer' is a message: write layer { ... }", lf.line, lf.col
            )
        layer = net.layer.add()
        children = filler.fill(layer, lf.value.fields, "layer")
        pos = source.position(lf.line, lf.col)
        positions.record("layer", FieldPosition(pos, pos, children))
        if module_name is not None:
            by_name[module_name].layer_indices.append(len(net.layer) - 1)
    return ParsedNet(net, positions, modules)


def _read_module(source: Source, item: TextModule, seen: dict[str, ParsedModule]) -> ParsedModule:
    from cocotune.errors import NetError

    name: str | None = None
    n_layers = 0
    for f in item.fields:
        if f.name == "name":
            if not isinstance(f.value, TextScalar) or f.value.kind != "string":
                raise source.error(
                    SchemaError, "a module's name must be a quoted string", f.line, f.col
                )
            if name is not None:
                raise source.error(SchemaError, "module has two names", f.line, f.col)
            name = f.value.value
        elif f.name == "layer":
            n_layers += 1
        elif f.name == "module":
            raise source.error(NetError, "modules cannot be nested", f.line, f.col)
        elif f.name == "layers":
            raise source.error(
                SchemaError,
                "a module holds new-style 'layer { ... }' blocks, not V1 'layers'",
                f.line,
                f.col,
            )
        else:
            close = difflib.get_close_matches(f.name, ["name", "layer"], n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise source.error(
                SchemaError,
                f"unknown field '{f.name}' in module{hint}: a module holds a name and layers",
                f.line,
                f.col,
            )
    if not name:
        raise source.error(NetError, 'module has no name (add name: "...")', item.line, item.col)
    if n_layers == 0:
        raise source.error(NetError, f"module '{name}' holds no layer", item.line, item.col)
    if name in seen:
        prev = seen[name].position
        raise source.error(
            NetError,
            f"module '{name}' is defined twice (first at line {prev.line})",
            item.line,
            item.col,
        )
    mod = ParsedModule(name, source.position(item.line, item.col), [])
    seen[name] = mod
    return mod


def fill_message_from_text(
    source: Source, items: list[TextField | TextModule], msg_cls: type[M], where: str
) -> tuple[M, PositionTree]:
    """Fill any top-level message (e.g. SolverParameter) from a parsed document."""
    fields: list[TextField] = []
    for item in items:
        if isinstance(item, TextModule):
            raise source.error(
                PrototxtSyntaxError,
                f"'module' blocks belong in a net, not a {where}",
                item.line,
                item.col,
            )
        fields.append(item)
    msg = msg_cls()
    tree = MessageFiller(source).fill(msg, fields, where)
    return msg, tree
