"""Everything wrong with a net, gathered before anything is raised, and reported as one error.

A training net written for a Caffe fork (SSD, Faster R-CNN) has fork-only fields in several
places and several layer types cocotune does not support. Stopping at the first one would make
the user fix (or look up) one thing per run; instead the reader skips what it cannot use and
this module turns the lot into one :class:`ErrorGroup`, in file order, each with its
file:line:col and caret. A single problem keeps the plain one-error format.

What blocks depends on the phase: a layer the phase rules leave out is never run, so its
unsupported type or fork field only becomes a note (listed with the errors when there are
errors anyway). A typo is a typo anywhere: Caffe itself rejects the whole file.
"""

from __future__ import annotations

import difflib
from typing import TypeVar

from cocotune.errors import CocotuneError, ErrorGroup, UnsupportedLayerError
from cocotune.frontend.forks import ForkFieldError
from cocotune.frontend.source import Source
from cocotune.frontend.upgrade import LayerRecord
from cocotune.ir.shapes import KNOWN_UNSUPPORTED, LAYER_RULES

# An ErrorGroup longer than this is cut (a file of another kind gives one error per line).
MAX_SHOWN = 100

E = TypeVar("E", bound=CocotuneError)


def _with_prefix(exc: E, prefix: str, suffix: str = "") -> E:
    """The same error (class, place, caret, notes, tags) with the layer named in front."""
    new = type(exc)(prefix + exc.message + suffix, exc.position, exc.source_line, exc.notes)
    for key in ("unsupported_type", "layer_label", "field_name", "outside"):
        if hasattr(exc, key):
            setattr(new, key, getattr(exc, key))
    return new


def layer_label(rec: LayerRecord) -> str:
    if rec.param.name:
        return f"layer '{rec.param.name}'"
    return f"a {rec.param.type} layer" if rec.param.type else "a layer"


def unsupported_type(source: Source, rec: LayerRecord) -> UnsupportedLayerError | None:
    """The error for a layer whose type has no shape rule (None when the type is supported)."""
    layer = rec.param
    if not layer.type or layer.type in LAYER_RULES:
        return None
    why = KNOWN_UNSUPPORTED.get(layer.type)
    if layer.type == "Python":
        why = (
            f"Python layer {layer.python_param.module}.{layer.python_param.layer}: "
            "runs user code that cocotune cannot see"
        )
    text = f"{layer_label(rec)}: unsupported type '{layer.type}'"
    if why:
        text += f" ({why})"
    else:
        close = difflib.get_close_matches(layer.type, list(LAYER_RULES), n=1, cutoff=0.7)
        if close:
            text += f" (did you mean '{close[0]}'?)"
    pos = rec.positions.find("type") or rec.positions.find("name")
    exc = source.error_at(UnsupportedLayerError, text, pos)
    exc.unsupported_type, exc.layer_label = layer.type, layer_label(rec)
    return exc


def _layer_problems(rec: LayerRecord, seen: set[int]) -> list[CocotuneError]:
    """Schema problems inside one layer, named after it.

    A layer of an unsupported type is reported for its type; its own fork ``*_param`` block
    (permute_param in a Permute layer) would only repeat that, so it is left out.
    """
    redundant = set()
    if rec.param.type and rec.param.type not in LAYER_RULES:
        redundant = {id(e) for e in rec.positions.problems if isinstance(e, ForkFieldError)}
    out = []
    for exc in rec.positions.all_problems():
        if id(exc) in redundant:
            seen.add(id(exc))
        elif id(exc) not in seen:
            seen.add(id(exc))
            out.append(_with_prefix(exc, f"{layer_label(rec)}: "))
    return out


def _sort_key(exc: CocotuneError) -> tuple:
    pos = exc.position
    return (0, pos.line, pos.col) if pos else (1, 0, 0)


