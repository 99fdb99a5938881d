"""Linear-time Sequitur (Nevill-Manning & Witten, JAIR 1997): a hierarchical grammar for a sequence.

CoCo-Tune concatenates the pruned configurations, one ``(module, rate)`` symbol per module, and
asks Sequitur which runs of modules repeat; those runs are the candidate tuning blocks
(:mod:`cocotune.tuning.blocks`). Sequitur reads the sequence left to right and keeps two
invariants after every symbol:

* **digram uniqueness** -- no pair of adjacent symbols occurs twice in the grammar (two
  overlapping occurrences, as in ``a a a``, count as one: they cannot both be replaced);
* **rule utility** -- every rule other than the start rule is referenced at least twice.

A repeated digram becomes a rule (or reuses the rule whose whole body it is); a rule whose
reference count drops to one is inlined again.

Why the data layout: pure Python pays for every object and method call, and the benchmark feeds
10^6 symbols. Nodes of the doubly-linked rule bodies are therefore integers indexing parallel
lists (``_sym``, ``_prev``, ``_next``); each rule body is a circular list closed by a *guard*
node, so "is this the whole body of a rule" is two comparisons. Symbols are integer codes
(terminal ``t`` -> ``2t``, rule ``r`` -> ``2r + 1``, guard of rule ``r`` -> ``-1 - r``), so a
digram is one integer key in a dict that maps it to the node where it starts. Everything is a
loop over an explicit work list: no recursion, whatever the input length.

Note:
    The digrams a step creates are checked through a LIFO work list instead of the reference
    implementation's recursive calls: same order (left digram first), no recursion. Where the
    reference code skips a check on the strength of an argument, this one checks anyway: the
    right-hand digram after an overlapping left one, the junctions left by inlining a rule, the
    rule-utility of a new rule's *second* symbol, and a new occurrence that is itself a whole
    rule body (reused rather than leaving a one-item rule). The last two were never reached in
    ~10^5 random sequences; they cost nothing and make the invariants unconditional, which
    ``Grammar.violations`` verifies in the tests.

Example:
    >>> g = build_grammar("abcdbcabcd")
    >>> print(g)
    R0 -> R1 R2 R1
    R1 -> a R2 d
    R2 -> b c
    >>> "".join(g.expand(0))
    'abcdbcabcd'
"""

from __future__ import annotations

import gc
from collections import deque
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["Grammar", "RuleRef", "build_grammar"]

# Digram key = first code * _KEY + second code; codes stay far below 2**40.
_KEY = 1 << 40


@dataclass(frozen=True, slots=True)
class RuleRef:
    """A reference to a rule inside a rule body (everything else in a body is a terminal)."""

    id: int

    def __repr__(self) -> str:
        return f"R{self.id}"


Item = Any  # a terminal (any hashable value) or a RuleRef


class Grammar:
    """The grammar Sequitur built: rule id -> body, rule 0 generating the whole input.

    Rule ids are compact and numbered in the order a breadth-first walk from the start rule
    first meets them, so the same input always prints the same grammar.

    Parameters:
        rules: rule id -> list of items (terminals or :class:`RuleRef`).
    """

    start = 0

    def __init__(self, rules: dict[int, list[Item]]) -> None:
        self.rules = rules

    def __len__(self) -> int:
        return len(self.rules)

    def __str__(self) -> str:
        return "\n".join(
            f"R{rid} -> " + " ".join(repr(x) if isinstance(x, RuleRef) else str(x) for x in body)
            for rid, body in self.rules.items()
        )

    def size(self) -> int:
        """Total number of items in all rule bodies (the grammar's length)."""
        return sum(len(body) for body in self.rules.values())

    def expand(self, rule_id: int = 0) -> list[Item]:
        """The terminals a rule generates, left to right (iterative: deep grammars are fine)."""
        out: list[Item] = []
        stack = [iter(self.rules[rule_id])]
        while stack:
            for item in stack[-1]:
                if isinstance(item, RuleRef):
                    stack.append(iter(self.rules[item.id]))
                    break
                out.append(item)
            else:
                stack.pop()
        return out

    def uses(self) -> dict[int, int]:
        """Rule id -> number of references to it in all rule bodies (0 for the start rule)."""
        counts = dict.fromkeys(self.rules, 0)
        for body in self.rules.values():
            for item in body:
                if isinstance(item, RuleRef):
                    counts[item.id] = counts.get(item.id, 0) + 1
        return counts

    def violations(self) -> list[str]:
        """Every way the grammar breaks Sequitur's invariants; empty when it is sound.

        Checks digram uniqueness (overlapping occurrences excepted), rule utility, that every
        non-start rule has at least two items, that references resolve, that the start rule is
        never referenced, and that the rules form a DAG reachable from the start rule.
        """
        problems: list[str] = []
        for rid, count in self.uses().items():
            if rid not in self.rules:
                problems.append(f"reference to missing rule R{rid}")
            elif rid == self.start and count:
                problems.append("the start rule is referenced")
            elif rid != self.start and count < 2:
                problems.append(f"rule utility: R{rid} is used {count} time(s)")
        for rid, body in self.rules.items():
            if rid != self.start and len(body) < 2:
                problems.append(f"R{rid} has {len(body)} item(s)")
        seen: dict[tuple[Hashable, Hashable], tuple[int, int]] = {}
        for rid, body in self.rules.items():
            for i in range(len(body) - 1):
                key = (body[i], body[i + 1])
                if key not in seen:
                    seen[key] = (rid, i)
                    continue
                orid, oi = seen[key]
                if orid == rid and i == oi + 1:  # overlapping (a a a): not a repetition
                    continue
                problems.append(f"digram {key!r} occurs in R{orid}[{oi}] and R{rid}[{i}]")
        problems.extend(self._dag_problems())
        return problems

    def check_invariants(self) -> None:
        """Raise AssertionError listing the violations (an internal error, never user input)."""
        problems = self.violations()
        if problems:
            raise AssertionError("Sequitur invariants broken:\n  " + "\n  ".join(problems))

    def _dag_problems(self) -> list[str]:
        # Iterative three-colour DFS: finds cycles and rules the start rule cannot reach.
        colour = dict.fromkeys(self.rules, 0)  # 0 new, 1 on stack, 2 done
        problems = []
        if self.start not in self.rules:
            return ["no start rule"]
        stack = [(self.start, iter(self.rules[self.start]))]
        colour[self.start] = 1
        while stack:
            rid, items = stack[-1]
            for item in items:
                if isinstance(item, RuleRef) and item.id in colour:
                    if colour[item.id] == 1:
                        problems.append(f"cycle through R{item.id}")
                    elif colour[item.id] == 0:
                        colour[item.id] = 1
                        stack.append((item.id, iter(self.rules[item.id])))
                        break
            else:
                colour[rid] = 2
                stack.pop()
        problems.extend(f"R{rid} is unreachable" for rid, c in colour.items() if c == 0)
        return problems


