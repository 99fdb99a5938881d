"""Sequitur: the two invariants, exact reconstruction, and the textbook cases."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from cocotune.tuning.sequitur import Grammar, RuleRef, build_grammar


def _sound(seq) -> Grammar:
    g = build_grammar(seq)
    g.check_invariants()
    assert g.expand(0) == list(seq)
    return g


# -- textbook cases ---------------------------------------------------------------------------


def test_classic_abcdbcabcd():
    # Nevill-Manning & Witten, Figure 1(c): S -> B A B, A -> b c, B -> a A d.
    g = _sound("abcdbcabcd")
    assert g.rules == {
        0: [RuleRef(1), RuleRef(2), RuleRef(1)],
        1: ["a", RuleRef(2), "d"],
        2: ["b", "c"],
    }


def test_three_in_a_row_make_no_rule():
    # "a a" and "a a" overlap in "a a a": replacing both is impossible, so no rule.
    assert _sound("aaa").rules == {0: ["a", "a", "a"]}


def test_four_in_a_row_make_one_rule():
    assert _sound("aaaa").rules == {0: [RuleRef(1), RuleRef(1)], 1: ["a", "a"]}


def test_rule_reused_when_digram_is_a_whole_body():
    # "ab" becomes a rule at the second "ab"; the third reuses it instead of a new rule.
    g = _sound("abxabyab")
    assert g.rules == {0: [RuleRef(1), "x", RuleRef(1), "y", RuleRef(1)], 1: ["a", "b"]}


def test_underused_rule_is_inlined():
    # "abc" twice: rule ab is formed first, then (ab)c; ab is then used once and inlined.
    g = _sound("abcabc")
    assert g.rules == {0: [RuleRef(1), RuleRef(1)], 1: ["a", "b", "c"]}


def test_overlap_bookkeeping_case_from_the_original_code():
    # The triple case the reference implementation comments on ("abbbabcbb").
    _sound("abbbabcbb")


def test_empty_and_single():
    assert _sound([]).rules == {0: []}
    assert _sound(["x"]).rules == {0: ["x"]}


def test_arbitrary_hashable_terminals():
    seq = [("conv1", "0.3"), ("conv2", "0.5"), None, ("conv1", "0.3"), ("conv2", "0.5"), 7]
    g = _sound(seq)
    assert g.rules[1] == [("conv1", "0.3"), ("conv2", "0.5")]


def test_long_runs_have_logarithmic_depth_and_no_recursion():
    # 2**16 identical symbols: a binary tower of 15 rules; expansion must not recurse.
    g = _sound(["a"] * 2**16)
    assert len(g.rules) == 16


def test_large_input_is_iterative():
    rng = random.Random(0)
    block = [rng.randrange(50) for _ in range(200)]
    seq = [x for _ in range(500) for x in block]  # 10^5 symbols, deep hierarchy
    _sound(seq)


def test_violations_detects_broken_grammars():
    g = Grammar({0: ["a", "b", "a", "b", RuleRef(1)], 1: ["c"]})
    problems = g.violations()
    assert any("digram ('a', 'b')" in p for p in problems)
    assert any("rule utility" in p for p in problems)
    assert any("1 item" in p for p in problems)
    assert Grammar({0: [RuleRef(1), RuleRef(1)], 1: [RuleRef(1), "a"]}).violations()


# -- random sequences -------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(st.lists(st.integers(0, 3), max_size=200))
def test_invariants_on_random_strings(seq):
    _sound(seq)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from("abc"), min_size=1, max_size=5), min_size=1, max_size=4),
    st.lists(st.integers(0, 3), max_size=80),
)
def test_invariants_on_repetitive_strings(pieces, picks):
    # Concatenated copies of a few short pieces: the regime where rules nest and get inlined.
    seq = [s for i in picks for s in pieces[i % len(pieces)]]
    _sound(seq)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.integers(0, 2), min_size=1, max_size=6), min_size=1, max_size=20))
def test_unique_separators_keep_rules_inside_units(units):
    seq = []
    for i, unit in enumerate(units):
        seq.extend(unit)
        seq.append(("sep", i))
    g = _sound(seq)
    for rid in g.rules:
        if rid != g.start:
            assert not any(isinstance(x, tuple) for x in g.expand(rid))
