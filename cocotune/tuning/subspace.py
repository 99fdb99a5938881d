"""Subspace files: the pruned configurations to explore, read, written and sampled.

See docs/design.md §4.

One configuration per line, one rate (fraction of filters *removed*) per module::

    # res2a res2b res3a res3b
    0.3 0.5 0   0.7
    30% 30% 50% 70%
    res2a=0.3, res3a=0.5          # named form: modules not named are unpruned

Separators are spaces, tabs and commas; ``#`` starts a comment; blank lines are ignored; a
configuration that repeats an earlier one is dropped with a warning. A ``.json`` file (or one
whose text starts with ``[``) holds a list of rate lists or of ``{module: rate}`` objects; it is
read with :mod:`json` only, never pickle or eval, because subspaces come from other tools.

The parser is hand-written rather than a Lark grammar: a line is a flat list of tokens, and
the errors worth giving ("line has 3 rates for 6 modules", "did you mean 'res2a'?") are about
the meaning of tokens, not their syntax.

:func:`sample_subspace` draws configurations whose model sizes spread evenly between the
smallest and the largest, as the Wootz paper did: plain random draws pile up in the middle
(a sum of per-module sizes is close to normal) and leave the small models -- the interesting
ones -- nearly unexplored.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cocotune.errors import Position, SubspaceError, read_text_source
from cocotune.ir.net import Net
from cocotune.tuning.blocks import format_rate
from cocotune.tuning.pruning import analyze_pruning

__all__ = [
    "Subspace",
    "SubspaceErrors",
    "format_subspace",
    "no_modules_error",
    "parse_rate",
    "parse_rate_list",
    "parse_subspace",
    "parse_subspace_text",
    "sample_subspace",
]

Config = dict[str, float]


@dataclass(frozen=True)
class Subspace:
    """The configurations of a subspace file, in file order, duplicates dropped.

    Attributes:
        path: the file, as shown in messages.
        modules: the net's modules, in order.
        configs: module -> rate for every module (unnamed modules are 0).
        lines: the line each configuration was written on (1-based).
        warnings: messages for the user (``path:line: warning: ...``), e.g. dropped duplicates.
    """

    path: str
    modules: tuple[str, ...]
    configs: list[Config]
    lines: list[int]
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.configs)

    def rows(self) -> list[tuple[float, ...]]:
        """Each configuration as rates in module order."""
        return [tuple(c[m] for m in self.modules) for c in self.configs]


class SubspaceErrors(SubspaceError):
    """Every bad line (and every bad token of a line) of a subspace file, reported at once:
    fixing a 500-line file one error per run is not a workflow."""

    def __init__(self, path: str, errors: list[SubspaceError]) -> None:
        lines = sorted({e.line for e in errors if e.line})
        shown = ", ".join(str(n) for n in lines[:20]) + (", ..." if len(lines) > 20 else "")
        super().__init__(
            f"{path}: {len(errors)} errors on {len(lines)} line{'s' if len(lines) != 1 else ''} "
            f"({shown})"
        )
        self.errors = list(errors)

    def render(self) -> str:
        return "\n".join([*(e.render() for e in self.errors), f"error: {self.message}"])


def _raise_all(path: str, errors: list[SubspaceError]) -> None:
    """Raise nothing, the one error, or all of them as :class:`SubspaceErrors`."""
    flat = [e for err in errors for e in (err.errors if isinstance(err, SubspaceErrors) else [err])]
    if len(flat) == 1:
        raise flat[0]
    if flat:
        raise SubspaceErrors(path, flat)


def no_modules_error(prototxt: str | Path | None = None) -> SubspaceError:
    """ "Nothing to prune", with the ``cocotune modules`` command that fixes it."""
    import shlex

    if prototxt is None:
        return SubspaceError(
            "the net has no module { } blocks: nothing to prune",
            notes=["add them with: cocotune modules NET.prototxt > NET-modules.prototxt"],
        )
    src = Path(prototxt)
    out = src.with_name(f"{src.stem}-modules{src.suffix or '.prototxt'}")
    return SubspaceError(
        f"{prototxt}: the net has no module {{ }} blocks: nothing to prune",
        notes=[
            f"add them with: cocotune modules {shlex.quote(str(src))} > "
            f"{shlex.quote(str(out))}",
            "(it groups layers by name; the default pattern fits ResNet names such as "
            "res2a_branch2a/bn2a_branch2a; other nets: --by 'REGEX' whose first group names "
            f"the block), then use {shlex.quote(str(out))} instead",
        ],
    )


# ---------------------------------------------------------------------------------------------
# Rates
# ---------------------------------------------------------------------------------------------

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


class _RateError(ValueError):
    """A token that is not a valid rate; ``message`` is for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def parse_rate(token: str) -> float:
    """``"0.3"`` -> 0.3, ``"30%"`` -> 0.3; a rate is in [0, 1), a percentage in [0, 100).

    Raises:
        ValueError: with a message naming the token and what was expected.
    """
    text = token.strip()
    percent = text.endswith("%")
    number = text[:-1].strip() if percent else text
    if not _NUMBER.fullmatch(number):
        raise _RateError(f"'{token}' is not a rate (write 0.3, 30% or module=0.3)")
    value = float(number)
    if percent:
        if not 0 <= value < 100:
            raise _RateError(
                f"percentage '{token}' is not in [0%, 100%) "
                "(a rate is the share of filters removed; 100% would remove all)"
            )
        return value / 100
    if value < 0:
        raise _RateError(f"rate '{token}' is negative (rates are in [0, 1))")
    if value >= 1:
        hint = f"; did you mean {token}%?" if 2 <= value < 100 else ""
        raise _RateError(
            f"rate '{token}' is not below 1 (a rate is the fraction of filters removed, "
            f"in [0, 1){hint})"
        )
    return value