def build_grammar(sequence: Iterable[Hashable]) -> Grammar:
    """Run Sequitur over ``sequence`` (any hashable terminals) in O(n) time and space.

    To keep rules inside units of the sequence (networks, sentences), put a separator that
    occurs nowhere else after each unit: a digram containing it is unique, so no rule spans it.
    """
    # The cyclic garbage collector rescans every live object whenever the output's RuleRefs
    # and lists pile up (a fifth of the run at 10^6 symbols); nothing here makes cycles.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        builder = _Builder()
        builder.feed(sequence)
        return builder.grammar()
    finally:
        if was_enabled:
            gc.enable()


class _Builder:
    """The mutable state of one Sequitur run (see the module docstring for the layout)."""

    def __init__(self) -> None:
        self._sym: list[int] = []  # node -> code; guards hold -1 - rule
        self._prev: list[int] = []  # node -> previous node; -1 marks a deleted node
        self._next: list[int] = []
        self._guard: list[int] = []  # rule -> its guard node (-1 once the rule is inlined)
        self._count: list[int] = []  # rule -> references to it
        self._index: dict[int, int] = {}  # digram key -> node where its indexed copy starts
        self._todo: list[int] = []  # nodes whose digram must be checked, last one first
        self._terminals: list[Hashable] = []  # terminal code >> 1 -> terminal
        self._codes: dict[Hashable, int] = {}  # terminal -> code
        self._new_rule()  # rule 0 is the start rule

    # -- construction -------------------------------------------------------------------------

    def _new_node(self, code: int) -> int:
        node = len(self._sym)
        self._sym.append(code)
        self._prev.append(node)
        self._next.append(node)
        return node

    def _new_rule(self) -> int:
        rule = len(self._guard)
        self._guard.append(self._new_node(-1 - rule))
        self._count.append(0)
        return rule

    def feed(self, sequence: Iterable[Hashable]) -> None:
        """Append each terminal to the start rule and restore the invariants after each one.

        The hot path (append, index the new digram, stop when it is new) is inlined: it runs
        once per input symbol and a method call costs as much as the work it would do.
        """
        sym, prev, nxt, index = self._sym, self._prev, self._next, self._index
        todo, check, codes = self._todo, self._check, self._codes
        guard = self._guard[0]
        terminals = self._terminals
        for item in sequence:
            code = codes.get(item)
            if code is None:
                code = codes[item] = 2 * len(terminals)
                terminals.append(item)
            last = prev[guard]
            node = len(sym)
            sym.append(code)
            prev.append(last)
            nxt.append(guard)
            nxt[last] = node
            prev[guard] = node
            a = sym[last]
            if a < 0:
                continue
            key = a * _KEY + code
            other = index.get(key)
            if other is None:
                index[key] = last
                continue
            if nxt[other] == last:  # overlapping: "a a a"
                continue
            check(last)
            while todo:
                check(todo.pop())

    # -- the digram index -----------------------------------------------------------------------

    def _forget(self, node: int) -> None:
        """Drop the index entry of the digram starting at ``node`` if it is this occurrence.

        Its overlapping twin (``a a a``: the digram one to the left or right) was never indexed,
        so it is queued to be indexed (or matched) once the current step is over.
        """
        sym, nxt = self._sym, self._next
        a = sym[node]
        if a < 0:
            return
        right = nxt[node]
        b = sym[right]
        if b < 0:
            return
        key = a * _KEY + b
        if self._index.get(key) == node:
            del self._index[key]
            if a == b:
                left = self._prev[node]
                if sym[left] == a:
                    self._todo.append(left)
                if sym[nxt[right]] == a:
                    self._todo.append(right)

    def _check(self, node: int) -> None:
        """Enforce digram uniqueness for the digram starting at ``node``."""
        if self._prev[node] < 0:
            return  # deleted since it was queued
        sym, nxt = self._sym, self._next
        a = sym[node]
        right = nxt[node]
        b = sym[right]
        if a < 0 or b < 0:
            return
        key = a * _KEY + b
        other = self._index.get(key)
        if other is None:
            self._index[key] = node
        elif other != node and nxt[other] != node and right != other:
            self._match(node, other)

    # -- rules ----------------------------------------------------------------------------------

    def _whole_body(self, node: int) -> int:
        """The rule whose entire body is the digram at ``node``, or -1 (never the start rule)."""
        g = self._prev[node]
        code = self._sym[g]
        if code < -1 and self._next[self._next[node]] == g:
            return -1 - code
        return -1

    def _match(self, new: int, old: int) -> None:
        """``new`` repeats the indexed digram at ``old``: replace both by one rule."""
        rule = self._whole_body(old)
        if rule >= 0:
            self._substitute(new, rule)
        else:
            rule = self._whole_body(new)
            if rule >= 0:  # the new copy is a rule's whole body: reuse that rule (defensive)
                self._substitute(old, rule)
                self._index[self._sym[new] * _KEY + self._sym[self._next[new]]] = new
            else:
                sym = self._sym
                a, b = sym[new], sym[self._next[new]]
                rule = self._new_rule()
                g = self._guard[rule]
                first, second = self._new_node(a), self._new_node(b)
                self._link(g, first)
                self._link(first, second)
                self._link(second, g)
                for code in (a, b):
                    if code & 1:
                        self._count[code >> 1] += 1
                self._substitute(old, rule)
                self._substitute(new, rule)
                self._index[a * _KEY + b] = first
        # Rule utility: only the rules in the matched digram lost references, and each keeps
        # one in ``rule``'s body; inline the ones left with that single reference.
        g = self._guard[rule]
        for node in (self._next[g], self._prev[g]):
            code = self._sym[node]
            if code & 1 and self._count[code >> 1] == 1:
                self._inline(node)

    def _link(self, left: int, right: int) -> None:
        self._next[left] = right
        self._prev[right] = left

    def _substitute(self, node: int, rule: int) -> None:
        """Replace the digram starting at ``node`` by a reference to ``rule``."""
        prev, nxt, sym, count = self._prev, self._next, self._sym, self._count
        left = prev[node]
        second = nxt[node]
        right = nxt[second]
        self._forget(left)
        self._forget(node)
        self._forget(second)
        for dead in (node, second):
            prev[dead] = -1
            code = sym[dead]
            if code & 1:
                count[code >> 1] -= 1
        ref = self._new_node(2 * rule + 1)
        count[rule] += 1
        self._link(left, ref)
        self._link(ref, right)
        self._todo.append(ref)  # checked second
        self._todo.append(left)  # checked first

    def _inline(self, node: int) -> None:
        """Replace the last reference to a rule by the rule's body, and delete the rule."""
        prev, nxt = self._prev, self._next
        rule = self._sym[node] >> 1
        g = self._guard[rule]
        first, last = nxt[g], prev[g]
        left, right = prev[node], nxt[node]
        self._forget(left)
        self._forget(node)
        prev[node] = -1
        prev[g] = -1
        self._guard[rule] = -1
        self._count[rule] = 0
        self._link(left, first)
        self._link(last, right)
        self._todo.append(last)
        self._todo.append(left)

    # -- output ---------------------------------------------------------------------------------

    def grammar(self) -> Grammar:
        """Copy the live rules out, renumbered breadth-first from the start rule."""
        sym, nxt, terminals = self._sym, self._next, self._terminals
        new_id = {0: 0}
        rules: dict[int, list[Item]] = {}
        queue = deque([0])
        while queue:
            rule = queue.popleft()
            g = self._guard[rule]
            body: list[Item] = []
            node = nxt[g]
            while node != g:
                code = sym[node]
                if code & 1:
                    old = code >> 1
                    if old not in new_id:
                        new_id[old] = len(new_id)
                        queue.append(old)
                    body.append(RuleRef(new_id[old]))
                else:
                    body.append(terminals[code >> 1])
                node = nxt[node]
            rules[new_id[rule]] = body
        return Grammar(dict(sorted(rules.items())))
