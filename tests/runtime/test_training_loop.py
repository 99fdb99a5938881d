"""The convergence-driven loop and its helpers: stop rule on scripted accuracy sequences,
compiled prediction, BatchNorm re-estimation against a NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest

from cocotune.errors import CocotuneError
from cocotune.runtime.solver import TrainingSettings
from cocotune.runtime.training_loop import (
    StopRule,
    accuracy,
    fit,
    recalibrate_batchnorm,
    recalibration_images,
    stop_rule,
    train_steps,
)


def tiny_model():
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(3)(inputs))


def batches():
    rng = np.random.default_rng(0)
    while True:
        yield rng.normal(size=(8, 4)).astype(np.float32), rng.integers(0, 3, 8)


def run_script(accs, rule):
    """fit with evaluate_fn returning ``accs`` in turn; returns the FitResult."""
    import keras

    model = tiny_model()
    seq = iter(accs)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return fit(model, batches(), keras.optimizers.SGD(0.01), loss, rule, lambda: next(seq))


def test_threshold_stops_at_first_evaluation_reaching_it():
    rule = StopRule(max_steps=100, eval_every=10, patience=3, min_delta=0.01, threshold=0.8)
    result = run_script([0.5, 0.7, 0.85, 0.9, 0.95], rule)
    assert result.stop == "threshold"
    assert [p[0] for p in result.curve] == [0, 10, 20]
    assert [p[2] for p in result.curve] == [0.5, 0.7, 0.85]
    assert result.steps == 20


def test_threshold_can_stop_before_any_step():
    rule = StopRule(max_steps=100, eval_every=10, patience=3, min_delta=0.01, threshold=0.5)
    result = run_script([0.6], rule)
    assert (result.stop, result.steps, result.curve[0][:1]) == ("threshold", 0, [0])
    assert result.first_step_at is None and result.curve[0][1] == 0.0


def test_plateau_counts_evaluations_without_min_delta_gain():
    rule = StopRule(max_steps=1000, eval_every=5, patience=2, min_delta=0.01)
    # best 0.6 at step 5; 0.605 (+0.005 < delta) and 0.59 do not improve -> plateau at step 15
    result = run_script([0.5, 0.6, 0.605, 0.59, 0.9], rule)
    assert result.stop == "plateau"
    assert [p[0] for p in result.curve] == [0, 5, 10, 15]
    # an improvement >= delta resets the count
    rule = StopRule(max_steps=1000, eval_every=5, patience=2, min_delta=0.01)
    result = run_script([0.5, 0.5, 0.52, 0.52, 0.52, 0.9], rule)
    assert result.stop == "plateau" and result.curve[-1][0] == 20


def test_limit_evaluates_at_the_last_step_too():
    rule = StopRule(max_steps=25, eval_every=10, patience=5, min_delta=0.01)
    result = run_script([0.1, 0.2, 0.3, 0.4, 0.5], rule)
    assert result.stop == "limit" and result.steps == 25
    assert [p[0] for p in result.curve] == [0, 10, 20, 25]
    seconds = [p[1] for p in result.curve]
    assert seconds == sorted(seconds) and seconds[0] == 0.0 and seconds[-1] > 0
    assert result.train_seconds > 0 and result.eval_seconds >= 0


def test_abort_is_reported():
    import keras

    rule = StopRule(max_steps=50, eval_every=10, patience=5, min_delta=0.01)
    calls = iter(range(100))
    result = fit(
        tiny_model(),
        batches(),
        keras.optimizers.SGD(0.01),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        rule,
        lambda: 0.1,
        should_abort=lambda: next(calls) >= 3,
    )
    assert result.stop == "aborted" and result.steps == 3


def test_rule_defaults_come_from_the_solver():
    s = TrainingSettings(max_iter=300, test_interval=50, iter_size=2)
    rule = stop_rule(s)
    assert (rule.max_steps, rule.eval_every) == (600, 100)
    assert stop_rule(TrainingSettings(max_iter=10)).eval_every == 10  # clamped to the limit
    assert stop_rule(TrainingSettings(max_iter=300)).eval_every == 20
    assert stop_rule(s, steps=40, eval_every=7, patience=2, min_delta=0.1).as_dict() == {
        "max_steps": 40,
        "eval_every": 7,
        "patience": 2,
        "min_delta": 0.1,
        "threshold": None,
    }
    for bad in ({"eval_every": 0}, {"patience": 0}, {"min_delta": 0.0}):
        with pytest.raises(CocotuneError):
            stop_rule(s, **bad)


def test_old_fixed_step_calls_still_train():
    import keras

    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    result = fit(tiny_model(), batches(), keras.optimizers.SGD(0.01), 7, loss)
    assert result.steps == 7 and len(result.losses) == 7
    assert train_steps(tiny_model(), batches(), keras.optimizers.SGD(0.01), 3, loss).steps == 3


def test_compiled_accuracy_matches_eager_and_handles_ragged_batches():
    model = tiny_model()
    x = np.random.default_rng(1).normal(size=(37, 4)).astype(np.float32)
    y = np.asarray(model(x)).argmax(axis=1)
    y[:5] = (y[:5] + 1) % 3
    assert accuracy(model, x, y, batch_size=16) == pytest.approx(32 / 37)
    assert accuracy(model, x[:3], y[:3], batch_size=16) == 0.0


def test_recalibration_is_the_average_of_batch_statistics():
    import keras

    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.BatchNormalization(momentum=0.999)(inputs))
    x = np.random.default_rng(2).normal(3.0, 2.0, size=(64, 3)).astype(np.float32)
    assert recalibrate_batchnorm(model, x, batch_size=16) == 1
    bn = model.layers[-1]
    batches_ = x.reshape(4, 16, 3)
    np.testing.assert_allclose(
        bn.moving_mean.numpy(), batches_.mean(axis=1).mean(axis=0), rtol=1e-5
    )
    np.testing.assert_allclose(
        bn.moving_variance.numpy(), batches_.var(axis=1).mean(axis=0), rtol=1e-4
    )
    assert bn.momentum == 0.999  # restored
    # a second call (compiled function reused) on other data gives that data's statistics
    recalibrate_batchnorm(model, x[:16] + 10.0, batch_size=16)
    np.testing.assert_allclose(bn.moving_mean.numpy(), x[:16].mean(axis=0) + 10.0, rtol=1e-5)


def test_recalibration_images_are_spread_and_repeatable():
    x = np.arange(1000, dtype=np.float32).reshape(1000, 1, 1, 1)
    picked = recalibration_images(x, 200)
    assert len(picked) == 200 and len(np.unique(picked)) == 200
    assert picked.min() == 0 and picked.max() > 900  # from the whole set, not the first 200
    np.testing.assert_array_equal(picked, recalibration_images(x, 200))
    assert len(recalibration_images(x, 5000)) == 1000
    assert len(recalibration_images(x, 0)) == 0
