"""Tuning blocks (docs/design.md §5): the runs of pruned modules worth pre-training once and reusing.

CoCo-Tune pre-trains a pruned module (or a run of consecutive ones) once and assembles every
configuration of the subspace from those pre-trained pieces. The best pieces are the runs that
recur in many configurations, and that is what a compression algorithm finds: write each
configuration as one ``(module, rate)`` symbol per module, concatenate them with a unique
separator after each, let Sequitur build a grammar, and walk its rules (see
:func:`select_blocks`).

Rates are compared by their canonical text (:func:`format_rate`), so ``0.1 + 0.2`` and ``0.3``
are the same symbol.

Example:
    >>> r = select_blocks(["m1", "m2"], [{"m1": 0.3, "m2": 0.5}, {"m1": 0.3, "m2": 0.5}])
    >>> [(b.id, b.modules, b.rates, b.frequency) for b in r.blocks]
    [('b0', ('m1', 'm2'), (0.3, 0.5), 2)]
    >>> r.composite
    (('b0',), ('b0',))
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import NamedTuple

from cocotune.errors import SubspaceError
from cocotune.tuning.sequitur import Grammar, RuleRef, build_grammar

__all__ = [
    "MODES",
    "Block",
    "Separator",
    "Symbol",
    "TuningBlocks",
    "build_sequence",
    "composite_vector",
    "format_rate",
    "rate_rows",
    "select_blocks",
]

MODES = ("sequitur", "module")
"""``sequitur``: blocks from the grammar (CoCo-Tune); ``module``: one block per pruned module."""

_ZERO = "0"


def format_rate(rate: float) -> str:
    """Canonical text of a pruning rate: ``0.3 -> "0.3"``, ``0 -> "0"``, ``0.125 -> "0.125"``.

    Rounded to 6 decimals first, so that float noise (``0.1 + 0.2``) never makes two symbols
    out of one rate.
    """
    value = round(float(rate), 6)
    if value == 0:
        return _ZERO
    return f"{value:.6f}".rstrip("0").rstrip(".")


class Symbol(NamedTuple):
    """One module at one rate: the terminal Sequitur sees. Prints as ``module@rate``."""

    module: str
    rate: str  # canonical, see format_rate

    def __str__(self) -> str:
        return f"{self.module}@{self.rate}"


@dataclass(frozen=True, slots=True)
class Separator:
    """The unique end marker after configuration ``index``: no rule can span it."""

    index: int

    def __str__(self) -> str:
        return f"#{self.index}"


@dataclass(frozen=True)
class Block:
    """A tuning block: consecutive modules ``modules`` at ``rates``, pre-trained together.

    Attributes:
        id: ``b0``, ``b1``, ... ordered by the first configuration containing the block, then
            by its first module's position, then by length.
        start: position of the first module in the network's module order.
        frequency: number of configurations containing the block as consecutive modules.
        rule: the grammar rule it came from (``"r4"``), or None for a single module.
    """

    id: str
    start: int
    modules: tuple[str, ...]
    rates: tuple[float, ...]
    frequency: int
    rule: str | None = None

    @property
    def symbols(self) -> list[str]:
        """The block as ``module@rate`` symbols."""
        return [f"{m}@{format_rate(r)}" for m, r in zip(self.modules, self.rates)]

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "modules": list(self.modules),
            "rates": list(self.rates),
            "frequency": self.frequency,
        }


@dataclass(frozen=True)
class TuningBlocks:
    """The result of block selection for one subspace.

    Attributes:
        modules: the network's modules, in order.
        mode: one of :data:`MODES`.
        grammar: the Sequitur grammar (None in ``module`` mode, which skips Sequitur).
        blocks: the chosen blocks, in id order.
        composite: one tuple of block ids per configuration, in input order.
    """

    modules: tuple[str, ...]
    mode: str
    grammar: Grammar | None
    blocks: tuple[Block, ...]
    composite: tuple[tuple[str, ...], ...]

    def block(self, block_id: str) -> Block:
        for b in self.blocks:
            if b.id == block_id:
                return b
        raise KeyError(block_id)

    def grammar_json(self) -> dict[str, list[str]]:
        """Rule id (``r0`` is the start rule) -> items as ``module@rate``, ``rN`` or ``#i``."""
        if self.grammar is None:
            return {}
        return {
            f"r{rid}": [f"r{x.id}" if isinstance(x, RuleRef) else str(x) for x in body]
            for rid, body in self.grammar.rules.items()
        }

    def to_json(self) -> dict:
        """The ``cocotune blocks --json`` document (docs/design.md §5)."""
        return {
            "grammar": self.grammar_json(),
            "blocks": [b.to_json() for b in self.blocks],
            "composite": [list(c) for c in self.composite],
        }


