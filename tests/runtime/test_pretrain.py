"""Pre-training sized to the work: budgets in fine-tuning units, plateau stop, honest summary."""

from __future__ import annotations

import math

import pytest

from cocotune.errors import CocotuneError
from cocotune.runtime.pretrain import (
    DEFAULT_MIN_DELTA,
    DEFAULT_PATIENCE,
    PRETRAIN_SHARE,
    default_pretrain_steps,
    plateau_rule,
    pretrain_summary,
)
from tests.conftest import EXAMPLES

SUBSPACE = "0.7 0.7 0.7 0.7 0.7 0.7\n0.5 0.5 0.5 0.5 0.5 0.5\n0.5 0.5 0.7 0.7 0.7 0.7\n0.3 0.3 0.5 0.5 0.5 0.5\n"


def test_default_budget_is_a_share_of_one_configurations_fine_tuning_limit():
    assert PRETRAIN_SHARE <= 1
    assert default_pretrain_steps(500) == 167 == math.ceil(500 / 3)
    assert default_pretrain_steps(30_000) == 10_000  # the paper's ResNet-50 ratio
    assert default_pretrain_steps(1) == 1
    for limit in (1, 7, 100, 12345):
        assert default_pretrain_steps(limit) <= limit


def test_plateau_rule_defaults_and_clamping():
    rule = plateau_rule(167)
    assert (rule.max_steps, rule.eval_every, rule.patience, rule.min_delta) == (
        167,
        16,
        DEFAULT_PATIENCE,
        DEFAULT_MIN_DELTA,
    )
    assert rule.threshold is None
    assert plateau_rule(5).eval_every == 1 and plateau_rule(5, eval_every=50).eval_every == 5
    with pytest.raises(CocotuneError, match="--patience must be >= 1"):
        plateau_rule(10, patience=0)


def test_summary_counts_each_group_once_in_seconds_and_configurations():
    group_a = {"group": ["b0", "b1"], "steps": 100, "seconds": 4.0, "stop": "plateau"}
    group_b = {"group": ["b2"], "steps": 150, "seconds": 6.5, "stop": "limit"}
    records = [{"id": "b0", **group_a}, {"id": "b1", **group_a}, {"id": "b2", **group_b}]
    text = pretrain_summary(records, 500)
    assert "10.5 s of group time" in text
    assert "250 steps in 2 groups (1 limit, 1 plateau)" in text
    assert "= 0.50 configurations' worth of fine-tuning steps" in text
    assert "L = 500 steps" in text


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """A generated resnet_digits package whose full weights are its initial ones."""
    from cocotune.gen.write_package import generate_package
    from cocotune.runtime.generated_package import Package

    root = tmp_path_factory.mktemp("pretrain")
    (root / "sub.txt").write_text(SUBSPACE)
    generate_package(
        str(EXAMPLES / "resnet_digits" / "net.prototxt"), str(root / "sub.txt"), root / "pkg"
    )
    pkg = Package(root / "pkg")
    pkg.build("full").save_weights(str(pkg.full_weights_path))
    return pkg


@pytest.mark.slow
def test_a_group_stops_when_its_loss_plateaus_and_records_why(package):
    from cocotune.runtime.data import load_dataset
    from cocotune.runtime.pretrain import pretrain_group
    from cocotune.runtime.solver import preset

    data = load_dataset("digits", package.input_shape, package.num_classes)
    settings = preset("demo").with_overrides(batch_size=16)
    full = package.full_caffe_weights()
    # An improvement of 100 in -log(loss) never happens: the best is set at the first window
    # (step 2) and two more windows without it end the group at step 6 of the 50 allowed.
    rule = plateau_rule(50, eval_every=2, patience=2, min_delta=100.0)
    records = pretrain_group(package, package.blocks[:1], full, data, settings, 50, 0, rule=rule)
    (r,) = records
    assert (r["steps"], r["stop"], r["limit"]) == (6, "plateau", 50)
    assert [p[0] for p in r["curve"]] == [0, 2, 4, 6] and r["curve"][0][2] is None
    assert all(p[2] > 0 for p in r["curve"][1:]) and r["seconds"] > 0
    assert package.block_path(r["id"]).exists()
    fixed = pretrain_group(package, package.blocks[1:2], full, data, settings, 3, 0)
    assert (fixed[0]["steps"], fixed[0]["stop"]) == (3, "limit")
