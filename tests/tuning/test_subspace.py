"""Subspace files (DESIGN §4): the three text forms, JSON, errors with positions, sampling."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from cocotune.errors import InputFileError, SubspaceError
from cocotune.frontend.load import load_net
from cocotune.tuning.pruning import analyze_pruning
from cocotune.tuning.subspace import (
    format_subspace,
    parse_rate,
    parse_rate_list,
    parse_subspace,
    sample_subspace,
)
from tests.conftest import EXAMPLES

MODULES = ["res2a", "res2b", "res3a", "res3b"]


@pytest.fixture
def parse(tmp_path):
    def run(text: str, name: str = "subspace.txt", modules=MODULES):
        path = tmp_path / name
        path.write_text(text)
        return parse_subspace(path, modules)

    return run


@pytest.fixture
def error(parse):
    def run(text: str, name: str = "subspace.txt", modules=MODULES) -> SubspaceError:
        with pytest.raises(SubspaceError) as info:
            parse(text, name, modules)
        return info.value

    return run


def rows(subspace):
    return [tuple(round(r, 9) for r in row) for row in subspace.rows()]


# -- reading ----------------------------------------------------------------------------------


def test_three_forms_comments_and_separators(parse):
    s = parse(
        "# a subspace\n"
        "\n"
        "0.3 0.5 0   0.7\n"
        "30%, 30%,\t50% 70%   # percent\n"
        "res2a=0.3, res3a = 0.5          # named form\n"
        "0.1,0.2,0.3,0.4\n"
    )
    assert rows(s) == [
        (0.3, 0.5, 0, 0.7),
        (0.3, 0.3, 0.5, 0.7),
        (0.3, 0, 0.5, 0),
        (0.1, 0.2, 0.3, 0.4),
    ]
    assert s.lines == [3, 4, 5, 6]
    assert s.configs[2] == {"res2a": 0.3, "res2b": 0.0, "res3a": 0.5, "res3b": 0.0}
    assert s.warnings == []


def test_duplicates_are_warned_and_dropped(parse):
    s = parse("0.3 0.3 0.3 0.3\n30% 30% 30% 30%\nres2a=0.5\n0.5 0 0 0\n0.3 0.5 0.3 0.5\n")
    assert s.lines == [1, 3, 5]
    assert len(s.warnings) == 2
    assert s.warnings[0].endswith("subspace.txt:2: warning: configuration repeats line 1; dropped")
    assert "subspace.txt:4:" in s.warnings[1] and "line 3" in s.warnings[1]


def test_example_subspaces_parse():
    for name, count in (("resnet_digits", 16), ("inception_digits", 5)):
        net = load_net(EXAMPLES / name / "net.prototxt")
        s = parse_subspace(EXAMPLES / name / "subspace.txt", net.module_names)
        assert len(s) == count and s.modules == tuple(net.module_names)


@pytest.mark.parametrize(
    "text, message, line, col",
    [
        ("0.3 0.5 0\n", "line has 3 rates for 4 modules (res2a, res2b, res3a, res3b)", 1, 1),
        ("# c\n0.3 0.5 0 0 0.9\n", "line has 5 rates for 4 modules", 2, 13),
        ("0.3 1.0 0 0\n", "rate '1.0' is not below 1", 1, 5),
        ("0.3 30 0 0\n", "did you mean 30%?", 1, 5),
        ("0.3 -0.1 0 0\n", "rate '-0.1' is negative", 1, 5),
        ("0 0 0 120%\n", "percentage '120%' is not in [0%, 100%)", 1, 7),
        ("0 0 0 100%\n", "percentage '100%'", 1, 7),
        ("0 abc 0 0\n", "'abc' is not a rate", 1, 3),
        ("0 0 nan 0\n", "'nan' is not a rate", 1, 5),
        ("\n\nres2a=0.3 rse3a=0.5\n", "unknown module 'rse3a' (did you mean 'res3a'?)", 3, 11),
        ("res2a=0.3 0.5 0 0\n", "line mixes named ('res2a=0.3') and positional ('0.5')", 1, 11),
        ("res2a=0.3 res2a=0.5\n", "module 'res2a' is given twice", 1, 11),
        ("res2a=\n", "'res2a=' gives no rate for module 'res2a'", 1, 1),
        ("res2a=x\n", "'x' is not a rate", 1, 7),
        ("0 0 =0.3 0\n", "'=0.3' has no module name", 1, 5),
    ],
)
def test_errors_name_line_and_token(error, text, message, line, col):
    exc = error(text)
    assert message in exc.message
    assert (exc.line, exc.col) == (line, col)
    rendered = exc.render()
    assert rendered.startswith(f"{exc.path}:{line}:{col}: error: ")
    assert text.splitlines()[line - 1] in rendered  # the source line, with a caret under it


def test_unknown_module_lists_the_modules(error):
    exc = error("conv1=0.3\n")
    assert "(did you mean" not in exc.message
    assert exc.notes == ["the net's modules: res2a, res2b, res3a, res3b"]


def test_no_configurations(error, tmp_path):
    exc = error("# only a comment\n\n")
    assert "no configurations" in exc.message and exc.line == 1
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(InputFileError, match="empty"):
        parse_subspace(empty, MODULES)


def test_net_without_modules(error):
    assert "no module { } blocks" in error("0.3\n", modules=[]).message


# -- JSON -------------------------------------------------------------------------------------


def test_json_lists_and_objects(parse):
    text = json.dumps([[0.3, 0.5, 0, 0.7], {"res2a": 0.3}, {"res3b": "50%"}], indent=1)
    s = parse(text, "s.json")
    assert rows(s) == [(0.3, 0.5, 0, 0.7), (0.3, 0, 0, 0), (0, 0, 0, 0.5)]
    assert s.lines == [2, 8, 11]
    # Content starting with '[' is JSON whatever the suffix.
    assert rows(parse("[[0.3, 0.3, 0.3, 0.3]]", "s.txt")) == [(0.3,) * 4]


@pytest.mark.parametrize(
    "text, message, line",
    [
        ("[[0.3, 0.5]]", "entry 1 has 2 rates for 4 modules", 1),
        ('[\n [0,0,0,0],\n {"res2x": 0.3}\n]', "entry 2: unknown module 'res2x' (did you mean", 3),
        ("[[0, 0, 0, 1.5]]", "entry 1, module 'res3b': rate '1.5' is not below 1", 1),
        ("[[0, 0, 0, true]]", "true is not a rate", 1),
        ("[[0, 0, 0, NaN]]", "NaN is not a rate", 1),
        ('{"res2a": 0.3}', "a JSON subspace is a list", 1),
        ("[[0, 0, 0, 0.3],\n [0, 0,]]", "not valid JSON", 2),
        ("[]", "no configurations", 1),
        ("[3]", "entry 1 is 3; expected a list of rates", 1),
    ],
)
def test_json_errors(error, text, message, line):
    exc = error(text, "s.json")
    assert message in exc.message
    assert exc.line == line


def test_json_is_never_evaluated(error, tmp_path):
    marker = tmp_path / "pwned"
    exc = error(f"[__import__('os').system('touch {marker}')]", "s.json")
    assert "not valid JSON" in exc.message and not marker.exists()


# -- rates and writing ------------------------------------------------------------------------


def test_parse_rate_forms():
    assert parse_rate("0.3") == 0.3 and parse_rate("30%") == 0.3 and parse_rate(".5") == 0.5
    assert parse_rate("0") == 0 and parse_rate("12.5%") == 0.125
    assert parse_rate_list("0.3,0.5, 70%,0.3") == [0.3, 0.5, 0.7]
    for bad in ("1", "inf", "", "0.3.1", "-0"):
        if bad == "-0":
            assert parse_rate(bad) == 0
            continue
        with pytest.raises(ValueError):
            parse_rate(bad)


def test_format_round_trips(parse):
    configs = [
        {"res2a": 0.3, "res2b": 0.5, "res3a": 0.0, "res3b": 0.125},
        {"res2a": 0.7, "res2b": 0.7, "res3a": 0.7, "res3b": 0.7},
    ]
    text = format_subspace(MODULES, configs, comments=["made by a test"], notes=["a", ""])
    assert text.startswith("# made by a test\n")
    assert "#   res2a res2b res3a res3b\n" in text
    assert "0.3   0.5   0     0.125  # a\n" in text
    s = parse(text)
    assert s.configs == configs


# -- sampling ---------------------------------------------------------------------------------


def ks_uniform(sizes, lo, hi) -> float:
    """Kolmogorov-Smirnov distance between the sizes and the uniform law on [lo, hi]."""
    u = np.sort((np.asarray(sizes, float) - lo) / (hi - lo))
    n = len(u)
    return float(max(np.max(np.arange(1, n + 1) / n - u), np.max(u - np.arange(n) / n)))


@pytest.fixture(scope="module")
def resnet():
    return load_net(EXAMPLES / "resnet_digits" / "net.prototxt")


def test_sample_sizes_close_to_uniform(resnet):
    analysis = analyze_pruning(resnet)
    rates = [0.3, 0.5, 0.7]
    every = [dict(zip(resnet.module_names, r)) for r in itertools.product(rates, repeat=6)]
    all_sizes = np.array([analysis.cost(c)[0] for c in every])
    lo, hi = all_sizes.min(), all_sizes.max()
    sample = sample_subspace(resnet, 64, rates, seed=0)
    assert len(sample) == 64
    assert len({tuple(c.values()) for c in sample}) == 64
    sizes = [analysis.cost(c)[0] for c in sample]
    assert sizes == sorted(sizes)
    ours = ks_uniform(sizes, lo, hi)
    rng = np.random.default_rng(0)
    plain = [ks_uniform(rng.choice(all_sizes, 64, replace=False), lo, hi) for _ in range(20)]
    assert ours < 0.05
    assert ours < min(plain) and np.median(plain) > 0.1


def test_sample_is_deterministic_per_seed(resnet):
    a = sample_subspace(resnet, 20, [0.3, 0.5, 0.7], seed=1)
    assert a == sample_subspace(resnet, 20, [0.3, 0.5, 0.7], seed=1)
    assert a != sample_subspace(resnet, 20, [0.3, 0.5, 0.7], seed=2)
    assert {r for c in a for r in c.values()} <= {0.3, 0.5, 0.7}  # 0 only when asked for


def test_sample_returns_everything_when_n_is_large(resnet):
    every = sample_subspace(resnet, 100, [0, 0.5], seed=0)
    assert len(every) == 64
    assert {tuple(c.values()) for c in every} == set(itertools.product([0.0, 0.5], repeat=6))


def test_sample_keeps_unprunable_modules_at_zero(tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text(
        'layer { name: "data" type: "Input" top: "data" '
        "input_param { shape { dim: 1 dim: 2 dim: 4 dim: 4 } } }\n"
        'module { name: "a" layer { name: "c1" type: "Convolution" bottom: "data" top: "c1" '
        "convolution_param { num_output: 8 kernel_size: 3 pad: 1 } }\n"
        'layer { name: "c2" type: "Convolution" bottom: "c1" top: "c2" '
        "convolution_param { num_output: 4 kernel_size: 3 pad: 1 } } }\n"
        'module { name: "b" layer { name: "c3" type: "Convolution" bottom: "c2" top: "c3" '
        "convolution_param { num_output: 4 kernel_size: 1 } } }\n"
    )
    net = load_net(path)
    sample = sample_subspace(net, 10, [0.25, 0.5], seed=0)
    assert sample == [{"a": 0.5, "b": 0.0}, {"a": 0.25, "b": 0.0}]


def test_sample_large_space_uses_a_pool(resnet, monkeypatch):
    import cocotune.tuning.subspace as subspace

    monkeypatch.setattr(subspace, "ENUMERATE_LIMIT", 10)
    sample = subspace.sample_subspace(resnet, 30, [0.3, 0.5, 0.7], seed=0)
    assert len({tuple(c.values()) for c in sample}) == 30