def parse_rate_list(text: str) -> list[float]:
    """``"0.3,0.5,70%"`` -> [0.3, 0.5, 0.7] (for ``--rates``); duplicates removed, order kept."""
    rates: list[float] = []
    for token in (t for t in re.split(r"[\s,]+", text) if t):
        rate = parse_rate(token)
        if all(format_rate(rate) != format_rate(r) for r in rates):
            rates.append(rate)
    if not rates:
        raise _RateError(f"no rates in '{text}' (write e.g. 0.3,0.5,0.7)")
    return rates


# ---------------------------------------------------------------------------------------------
# Text form
# ---------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"(?P<name>[^\s,=#]+)\s*=\s*(?P<value>[^\s,=#]*)"  # res2a=0.3 (or res2a = 0.3)
    r"|(?P<bare>[^\s,=#]+)"  # 0.3, 30%
    r"|(?P<junk>=[^\s,#]*)"  # a stray '='
)


@dataclass(frozen=True)
class _Token:
    text: str
    col: int  # 1-based
    name: str | None = None  # module name, for the named form
    value: str = ""  # the rate text


class _Reader:
    """Turns lines into configurations, raising positioned errors."""

    def __init__(self, path: str, text: str, modules: Sequence[str]) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.modules = tuple(modules)

    def error(self, message: str, line: int, col: int = 0, notes=None) -> SubspaceError:
        source = self.lines[line - 1] if 0 < line <= len(self.lines) else None
        return SubspaceError(message, Position(self.path, line, col), source, notes)

    def tokens(self, line_no: int) -> list[_Token]:
        text = self.lines[line_no - 1].split("#", 1)[0]
        out = []
        for m in _TOKEN.finditer(text):
            if m.group("junk") is not None:
                raise self.error(
                    f"'{m.group('junk')}' has no module name before '='", line_no, m.start() + 1
                )
            if m.group("name") is not None and _NUMBER.fullmatch(m.group("name").rstrip("%")):
                eq = m.group(0).index("=")  # "0 =0.3": a rate, then a stray '='
                raise self.error(
                    f"'{m.group(0)[eq:]}' has no module name before '='",
                    line_no,
                    m.start() + eq + 1,
                )
            if m.group("name") is not None:
                out.append(_Token(m.group(0), m.start() + 1, m.group("name"), m.group("value")))
            else:
                out.append(_Token(m.group(0), m.start() + 1, None, m.group(0)))
        return out

    def rate(self, token: _Token, line_no: int) -> float:
        try:
            return parse_rate(token.value)
        except _RateError as exc:
            if token.name is not None and not token.value:
                raise self.error(
                    f"'{token.text}' gives no rate for module '{token.name}'", line_no, token.col
                ) from None
            col = token.col + (len(token.text) - len(token.value) if token.name else 0)
            raise self.error(exc.message, line_no, col) from None

    def config(self, tokens: list[_Token], line_no: int) -> Config:
        named = [t for t in tokens if t.name is not None]
        bare = [t for t in tokens if t.name is None]
        if named and bare:
            second = max(named[0], bare[0], key=lambda t: t.col)
            raise self.error(
                f"line mixes named ('{named[0].text}') and positional ('{bare[0].text}') rates; "
                "use one form per line",
                line_no,
                second.col,
            )
        if named:
            return self.named(named, line_no)
        return self.positional(bare, line_no)

    def positional(self, tokens: list[_Token], line_no: int) -> Config:
        rates, bad = [], []
        for t in tokens:
            try:
                rates.append(self.rate(t, line_no))
            except SubspaceError as exc:
                bad.append(exc)
        _raise_all(self.path, bad)
        if len(rates) != len(self.modules):
            where = tokens[len(self.modules)] if len(rates) > len(self.modules) else tokens[0]
            raise self.error(
                f"line has {len(rates)} rate{'s' if len(rates) != 1 else ''} for "
                f"{len(self.modules)} modules ({', '.join(self.modules)})"
                + (f"; '{where.text}' is one too many" if len(rates) > len(self.modules) else ""),
                line_no,
                where.col,
            )
        return dict(zip(self.modules, rates))

    def named(self, tokens: list[_Token], line_no: int) -> Config:
        config = dict.fromkeys(self.modules, 0.0)
        seen: set[str] = set()
        bad: list[SubspaceError] = []
        for t in tokens:
            try:
                self.named_token(t, line_no, config, seen)
            except SubspaceError as exc:
                bad.append(exc)
        _raise_all(self.path, bad)
        return config

    def named_token(self, t: _Token, line_no: int, config: Config, seen: set[str]) -> None:
        """Check one ``module=rate`` token and set its rate in ``config``."""
        name = t.name
        assert name is not None, "named() only gets tokens of the named form"
        if name not in config:
            close = difflib.get_close_matches(name, self.modules, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise self.error(
                f"unknown module '{name}'{hint}",
                line_no,
                t.col,
                notes=[f"the net's modules: {', '.join(self.modules)}"],
            )
        if name in seen:
            raise self.error(f"module '{name}' is given twice on this line", line_no, t.col)
        seen.add(name)
        config[name] = self.rate(t, line_no)


def parse_subspace_text(path: str, text: str, module_names: Sequence[str]) -> Subspace:
    """Parse a subspace given as text (text or JSON form); ``path`` is used in messages."""
    modules = tuple(module_names)
    if not modules:
        raise no_modules_error()
    if Path(path).suffix.lower() == ".json" or text.lstrip().startswith("["):
        entries = _json_entries(path, text, modules)
    else:
        reader = _Reader(path, text, modules)
        entries, errors = [], []
        for line_no in range(1, len(reader.lines) + 1):
            try:
                tokens = reader.tokens(line_no)
                if tokens:
                    entries.append((reader.config(tokens, line_no), line_no))
            except SubspaceError as exc:
                errors.append(exc)
        _raise_all(path, errors)
    return _dedupe(path, modules, entries)


def parse_subspace(path: str | Path, module_names: Sequence[str]) -> Subspace:
    """Read a subspace file for a net with modules ``module_names`` (in Prototxt order).

    Raises:
        SubspaceError: at ``path:line:col`` with the offending token: wrong number of rates,
            a rate outside [0, 1) or a percentage outside [0%, 100%), an unknown module, a
            token that is not a rate, named and positional rates mixed on one line, no
            configurations at all.
        InputFileError: the file is missing, empty or not text.
    """
    return parse_subspace_text(str(path), read_text_source(path, "subspace file"), module_names)


def _dedupe(path: str, modules: tuple[str, ...], entries: list[tuple[Config, int]]) -> Subspace:
    if not entries:
        raise SubspaceError("no configurations (only comments and blank lines)", Position(path, 1))
    configs, lines, warnings = [], [], []
    first: dict[tuple[str, ...], int] = {}
    for config, line in entries:
        key = tuple(format_rate(config[m]) for m in modules)
        if key in first:
            warnings.append(
                f"{path}:{line}: warning: configuration repeats line {first[key]}; dropped"
            )
            continue
        first[key] = line
        configs.append(config)
        lines.append(line)
    return Subspace(path, modules, configs, lines, warnings)


# ---------------------------------------------------------------------------------------------
# JSON form
# ---------------------------------------------------------------------------------------------


def _json_entries(path: str, text: str, modules: tuple[str, ...]) -> list[tuple[Config, int]]:
    """Each entry of a JSON subspace with the line it starts on."""
    lines = text.splitlines()

    def error(message: str, offset: int | None = None, line: int = 1, col: int = 0):
        if offset is not None:
            line = text.count("\n", 0, offset) + 1
            col = offset - (text.rfind("\n", 0, offset) + 1) + 1
        source = lines[line - 1] if 0 < line <= len(lines) else None
        return SubspaceError(message, Position(path, line, col), source)

    def reject_constant(name: str):
        raise ValueError(f"{name} is not a rate")

    try:
        data = json.loads(text, parse_constant=reject_constant)
    except json.JSONDecodeError as exc:
        raise error(f"not valid JSON: {exc.msg}", exc.pos) from None
    except ValueError as exc:
        raise error(f"not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise error("a JSON subspace is a list of rate lists or of {module: rate} objects", 0)
    entries = []
    for n, (item, offset) in enumerate(zip(data, _item_offsets(text, len(data))), 1):
        config = _json_config(item, n, modules, lambda message, at=offset: error(message, at))
        entries.append((config, text.count("\n", 0, offset) + 1))
    return entries


def _item_offsets(text: str, count: int) -> list[int]:
    """Where each item of the (valid) top-level JSON list starts in ``text``."""
    decoder = json.JSONDecoder()
    i = text.index("[") + 1
    offsets = []
    for _ in range(count):
        while text[i] in " \t\r\n,":
            i += 1
        offsets.append(i)
        _, i = decoder.raw_decode(text, i)
    return offsets


def _json_rate(value, what: str, error) -> float:
    if isinstance(value, str):
        try:
            return parse_rate(value)
        except _RateError as exc:
            raise error(f"{what}: {exc.message}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(f'{what}: {json.dumps(value)} is not a rate (write 0.3 or "30%")')
    try:
        return parse_rate(repr(float(value)))
    except _RateError as exc:
        raise error(f"{what}: {exc.message}") from None


def _json_config(item, n: int, modules: tuple[str, ...], error) -> Config:
    if isinstance(item, list):
        if len(item) != len(modules):
            raise error(
                f"entry {n} has {len(item)} rates for {len(modules)} modules ({', '.join(modules)})"
            )
        return {m: _json_rate(v, f"entry {n}, module '{m}'", error) for m, v in zip(modules, item)}
    if isinstance(item, dict):
        config = dict.fromkeys(modules, 0.0)
        for name, value in item.items():
            if name not in config:
                close = difflib.get_close_matches(name, modules, n=1, cutoff=0.6)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise error(f"entry {n}: unknown module '{name}'{hint}")
            config[name] = _json_rate(value, f"entry {n}, module '{name}'", error)
        return config
    raise error(f"entry {n} is {json.dumps(item)}; expected a list of rates or a {{module: rate}}")


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def format_subspace(
    modules: Sequence[str],
    configs: Sequence[Mapping[str, float]],
    comments: Sequence[str] = (),
    notes: Sequence[str] | None = None,
) -> str:
    """The canonical text form: header comments naming the modules, then one aligned row each.

    ``comments`` are extra header lines; ``notes`` (one per configuration) become trailing
    ``# ...`` comments. :func:`parse_subspace` reads the result back to the same rates.
    """
    modules = list(modules)
    cells = [[format_rate(c.get(m, 0.0)) for m in modules] for c in configs]
    widths = [max([len(m), *(len(row[i]) for row in cells)]) for i, m in enumerate(modules)]
    out = [f"# {c}" if c else "#" for c in comments]
    out.append("# one configuration per line, one rate (fraction of filters removed) per module:")
    out.append("#   " + " ".join(modules))
    for i, row in enumerate(cells):
        line = " ".join(v.ljust(w) for v, w in zip(row, widths))
        if notes is not None and notes[i]:
            line += f"  # {notes[i]}"
        out.append(line.rstrip())
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------------------------

ENUMERATE_LIMIT = 200_000
"""Up to this many possible configurations are all costed; beyond it a random pool is drawn."""


def sample_subspace(net: Net, n: int, rates: Sequence[float], seed: int = 0) -> list[Config]:
    """``n`` distinct configurations whose parameter counts spread evenly over their range.

    Every module with a prunable layer takes one of ``rates`` (0 only if listed); a module
    without one stays at 0, since its rate would change nothing. Candidates are all
    configurations (or, beyond :data:`ENUMERATE_LIMIT`, a random pool of them); their size
    range is cut into ``n`` equal bins, one candidate is drawn at random from each bin, and a
    bin with none takes the unused candidate nearest its centre. When ``n`` is at least the
    number of configurations, all are returned. Deterministic for a given ``seed``; the result
    is sorted by size (then rates).
    """
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    choices, table, base = _size_table(net, rates)
    rng = np.random.default_rng(seed)
    candidates = _candidates(choices, rng, n)
    sizes = base + sum(table[j][candidates[:, j]] for j in range(len(choices)))
    if n >= len(candidates) and _total(choices) == len(candidates):
        picked = list(range(len(candidates)))
    else:
        picked = _stratified(sizes, n, rng)
    order = sorted(picked, key=lambda i: (sizes[i], tuple(candidates[i])))
    modules = net.module_names
    return [{m: float(choices[j][candidates[i, j]]) for j, m in enumerate(modules)} for i in order]


def _size_table(net: Net, rates: Sequence[float]):
    """Per module: its rate choices, its parameter count at each; plus the outside count."""
    if not net.modules:
        raise no_modules_error(getattr(getattr(net, "source", None), "path", None))
    analysis = analyze_pruning(net)
    prunable = analysis.prunable
    if not any(prunable.values()):
        raise SubspaceError(
            "no module has a prunable layer (every Convolution/InnerProduct is an exit)",
            notes=[f"{name}: {why}" for name, why in analysis.exits.items()][:8],
        )
    for r in rates:
        if not 0 <= r < 1:
            raise SubspaceError(f"rate {r!r} is not in [0, 1)")
    unique = sorted({float(format_rate(r)) for r in rates})
    choices, table = [], []
    for m in net.module_names:
        options = unique if prunable[m] else [0.0]
        choices.append(np.array(options))
        table.append(np.array([analysis.module_cost(m, r).params for r in options], np.int64))
    return choices, table, analysis.outside_cost().params


def _total(choices) -> int:
    return math.prod(len(c) for c in choices)


def _candidates(choices, rng: np.random.Generator, n: int) -> np.ndarray:
    """Index rows (one column per module): every configuration, or a large random pool."""
    counts = [len(c) for c in choices]
    total = _total(choices)
    if total <= ENUMERATE_LIMIT:
        return np.indices(counts).reshape(len(counts), -1).T
    pool = max(50 * n, 20_000)
    rows = np.stack([rng.integers(0, k, size=pool) for k in counts], axis=1)
    return np.unique(rows, axis=0)


def _stratified(sizes: np.ndarray, n: int, rng: np.random.Generator) -> list[int]:
    """One random candidate per equal-width size bin; empty bins take the nearest unused one."""
    if n >= len(sizes):
        return list(range(len(sizes)))
    # Sorted by size, ties in random order, so which of equal-sized candidates wins is seeded.
    shuffled = rng.permutation(len(sizes))
    order = shuffled[np.argsort(sizes[shuffled], kind="stable")]
    sorted_sizes = sizes[order].astype(np.float64)
    lo, hi = sorted_sizes[0], sorted_sizes[-1]
    if hi == lo:
        return [int(i) for i in rng.choice(len(sizes), size=n, replace=False)]
    edges = lo + (hi - lo) * np.arange(n + 1) / n
    starts = np.searchsorted(sorted_sizes, edges[:-1], side="left")
    ends = np.searchsorted(sorted_sizes, edges[1:], side="left")
    ends[-1] = len(sorted_sizes)
    used = np.zeros(len(sizes), dtype=bool)
    empty = []
    for b in range(n):
        if ends[b] > starts[b]:
            k = int(rng.integers(starts[b], ends[b]))
            used[k] = True
        else:
            empty.append(b)
    for b in empty:
        centre = (edges[b] + edges[b + 1]) / 2
        used[_nearest_unused(sorted_sizes, used, centre)] = True
    return [int(order[k]) for k in np.flatnonzero(used)]


def _nearest_unused(sorted_sizes: np.ndarray, used: np.ndarray, target: float) -> int:
    """Position of the unused candidate whose size is nearest ``target`` (there is one)."""
    right = int(np.searchsorted(sorted_sizes, target))
    left = right - 1
    while True:
        while left >= 0 and used[left]:
            left -= 1
        while right < len(used) and used[right]:
            right += 1
        if left < 0:
            return right
        if right >= len(used):
            return left
        return left if target - sorted_sizes[left] <= sorted_sizes[right] - target else right
