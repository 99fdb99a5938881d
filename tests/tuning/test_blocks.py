"""Tuning-block selection (DESIGN §5): hand-worked examples, properties, and a naive twin."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cocotune.errors import SubspaceError
from cocotune.tuning.blocks import (
    Block,
    Separator,
    Symbol,
    build_sequence,
    composite_vector,
    format_rate,
    select_blocks,
)


def _load_independent():
    path = Path(__file__).with_name("independent_blocks.py")
    spec = importlib.util.spec_from_file_location("independent_blocks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reference_blocks = _load_independent().reference_blocks


def _configs(modules, *rows):
    return [dict(zip(modules, row)) for row in rows]


def _summary(result):
    return {(b.modules, b.rates): b.frequency for b in result.blocks}


# -- symbols and the sequence -----------------------------------------------------------------


@pytest.mark.parametrize(
    "rate, text",
    [
        (0, "0"),
        (0.0, "0"),
        (0.3, "0.3"),
        (0.1 + 0.2, "0.3"),
        (0.5, "0.5"),
        (0.125, "0.125"),
        (0.7000000001, "0.7"),
        (1e-9, "0"),
    ],
)
def test_format_rate(rate, text):
    assert format_rate(rate) == text


def test_sequence_has_every_module_and_a_unique_separator_per_configuration():
    seq = build_sequence(["a", "b"], [{"a": 0.3}, {"b": 0.1 + 0.2}])
    assert seq == [
        Symbol("a", "0.3"),
        Symbol("b", "0"),
        Separator(0),
        Symbol("a", "0"),
        Symbol("b", "0.3"),
        Separator(1),
    ]
    assert [str(s) for s in seq[:3]] == ["a@0.3", "b@0", "#0"]


def test_user_errors():
    with pytest.raises(SubspaceError, match="unknown module 'c'"):
        select_blocks(["a", "b"], [{"a": 0.3}, {"c": 0.5}])
    with pytest.raises(SubspaceError, match="not in \\[0, 1\\)"):
        select_blocks(["a"], [{"a": 1.0}])
    with pytest.raises(SubspaceError):
        select_blocks(["a"], [{"a": float("nan")}])
    with pytest.raises(ValueError, match="mode"):
        select_blocks(["a"], [{"a": 0.3}], mode="layer")


# -- the paper's examples ---------------------------------------------------------------------

FIG4_MODULES = ["1", "2", "3", "4", "5"]
# Four networks of five modules. Reconstructed so that DESIGN §5's stated answer holds (the
# paper's figure itself was not available): 1(.3) 2(.3) repeats but 2(.3) is more frequent on
# its own; 4(.5) 5(0) ends every network.
FIG4_CONFIGS = _configs(
    FIG4_MODULES,
    (0.3, 0.3, 0.3, 0.5, 0),
    (0.3, 0.3, 0.5, 0.5, 0),
    (0, 0.3, 0.3, 0.5, 0),
    (0, 0.5, 0.5, 0.5, 0),
)


def test_figure4_blocks():
    r = select_blocks(FIG4_MODULES, FIG4_CONFIGS)
    assert r.grammar_json() == {
        "r0": [
            "r1",
            "r2",
            "#0",
            "r1",
            "r3",
            "#1",
            "1@0",
            "2@0.3",
            "r2",
            "#2",
            "1@0",
            "2@0.5",
            "r3",
            "#3",
        ],
        "r1": ["1@0.3", "2@0.3"],
        "r2": ["3@0.3", "r4"],
        "r3": ["3@0.5", "r4"],
        "r4": ["4@0.5", "5@0"],
    }
    # {1(.3), 2(.3), 3(.3), 3(.5), r4 = 4(.5) 5(0)}
    assert [(b.id, b.modules, b.rates, b.frequency, b.rule) for b in r.blocks] == [
        ("b0", ("1",), (0.3,), 2, None),
        ("b1", ("2",), (0.3,), 3, None),
        ("b2", ("3",), (0.3,), 2, None),
        ("b3", ("4", "5"), (0.5, 0.0), 4, "r4"),
        ("b4", ("3",), (0.5,), 2, None),
    ]
    assert r.composite == (
        ("b0", "b1", "b2", "b3"),
        ("b0", "b1", "b4", "b3"),
        ("b1", "b2", "b3"),
        ("b4", "b3"),  # 2(.5) occurs once: no block, starts from the full model
    )


FIG9_MODULES = ["1", "2", "3", "4", "5", "6"]
FIG9_CONFIGS = _configs(
    FIG9_MODULES,
    (0.3, 0.3, 0.5, 0.5, 0, 0.3),
    (0.3, 0.3, 0.5, 0.5, 0.3, 0.3),
    (0, 0.5, 0.5, 0.5, 0, 0.3),
    (0.3, 0.3, 0, 0.5, 0, 0.3),
)


def test_figure9_style_four_networks():
    # Worked by hand: Sequitur gives S -> C E #0 C 5(.3) 6(.3) #1 1(0) 2(.5) D E #2 F 3(0) 4(.5)
    # E #3 with C = F D, F = 1(.3) 2(.3), D = 3(.5) 4(.5), E = 5(0) 6(.3).
    # C is in 2 networks but F in 3: descend. F: itself and both symbols in 3 -> block.
    # D in 3 but 4(.5) in 4: descend to 3(.5) and 4(.5). E in 3 but 6(.3) in 4: descend;
    # 5(0) is unpruned. 5(.3) and 2(.5) occur once: no block.
    r = select_blocks(FIG9_MODULES, FIG9_CONFIGS)
    assert r.grammar_json() == {
        "r0": [
            "r1",
            "r2",
            "#0",
            "r1",
            "5@0.3",
            "6@0.3",
            "#1",
            "1@0",
            "2@0.5",
            "r3",
            "r2",
            "#2",
            "r4",
            "3@0",
            "4@0.5",
            "r2",
            "#3",
        ],
        "r1": ["r4", "r3"],
        "r2": ["5@0", "6@0.3"],
        "r3": ["3@0.5", "4@0.5"],
        "r4": ["1@0.3", "2@0.3"],
    }
    assert [(b.id, b.modules, b.rates, b.frequency) for b in r.blocks] == [
        ("b0", ("1", "2"), (0.3, 0.3), 3),
        ("b1", ("3",), (0.5,), 3),
        ("b2", ("4",), (0.5,), 4),
        ("b3", ("6",), (0.3,), 4),
    ]
    assert r.composite == (
        ("b0", "b1", "b2", "b3"),
        ("b0", "b1", "b2", "b3"),
        ("b1", "b2", "b3"),
        ("b0", "b2", "b3"),
    )


def test_figure9_module_mode():
    r = select_blocks(FIG9_MODULES, FIG9_CONFIGS, mode="module")
    assert r.grammar is None and r.grammar_json() == {}
    assert [(b.id, b.modules, b.rates, b.frequency) for b in r.blocks] == [
        ("b0", ("1",), (0.3,), 3),
        ("b1", ("2",), (0.3,), 3),
        ("b2", ("3",), (0.5,), 3),
        ("b3", ("4",), (0.5,), 4),
        ("b4", ("6",), (0.3,), 4),
        ("b5", ("5",), (0.3,), 1),  # module mode keeps blocks that occur once
        ("b6", ("2",), (0.5,), 1),
    ]
    assert r.composite[1] == ("b0", "b1", "b2", "b3", "b5", "b4")


# -- small cases ------------------------------------------------------------------------------


def test_identical_networks_make_one_block():
    r = select_blocks(["a", "b", "c"], _configs(["a", "b", "c"], (0.3, 0.5, 0), (0.3, 0.5, 0)))
    assert _summary(r) == {(("a", "b", "c"), (0.3, 0.5, 0.0)): 2}
    assert r.composite == (("b0",), ("b0",))


def test_unpruned_runs_are_never_blocks():
    mods = ["a", "b", "c"]
    r = select_blocks(mods, _configs(mods, (0, 0, 0.3), (0, 0, 0.5), (0, 0, 0)))
    assert r.blocks == ()
    assert r.composite == ((), (), ())


def test_frequency_one_is_never_chosen():
    mods = ["a", "b"]
    r = select_blocks(mods, _configs(mods, (0.3, 0.5), (0.5, 0.3), (0.7, 0.7)))
    assert r.blocks == ()


def test_floating_noise_does_not_split_symbols():
    r = select_blocks(["a"], [{"a": 0.3}, {"a": 0.1 + 0.2}])
    assert _summary(r) == {(("a",), (0.3,)): 2}


def test_composite_prefers_the_longest_block():
    r = select_blocks(FIG4_MODULES, FIG4_CONFIGS)
    rows = [("0.3", "0.3", "0.3", "0.5", "0"), ("0", "0", "0", "0.5", "0")]
    assert [composite_vector(row, r.blocks) for row in rows] == [("b0", "b1", "b2", "b3"), ("b3",)]


def test_composite_takes_the_longest_match_at_each_position():
    blocks = [
        Block("b0", 0, ("a",), (0.3,), 2),
        Block("b1", 0, ("a", "b", "c"), (0.3, 0.5, 0.0), 2),
        Block("b2", 0, ("a", "b"), (0.3, 0.5), 3),
        Block("b3", 1, ("b", "c"), (0.5, 0.3), 2),
        Block("b4", 2, ("c",), (0.3,), 2),
    ]
    rows = {
        ("0.3", "0.5", "0"): ("b1",),
        ("0.3", "0.5", "0.3"): ("b2", "b4"),  # greedy: b2 first, not b0 + b3
        ("0.3", "0.7", "0.3"): ("b0", "b4"),
        ("0", "0.5", "0.3"): ("b3",),
        ("0.7", "0.7", "0.7"): (),
    }
    for row, expected in rows.items():
        assert composite_vector(row, blocks) == expected


def test_json_document():
    r = select_blocks(FIG4_MODULES, FIG4_CONFIGS)
    doc = json.loads(json.dumps(r.to_json()))
    assert set(doc) == {"grammar", "blocks", "composite"}
    assert doc["blocks"][3] == {
        "id": "b3",
        "modules": ["4", "5"],
        "rates": [0.5, 0.0],
        "frequency": 4,
    }
    assert doc["composite"][3] == ["b4", "b3"]


# -- properties and the independent implementation ---------------------------------------------

RATES = (0, 0.3, 0.5, 0.7)


@st.composite
def subspaces(draw):
    n = draw(st.integers(2, 6))
    modules = [f"m{i}" for i in range(n)]
    # Configurations are variations of a few base ones, as in a promising subspace: uniform
    # random rows almost never share a run of modules, and then no rule is ever a block.
    rate = st.sampled_from(RATES)
    bases = draw(st.lists(st.tuples(*[rate] * n), min_size=1, max_size=3))
    rows = []
    for _ in range(draw(st.integers(2, 30))):
        row = list(draw(st.sampled_from(bases)))
        for i in draw(st.lists(st.integers(0, n - 1), max_size=2)):
            row[i] = draw(rate)
        rows.append(row)
    # Drop some zero entries so that "missing means 0" is exercised too.
    configs = [
        {m: r for i, (m, r) in enumerate(zip(modules, row)) if r or (i + j) % 2}
        for j, row in enumerate(rows)
    ]
    return modules, configs


@settings(max_examples=150, deadline=None)
@given(subspaces(), st.sampled_from(["sequitur", "module"]))
def test_matches_independent_implementation(subspace, mode):
    modules, configs = subspace
    assert select_blocks(modules, configs, mode).to_json() == reference_blocks(
        modules, configs, mode
    )


@settings(max_examples=150, deadline=None)
@given(subspaces())
def test_block_properties(subspace):
    modules, configs = subspace
    r = select_blocks(modules, configs)
    rows = [tuple(format_rate(c.get(m, 0)) for m in modules) for c in configs]
    by_id = {b.id: b for b in r.blocks}
    assert [b.id for b in r.blocks] == [f"b{i}" for i in range(len(r.blocks))]
    for b in r.blocks:
        key = tuple(format_rate(x) for x in b.rates)
        count = sum(row[b.start : b.start + len(key)] == key for row in rows)
        assert b.frequency == count >= 2
        assert any(x > 0 for x in b.rates)
        assert list(b.modules) == modules[b.start : b.start + len(b.rates)]
    for row, vector in zip(rows, r.composite):
        end = 0
        for block_id in vector:  # non-overlapping, left to right, each one matching
            b = by_id[block_id]
            assert b.start >= end
            assert row[b.start : b.start + len(b.rates)] == tuple(format_rate(x) for x in b.rates)
            end = b.start + len(b.rates)