def rate_rows(
    modules: Sequence[str], configs: Sequence[Mapping[str, float]]
) -> list[tuple[str, ...]]:
    """Each configuration as canonical rate strings in module order (a missing module is 0).

    Raises:
        SubspaceError: a configuration names an unknown module or has a rate outside [0, 1).
    """
    position = {m: i for i, m in enumerate(modules)}
    if len(position) != len(modules):
        raise ValueError(f"duplicate module names in {list(modules)!r}")
    rows = []
    for n, config in enumerate(configs, 1):
        row = [_ZERO] * len(modules)
        for name, rate in config.items():
            if name not in position:
                raise SubspaceError(
                    f"configuration {n} names unknown module '{name}'",
                    notes=[f"modules: {', '.join(modules)}"],
                )
            if (
                not isinstance(rate, Real)
                or isinstance(rate, bool)
                or not math.isfinite(rate)
                or not 0 <= rate < 1
            ):
                raise SubspaceError(
                    f"configuration {n}: rate {rate!r} of module '{name}' is not in [0, 1)"
                )
            row[position[name]] = format_rate(rate)
        rows.append(tuple(row))
    return rows


def build_sequence(
    modules: Sequence[str], configs: Sequence[Mapping[str, float]]
) -> list[Symbol | Separator]:
    """The sequence Sequitur reads: every module's symbol, a unique separator after each config."""
    return _sequence(modules, rate_rows(modules, configs))


def _sequence(modules: Sequence[str], rows: Sequence[tuple[str, ...]]) -> list[Symbol | Separator]:
    seq: list[Symbol | Separator] = []
    for index, row in enumerate(rows):
        seq.extend(Symbol(m, r) for m, r in zip(modules, row))
        seq.append(Separator(index))
    return seq


