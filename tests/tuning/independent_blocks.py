"""A second, deliberately naive implementation of DESIGN.md §5, to test blocks.py against.

Written from the design text alone. Only the Sequitur grammar builder is shared (the blocks
depend on the grammar's exact shape); the symbol encoding, frequencies, the selection walk,
block numbering and composite vectors are redone here the slow, obvious way: recursion, list
slicing, counting by scanning every configuration.
"""

from __future__ import annotations

from cocotune.tuning.sequitur import RuleRef, build_grammar


def rate_text(rate: float) -> str:
    """Rate as text via an integer number of millionths (0.1 + 0.2 -> "0.3", 0 -> "0")."""
    millionths = round(rate * 1_000_000)
    if millionths == 0:
        return "0"
    if millionths >= 1_000_000:
        return "1"
    return ("0." + str(millionths).rjust(6, "0")).rstrip("0")


def reference_blocks(
    modules: list[str], configs: list[dict[str, float]], mode: str = "sequitur"
) -> dict:
    """The ``cocotune blocks --json`` document for this subspace, computed naively."""
    rows = [[f"{m}@{rate_text(cfg.get(m, 0))}" for m in modules] for cfg in configs]

    def rate_of(symbol: str) -> str:
        return symbol.rsplit("@", 1)[1]

    def contains(row: list[str], pattern: list[str]) -> bool:
        n = len(pattern)
        return any(row[i : i + n] == pattern for i in range(len(row) - n + 1))

    def frequency(pattern: list[str]) -> int:
        return sum(1 for row in rows if contains(row, pattern))

    chosen: list[list[str]] = []
    grammar_json: dict[str, list[str]] = {}

    if mode == "module":
        for row in rows:
            for symbol in row:
                if rate_of(symbol) != "0" and [symbol] not in chosen:
                    chosen.append([symbol])
    else:
        sequence: list = []
        for i, row in enumerate(rows):
            sequence += row
            sequence.append(("end of network", i))
        grammar = build_grammar(sequence)
        for rid, body in grammar.rules.items():
            grammar_json[f"r{rid}"] = [
                (
                    f"r{x.id}"
                    if isinstance(x, RuleRef)
                    else (f"#{x[1]}" if isinstance(x, tuple) else x)
                )
                for x in body
            ]

        def below(item) -> list:
            """Every descendant of a rule (sub-rules and symbols), recursively."""
            out = []
            for child in grammar.rules[item.id]:
                out.append(child)
                if isinstance(child, RuleRef):
                    out += below(child)
            return out

        def item_frequency(item) -> int:
            if isinstance(item, RuleRef):
                return frequency(grammar.expand(item.id))
            return frequency([item])

        def visit(item) -> None:
            if isinstance(item, tuple):  # a separator
                return
            if isinstance(item, RuleRef):
                text = grammar.expand(item.id)
                f = frequency(text)
                highest = max(item_frequency(d) for d in below(item))
                if any(rate_of(s) != "0" for s in text) and f >= 2 and f == highest:
                    if text not in chosen:
                        chosen.append(text)
                else:
                    for child in grammar.rules[item.id]:
                        visit(child)
            elif rate_of(item) != "0" and frequency([item]) >= 2 and [item] not in chosen:
                chosen.append([item])

        for child in grammar.rules[0]:
            visit(child)

    def first_config(pattern: list[str]) -> int:
        return next(i for i, row in enumerate(rows) if contains(row, pattern))

    def first_module(pattern: list[str]) -> int:
        return modules.index(pattern[0].rsplit("@", 1)[0])

    chosen.sort(key=lambda p: (first_config(p), first_module(p), len(p)))
    ids = {tuple(p): f"b{i}" for i, p in enumerate(chosen)}

    composite = []
    for row in rows:
        vector, i = [], 0
        while i < len(row):
            fits = [p for p in chosen if row[i : i + len(p)] == p]
            if fits:
                best = max(fits, key=len)
                vector.append(ids[tuple(best)])
                i += len(best)
            else:
                i += 1
        composite.append(vector)

    return {
        "grammar": grammar_json,
        "blocks": [
            {
                "id": ids[tuple(p)],
                "modules": [s.rsplit("@", 1)[0] for s in p],
                "rates": [float(rate_of(s)) for s in p],
                "frequency": frequency(p),
            }
            for p in chosen
        ],
        "composite": composite,
    }