def _group_by_type(errors: list[CocotuneError]) -> list[CocotuneError]:
    """One entry per unsupported type: its first layer with a caret, the others in a note."""
    # Only errors tagged with an unsupported type (UnsupportedLayerError) have a key.
    others: dict[tuple | None, list[UnsupportedLayerError]] = {}
    firsts: list[CocotuneError] = []

    def key(exc: CocotuneError) -> tuple | None:
        # Python layers run different user code each: every one is shown on its own.
        kind = getattr(exc, "unsupported_type", "Python")
        return None if kind == "Python" else (kind, getattr(exc, "outside", False))

    for exc in errors:
        kind = key(exc)
        if kind is None or not isinstance(exc, UnsupportedLayerError):
            firsts.append(exc)
        elif kind not in others:
            others[kind] = []
            firsts.append(exc)
        else:
            others[kind].append(exc)
    out = []
    for exc in firsts:
        rest = others.get(key(exc), [])
        if rest:
            names = ", ".join(
                o.layer_label.removeprefix("layer ")
                + (f" (line {o.position.line})" if o.position else "")
                for o in rest
            )
            exc = _with_prefix(exc, "")
            exc.notes.append(f"{len(rest)} more '{rest[0].unsupported_type}' layer(s): {names}")
        out.append(exc)
    return out


def raise_problems(problems: list[CocotuneError]) -> None:
    """Raise nothing, the one problem, or an ErrorGroup summarising all of them."""
    if not problems:
        return
    everything = problems
    problems = _group_by_type(sorted(problems, key=_sort_key))
    if len(problems) == 1:
        raise problems[0]
    kinds = sorted({p.unsupported_type for p in problems if hasattr(p, "unsupported_type")})
    counts = {
        k: sum(1 for p in everything if getattr(p, "unsupported_type", None) == k) for k in kinds
    }
    forks = sorted({p.field_name for p in problems if hasattr(p, "field_name")})
    other = sum(
        1 for p in problems if not hasattr(p, "unsupported_type") and not hasattr(p, "field_name")
    )
    parts = []
    if kinds:
        parts.append(
            "unsupported types: "
            + ", ".join(f"{k} ({counts[k]} layer{'s' if counts[k] > 1 else ''})" for k in kinds)
        )
    if forks:
        parts.append(f"fork fields: {', '.join(forks)}")
    if other:
        word = "other error" if parts else "error"
        parts.append(f"{other} {word}{'s' if other > 1 else ''}")
    shown = problems[:MAX_SHOWN]
    cut = f"; the first {MAX_SHOWN} are shown" if len(problems) > MAX_SHOWN else ""
    raise ErrorGroup(f"{len(everything)} problems ({'; '.join(parts)}){cut}", shown)


def check_net(
    source: Source,
    net_level: list[CocotuneError],
    kept: list[LayerRecord],
    excluded: list[LayerRecord],
    phase: str,
) -> list[str]:
    """Raise every problem of the net that blocks ``phase``; return notes for the others.

    ``net_level`` are the schema problems outside any layer. Layers in ``kept`` run in the
    phase; layers in ``excluded`` do not, so only their schema errors (not their fork fields
    or unsupported types) block.
    """
    seen: set[int] = set()
    blocking: list[CocotuneError] = []
    for exc in net_level:
        if id(exc) not in seen:
            seen.add(id(exc))
            blocking.append(exc)
    outside: list[UnsupportedLayerError] = []
    for rec in kept:
        blocking.extend(_layer_problems(rec, seen))
        unsupported = unsupported_type(source, rec)
        if unsupported is not None:
            blocking.append(unsupported)
    suffix = f" [this layer is not in the {phase} phase]"
    for rec in excluded:
        for exc in _layer_problems(rec, seen):
            if isinstance(exc, ForkFieldError):
                outside.append(_with_prefix(exc, "", suffix))
                outside[-1].outside = True
            else:
                blocking.append(exc)
        unsupported = unsupported_type(source, rec)
        if unsupported is not None:
            outside.append(_with_prefix(unsupported, "", suffix))
            outside[-1].outside = True
    if blocking:
        raise_problems([*blocking, *outside])
    outside.sort(key=_sort_key)
    return [f"{e.position}: {e.message}" if e.position else e.message for e in outside]


def check_records(source: Source, records: list[LayerRecord]) -> None:
    """Every problem of these layers (all of them run), raised at once."""
    check_net(source, [], records, [], "")