def select_blocks(
    modules: Sequence[str],
    configs: Sequence[Mapping[str, float]],
    mode: str = "sequitur",
) -> TuningBlocks:
    """Choose the tuning blocks of a subspace and each configuration's composite vector.

    ``sequitur`` mode walks the grammar's DAG from the start rule's children. A rule is chosen
    when its expansion has a pruned module, at least two configurations contain it, and no
    descendant (sub-rule or symbol) is contained in more configurations than the rule itself;
    otherwise the walk descends into its children. A symbol the walk reaches is chosen as a
    single-module block when its rate is > 0 and two or more configurations contain it; one
    that occurs once is not worth pre-training (that network starts from the full model's
    weights there).

    ``module`` mode (the paper's basic setting) skips the grammar: every (module, rate > 0)
    that occurs is a block.

    Parameters:
        modules: the network's module names, in network order.
        configs: module -> rate (fraction of filters removed); a missing module is 0.
        mode: one of :data:`MODES`.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    modules = tuple(modules)
    rows = rate_rows(modules, configs)
    counts = _Occurrences(rows)
    found: dict[Span, str | None]
    if mode == "module":
        grammar = None
        found = {(i, (rate,)): None for row in rows for i, rate in enumerate(row) if rate != _ZERO}
    else:
        grammar = build_grammar(_sequence(modules, rows))
        found = _walk(grammar, {m: i for i, m in enumerate(modules)}, counts)
    blocks = _number(found, modules, counts)
    composite = tuple(composite_vector(row, blocks) for row in rows)
    return TuningBlocks(modules, mode, grammar, tuple(blocks), composite)


def composite_vector(rates: Sequence[str], blocks: Sequence[Block]) -> tuple[str, ...]:
    """Block ids tiling one configuration (canonical rate strings), greedy longest-first.

    Scans the modules left to right and at each position takes the longest block whose rates
    match there; a position no block matches is skipped (that module starts from the full
    model's weights).
    """
    by_start: dict[int, list[tuple[int, tuple[str, ...], str]]] = {}
    for b in blocks:
        key = tuple(format_rate(r) for r in b.rates)
        by_start.setdefault(b.start, []).append((len(key), key, b.id))
    for candidates in by_start.values():
        candidates.sort(key=lambda c: -c[0])
    out = []
    i = 0
    while i < len(rates):
        for length, key, block_id in by_start.get(i, ()):
            if tuple(rates[i : i + length]) == key:
                out.append(block_id)
                i += length
                break
        else:
            i += 1
    return tuple(out)


class _Occurrences:
    """How many configurations contain a run of rates starting at a module, and the first one.

    One table per (start, length) pair that is asked about: a dict from the configurations'
    slices at that place to [count, first row]. Total cost: configurations x (distinct spans).
    """

    def __init__(self, rows: Sequence[tuple[str, ...]]) -> None:
        self._rows = rows
        self._tables: dict[tuple[int, int], dict[tuple[str, ...], list[int]]] = {}

    def __call__(self, start: int, rates: tuple[str, ...]) -> tuple[int, int]:
        """(number of configurations containing the run, index of the first such, or -1)."""
        key = (start, len(rates))
        table = self._tables.get(key)
        if table is None:
            table = {}
            end = start + len(rates)
            for index, row in enumerate(self._rows):
                entry = table.get(row[start:end])
                if entry is None:
                    table[row[start:end]] = [1, index]
                else:
                    entry[0] += 1
            self._tables[key] = table
        entry = table.get(rates)
        return (entry[0], entry[1]) if entry else (0, -1)


Span = tuple[int, tuple[str, ...]]  # (first module's position, rates)


def _walk(
    grammar: Grammar, position: dict[str, int], counts: _Occurrences
) -> dict[Span, str | None]:
    """The selection walk of :func:`select_blocks`: chosen span -> rule id (None for symbols)."""
    rules = grammar.rules
    span: dict[int, Span] = {}
    for rid in rules:
        if rid == grammar.start:
            continue
        expansion = grammar.expand(rid)
        if any(not isinstance(s, Symbol) for s in expansion):
            raise AssertionError(f"rule r{rid} spans a configuration separator")
        span[rid] = (position[expansion[0].module], tuple(s.rate for s in expansion))
    freq = {rid: counts(*sp)[0] for rid, sp in span.items()}

    def item_freq(item: Symbol | RuleRef) -> int:
        if isinstance(item, RuleRef):
            return freq[item.id]
        return counts(position[item.module], (item.rate,))[0]

    # Highest frequency among each rule's descendants, children before parents (iterative).
    top: dict[int, int] = {}
    for root in span:
        stack = [root]
        while stack:
            rid = stack[-1]
            if rid in top:
                stack.pop()
                continue
            pending = [x.id for x in rules[rid] if isinstance(x, RuleRef) and x.id not in top]
            if pending:
                stack.extend(pending)
                continue
            top[rid] = max(
                max(item_freq(x), top[x.id]) if isinstance(x, RuleRef) else item_freq(x)
                for x in rules[rid]
            )
            stack.pop()

    chosen: dict[Span, str | None] = {}
    visited: set[int] = set()
    stack = list(reversed(rules[grammar.start]))
    while stack:
        item = stack.pop()
        if isinstance(item, RuleRef):
            rid = item.id
            if rid in visited:
                continue
            visited.add(rid)
            start, rates = span[rid]
            pruned = any(r != _ZERO for r in rates)
            if pruned and freq[rid] >= 2 and freq[rid] == top[rid]:
                chosen.setdefault(span[rid], f"r{rid}")
            else:
                stack.extend(reversed(rules[rid]))
        elif isinstance(item, Symbol):
            if item.rate != _ZERO and item_freq(item) >= 2:
                chosen.setdefault((position[item.module], (item.rate,)), None)
    return chosen


def _number(
    found: Mapping[Span, str | None], modules: Sequence[str], counts: _Occurrences
) -> list[Block]:
    """Blocks with ids in order of first appearance (configuration, then position, length)."""
    info = []
    for (start, rates), rule in found.items():
        frequency, first = counts(start, rates)
        info.append((first, start, len(rates), rates, frequency, rule))
    info.sort()
    return [
        Block(
            id=f"b{n}",
            start=start,
            modules=tuple(modules[start : start + length]),
            rates=tuple(float(r) for r in rates),
            frequency=frequency,
            rule=rule,
        )
        for n, (_, start, length, rates, frequency, rule) in enumerate(info)
    ]
