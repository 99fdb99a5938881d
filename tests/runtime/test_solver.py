"""Caffe solver → Keras: learning-rate policies, update rules, decay, accumulation, clipping.

References are written here from Caffe's formulas (``sgd_solver.cpp``, ``solvers/*.cpp``):
hand-computed numbers for a few steps, and a small numpy re-implementation of each update rule
(``_caffe_reference``) that the Keras optimizers are compared with.
"""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from cocotune._proto import caffe_pb2
from cocotune.errors import CocotuneError
from cocotune.runtime.solver import (
    LR_POLICIES,
    PRESETS,
    SOLVER_TYPES,
    CaffeAdadelta,
    CaffeAdagrad,
    CaffeAdam,
    CaffeRMSprop,
    CaffeSchedule,
    CaffeSGD,
    TrainingSettings,
    caffe_learning_rate,
    fresh_optimizer,
    make_optimizer,
    preset,
)

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"

# One settings object per policy, with parameters that make the rate move within 3000 steps.
POLICY_SETTINGS = {
    "fixed": TrainingSettings(base_lr=0.01, lr_policy="fixed"),
    "step": TrainingSettings(base_lr=0.01, lr_policy="step", gamma=0.1, stepsize=700),
    "exp": TrainingSettings(base_lr=0.1, lr_policy="exp", gamma=0.999),
    "inv": TrainingSettings(base_lr=0.01, lr_policy="inv", gamma=1e-4, power=0.75),
    "multistep": TrainingSettings(
        base_lr=0.1, lr_policy="multistep", gamma=0.5, stepvalues=(100, 1000, 1000, 2500)
    ),
    "poly": TrainingSettings(base_lr=0.04, lr_policy="poly", power=0.5, max_iter=3000),
    "sigmoid": TrainingSettings(base_lr=0.1, lr_policy="sigmoid", gamma=0.01, stepsize=1500),
}
STEPS = np.concatenate([np.arange(0, 3000, 7), [99, 100, 101, 699, 700, 999, 1000, 1001, 2999]])


def settings(**kw) -> TrainingSettings:
    return TrainingSettings(**kw)


def write_solver(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "solver.prototxt"
    path.write_text(text)
    return path


# --------------------------------------------------------------------------------------------
# Learning-rate policies
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw, step, expected",
    [
        (dict(lr_policy="fixed", base_lr=0.01), 12345, 0.01),
        (dict(lr_policy="step", base_lr=0.01, gamma=0.1, stepsize=100), 99, 0.01),
        (dict(lr_policy="step", base_lr=0.01, gamma=0.1, stepsize=100), 100, 0.001),
        (dict(lr_policy="step", base_lr=0.01, gamma=0.1, stepsize=100), 250, 1e-4),
        (dict(lr_policy="exp", base_lr=1.0, gamma=0.5), 3, 0.125),
        (dict(lr_policy="exp", base_lr=1.0, gamma=0.5), 0, 1.0),
        # lenet_solver at max_iter: 0.01 * (1 + 1e-4 * 10000) ^ -0.75 = 0.01 * 2 ^ -0.75
        (dict(lr_policy="inv", base_lr=0.01, gamma=1e-4, power=0.75), 10000, 0.005946035575),
        (dict(lr_policy="inv", base_lr=0.01, gamma=1e-4, power=0.75), 0, 0.01),
        (dict(lr_policy="multistep", base_lr=1.0, gamma=0.1, stepvalues=(10, 20)), 9, 1.0),
        (dict(lr_policy="multistep", base_lr=1.0, gamma=0.1, stepvalues=(10, 20)), 10, 0.1),
        (dict(lr_policy="multistep", base_lr=1.0, gamma=0.1, stepvalues=(10, 20)), 19, 0.1),
        (dict(lr_policy="multistep", base_lr=1.0, gamma=0.1, stepvalues=(10, 20)), 20, 0.01),
        (dict(lr_policy="multistep", base_lr=1.0, gamma=0.1, stepvalues=(10, 20)), 999, 0.01),
        # Caffe passes at most one stepvalue per iteration: repeated values take two iterations,
        (dict(lr_policy="multistep", base_lr=1.0, gamma=0.1, stepvalues=(10, 10)), 10, 0.1),
        (dict(lr_policy="multistep", base_lr=1.0, gamma=0.1, stepvalues=(10, 10)), 11, 0.01),
        # and an unsorted list waits for the first value before counting the next one.
        (dict(lr_policy="multistep", base_lr=1.0, gamma=0.1, stepvalues=(20, 10)), 19, 1.0),
        (dict(lr_policy="multistep", base_lr=1.0, gamma=0.1, stepvalues=(20, 10)), 20, 0.1),
        (dict(lr_policy="multistep", base_lr=1.0, gamma=0.1, stepvalues=(20, 10)), 21, 0.01),
        (dict(lr_policy="poly", base_lr=0.04, power=1.0, max_iter=100), 25, 0.03),
        (dict(lr_policy="poly", base_lr=0.04, power=0.5, max_iter=100), 75, 0.02),
        (dict(lr_policy="poly", base_lr=0.04, power=0.5, max_iter=100), 100, 0.0),
        (dict(lr_policy="sigmoid", base_lr=1.0, gamma=0.1, stepsize=50), 50, 0.5),
        (dict(lr_policy="sigmoid", base_lr=1.0, gamma=0.1, stepsize=50), 60, 0.7310585786300049),
        (dict(lr_policy="sigmoid", base_lr=1.0, gamma=0.1, stepsize=50), 40, 0.2689414213699951),
    ],
)
def test_policy_hand_computed(kw, step, expected):
    assert caffe_learning_rate(settings(**kw), step) == pytest.approx(expected, rel=1e-9, abs=0)


# The formulas as Caffe's comment in sgd_solver.cpp states them, independent of the module.
FORMULAS = {
    "fixed": lambda s, i: s.base_lr,
    "step": lambda s, i: s.base_lr * s.gamma ** math.floor(i / s.stepsize),
    "exp": lambda s, i: s.base_lr * s.gamma**i,
    "inv": lambda s, i: s.base_lr * (1 + s.gamma * i) ** (-s.power),
    "multistep": lambda s, i: s.base_lr * s.gamma ** _caffe_multistep_counter(s.stepvalues, i),
    "poly": lambda s, i: s.base_lr * (1 - i / s.max_iter) ** s.power,
    "sigmoid": lambda s, i: s.base_lr / (1 + math.exp(-s.gamma * (i - s.stepsize))),
}


def _caffe_multistep_counter(stepvalues, iteration):
    """Caffe's loop literally: one check per iteration from 0, at most one step each."""
    current = 0
    for it in range(iteration + 1):
        if current < len(stepvalues) and it >= stepvalues[current]:
            current += 1
    return current


@pytest.mark.parametrize("policy", LR_POLICIES)
def test_policy_matches_formula(policy):
    s = POLICY_SETTINGS[policy]
    for step in (0, 1, 99, 100, 101, 700, 1000, 1001, 2500, 2999):
        assert caffe_learning_rate(s, step) == pytest.approx(FORMULAS[policy](s, step), rel=1e-12)


@pytest.mark.parametrize("policy", LR_POLICIES)
def test_schedule_equals_python(policy):
    s = POLICY_SETTINGS[policy]
    schedule = CaffeSchedule.from_settings(s)
    got = keras.ops.convert_to_numpy(schedule(STEPS))
    want = np.array([caffe_learning_rate(s, int(i)) for i in STEPS])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)


@pytest.mark.parametrize("policy", LR_POLICIES)
def test_schedule_is_graph_safe(policy):
    s = POLICY_SETTINGS[policy]
    schedule = CaffeSchedule.from_settings(s)
    traced = tf.function(lambda step: schedule(step))
    for step in (0, 101, 1001):
        got = float(traced(tf.constant(step, dtype=tf.int64)))
        assert got == pytest.approx(caffe_learning_rate(s, step), rel=1e-6)


def test_schedule_counts_updates_not_batches():
    # Keras hands schedules the raw batch counter; with iter_size 3 update k spans batches
    # 3k..3k+2, and the optimizer applies the update at batch 3k+2.
    s = settings(base_lr=0.01, lr_policy="step", gamma=0.1, stepsize=2, iter_size=3)
    schedule = CaffeSchedule.from_settings(s)
    batches = np.arange(30)
    got = keras.ops.convert_to_numpy(schedule(batches))
    want = [caffe_learning_rate(s, int(b) // 3) for b in batches]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_schedule_serialises():
    s = POLICY_SETTINGS["multistep"]
    schedule = CaffeSchedule.from_settings(s)
    config = keras.saving.serialize_keras_object(schedule)
    assert config["registered_name"] == "cocotune>CaffeSchedule"
    back = keras.saving.deserialize_keras_object(config)
    assert isinstance(back, CaffeSchedule)
    assert back.get_config() == schedule.get_config()
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(back(STEPS)), keras.ops.convert_to_numpy(schedule(STEPS))
    )


# --------------------------------------------------------------------------------------------
# Optimizer mapping
# --------------------------------------------------------------------------------------------


def test_sgd_mapping():
    opt = make_optimizer(settings(solver_type="SGD", momentum=0.9, weight_decay=5e-4))
    assert isinstance(opt, CaffeSGD) and isinstance(opt, keras.optimizers.SGD)
    assert opt.momentum == pytest.approx(0.9) and not opt.nesterov
    assert opt.caffe_weight_decay == pytest.approx(5e-4) and opt.regularization_type == "L2"
    assert opt.weight_decay is None  # Keras' decoupled decay stays off
    assert opt.global_clipnorm is None and opt.gradient_accumulation_steps is None
    assert isinstance(opt._learning_rate, CaffeSchedule)


def test_nesterov_mapping():
    opt = make_optimizer(settings(solver_type="Nesterov", momentum=0.95))
    assert isinstance(opt, CaffeSGD) and opt.nesterov and opt.momentum == pytest.approx(0.95)


def test_adam_mapping():
    opt = make_optimizer(
        settings(solver_type="Adam", momentum=0.9, momentum2=0.995, delta=1e-6, base_lr=1e-3)
    )
    assert isinstance(opt, CaffeAdam) and isinstance(opt, keras.optimizers.Adam)
    assert (opt.beta_1, opt.beta_2, opt.epsilon) == pytest.approx((0.9, 0.995, 1e-6))
    assert not opt.amsgrad


def test_rmsprop_mapping():
    opt = make_optimizer(settings(solver_type="RMSProp", rms_decay=0.98, delta=1e-7))
    assert isinstance(opt, CaffeRMSprop) and isinstance(opt, keras.optimizers.RMSprop)
    assert (opt.rho, opt.epsilon, opt.momentum, opt.centered) == pytest.approx(
        (0.98, 1e-7, 0.0, False)
    )


def test_adagrad_mapping():
    opt = make_optimizer(settings(solver_type="AdaGrad", delta=1e-6))
    assert isinstance(opt, CaffeAdagrad) and isinstance(opt, keras.optimizers.Adagrad)
    assert opt.epsilon == pytest.approx(1e-6) and opt.initial_accumulator_value == 0.0


def test_adadelta_mapping():
    opt = make_optimizer(settings(solver_type="AdaDelta", momentum=0.95, delta=1e-6))
    assert isinstance(opt, CaffeAdadelta) and isinstance(opt, keras.optimizers.Adadelta)
    assert (opt.rho, opt.epsilon) == pytest.approx((0.95, 1e-6))


def test_clip_and_iter_size_mapping():
    opt = make_optimizer(settings(clip_gradients=10.0, iter_size=4))
    assert opt.global_clipnorm == pytest.approx(2.5)  # Caffe clips the sum of 4 gradients
    assert opt.gradient_accumulation_steps == 4


@pytest.mark.parametrize("solver_type", SOLVER_TYPES)
def test_optimizer_serialises(solver_type):
    momentum = 0.0 if solver_type in ("RMSProp", "AdaGrad") else 0.9
    opt = make_optimizer(
        settings(
            solver_type=solver_type,
            momentum=momentum,
            weight_decay=1e-3,
            regularization_type="L1",
            lr_policy="step",
            gamma=0.5,
            stepsize=10,
        )
    )
    config = keras.saving.serialize_keras_object(opt)
    back = keras.saving.deserialize_keras_object(config)
    assert type(back) is type(opt)
    assert back.get_config() == opt.get_config()


# --------------------------------------------------------------------------------------------
# Update rules against Caffe (numpy reference)
# --------------------------------------------------------------------------------------------


def _caffe_reference(s: TrainingSettings, w0, grads):
    """Caffe's SGDSolver::ApplyUpdate for one parameter blob, one update per gradient."""
    w = np.array(w0, dtype=np.float64)
    h = np.zeros_like(w)
    h2 = np.zeros_like(w)
    mu, delta = s.momentum, s.delta
    for it, g in enumerate(grads):
        rate = caffe_learning_rate(s, it)
        g = np.array(g, dtype=np.float64)
        if s.weight_decay:
            g = g + s.weight_decay * (w if s.regularization_type == "L2" else np.sign(w))
        if s.solver_type == "SGD":
            h = mu * h + rate * g
            update = h
        elif s.solver_type == "Nesterov":
            previous = h.copy()
            h = mu * h + rate * g
            update = (1 + mu) * h - mu * previous
        elif s.solver_type == "Adam":
            h = mu * h + (1 - mu) * g
            h2 = s.momentum2 * h2 + (1 - s.momentum2) * g * g
            t = it + 1
            correction = math.sqrt(1 - s.momentum2**t) / (1 - mu**t)
            update = rate * correction * h / (np.sqrt(h2) + delta)
        elif s.solver_type == "RMSProp":
            h = s.rms_decay * h + (1 - s.rms_decay) * g * g
            update = rate * g / (np.sqrt(h) + delta)
        elif s.solver_type == "AdaGrad":
            h = h + g * g
            update = rate * g / (np.sqrt(h) + delta)
        else:  # AdaDelta
            h = mu * h + (1 - mu) * g * g
            u = g * np.sqrt((h2 + delta) / (h + delta))
            h2 = mu * h2 + (1 - mu) * u * u
            update = rate * u
        w = w - update
    return w


def _run_keras(opt, w0, grads):
    var = keras.Variable(np.array(w0, dtype=np.float32))
    for g in grads:
        opt.apply([tf.constant(np.array(g, dtype=np.float32))], [var])
    return keras.ops.convert_to_numpy(var)


W0 = [0.5, -1.0, 2.0, 0.0]
GRADS = [
    [0.1, -0.2, 0.3, 0.05],
    [0.4, 0.1, -0.2, 0.0],
    [-0.3, 0.2, 0.1, -0.1],
    [0.2, 0.2, 0.2, 0.2],
]


@pytest.mark.parametrize("solver_type", SOLVER_TYPES)
@pytest.mark.parametrize("regularization_type", ["L2", "L1"])
def test_update_rule_matches_caffe(solver_type, regularization_type):
    # A rate that halves every update checks that history and rate combine as in Caffe.
    s = settings(
        solver_type=solver_type,
        base_lr=0.1 if solver_type != "AdaDelta" else 1.0,
        lr_policy="step",
        gamma=0.5,
        stepsize=1,
        momentum=0.0 if solver_type in ("RMSProp", "AdaGrad") else 0.9,
        delta=1e-6,
        rms_decay=0.9,
        weight_decay=0.05,
        regularization_type=regularization_type,
    )
    got = _run_keras(make_optimizer(s), W0, GRADS)
    want = _caffe_reference(s, W0, GRADS)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-7)


def test_keras_rmsprop_and_adagrad_would_differ():
    # Why CaffeRMSprop/CaffeAdagrad exist: stock Keras puts epsilon inside the square root
    # (and Adagrad starts at 0.1), which is far from Caffe on small gradients.
    s = settings(solver_type="RMSProp", base_lr=0.01, delta=1e-2, rms_decay=0.9)
    grads = [[1e-3, -1e-3, 1e-3, 0.0]] * 3
    caffe = _caffe_reference(s, W0, grads)
    stock = _run_keras(keras.optimizers.RMSprop(0.01, rho=0.9, epsilon=1e-2), W0, grads)
    ours = _run_keras(make_optimizer(s), W0, grads)
    np.testing.assert_allclose(ours, caffe, rtol=1e-5)
    assert not np.allclose(stock, caffe, rtol=1e-3)


def test_weight_decay_one_sgd_step_by_hand():
    # w = [1, -2, 0], g = 0.5, lr 0.1, decay 0.01, no momentum:
    # L2: w - 0.1 * (0.5 + 0.01 * w) = [0.949, -2.048, -0.05]
    # L1: w - 0.1 * (0.5 + 0.01 * sign(w)) = [0.949, -2.049, -0.05]
    w0, g = [1.0, -2.0, 0.0], [[0.5, 0.5, 0.5]]
    for reg, expected in (("L2", [0.949, -2.048, -0.05]), ("L1", [0.949, -2.049, -0.05])):
        s = settings(base_lr=0.1, weight_decay=0.01, regularization_type=reg)
        np.testing.assert_allclose(_run_keras(make_optimizer(s), w0, g), expected, rtol=1e-6)


def test_weight_decay_is_coupled_with_momentum():
    # Caffe feeds the decay term through the momentum history; AdamW-style decoupled decay
    # (Keras' weight_decay) would not, so the second step tells them apart.
    s = settings(base_lr=0.1, momentum=0.9, weight_decay=0.1)
    w0, grads = [1.0], [[0.0], [0.0]]
    # step 0: h = 0.1*(0.1*1) = 0.01, w = 0.99; step 1: h = 0.9*0.01 + 0.1*0.099 = 0.0189
    np.testing.assert_allclose(_run_keras(make_optimizer(s), w0, grads), [0.9711], rtol=1e-6)


def test_excluded_variable_gets_no_decay():
    s = settings(base_lr=0.1, weight_decay=0.5)
    opt = make_optimizer(s)
    kernel = keras.Variable(np.ones(2, np.float32), name="kernel")
    bias = keras.Variable(np.ones(2, np.float32), name="bias")
    opt.exclude_from_weight_decay(var_names=["bias"])
    zero = tf.zeros(2)
    opt.apply([zero, zero], [kernel, bias])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(kernel), [0.95, 0.95], rtol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bias), [1.0, 1.0])


# --------------------------------------------------------------------------------------------
# iter_size and clipping
# --------------------------------------------------------------------------------------------


def test_iter_size_accumulates_like_one_mean_step():
    base = dict(base_lr=0.1, momentum=0.9, weight_decay=0.01, lr_policy="step", gamma=0.5)
    g1, g2, g3, g4 = [0.2, -0.4], [0.6, 0.0], [-0.2, 0.2], [0.4, 0.4]
    w0 = [1.0, -1.0]
    two = make_optimizer(settings(iter_size=2, stepsize=1, **base))
    var = keras.Variable(np.array(w0, np.float32))
    two.apply([tf.constant(g1)], [var])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(var), w0)  # first half: no update
    two.apply([tf.constant(g2)], [var])
    two.apply([tf.constant(g3)], [var])
    two.apply([tf.constant(g4)], [var])
    mean_grads = [np.mean([g1, g2], axis=0), np.mean([g3, g4], axis=0)]
    one = _run_keras(make_optimizer(settings(iter_size=1, stepsize=1, **base)), w0, mean_grads)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(var), one, rtol=1e-6)
    # and both are Caffe's two updates (rate 0.1 then 0.05)
    reference = _caffe_reference(settings(iter_size=1, stepsize=1, **base), w0, mean_grads)
    np.testing.assert_allclose(one, reference, rtol=1e-6)


def test_adam_bias_correction_counts_updates_with_iter_size():
    base = dict(solver_type="Adam", base_lr=0.01, momentum=0.9, delta=1e-8)
    grads = [[0.3, -0.1], [0.1, 0.5], [0.2, 0.2], [-0.4, 0.1]]
    w0 = [0.0, 0.0]
    accumulated = _run_keras(make_optimizer(settings(iter_size=2, **base)), w0, grads)
    means = [np.mean(grads[0:2], axis=0), np.mean(grads[2:4], axis=0)]
    np.testing.assert_allclose(
        accumulated, _caffe_reference(settings(**base), w0, means), rtol=1e-5
    )


def test_clip_gradients_scales_the_global_norm():
    # g = [3, 4] (norm 5) clipped to 1 -> [0.6, 0.8]; w -= 0.1 * g
    s = settings(base_lr=0.1, clip_gradients=1.0)
    np.testing.assert_allclose(
        _run_keras(make_optimizer(s), [0.0, 0.0], [[3.0, 4.0]]), [-0.06, -0.08], rtol=1e-6
    )
    # under the threshold nothing changes
    s = settings(base_lr=0.1, clip_gradients=10.0)
    np.testing.assert_allclose(
        _run_keras(make_optimizer(s), [0.0, 0.0], [[3.0, 4.0]]), [-0.3, -0.4], rtol=1e-6
    )


def test_clip_gradients_applies_to_caffes_sum_with_iter_size():
    # Caffe: sum of two [3, 4] = [6, 8], norm 10 > 6 -> scale 0.6 -> [3.6, 4.8]; / iter_size
    # -> [1.8, 2.4]; w -= 0.1 * that. (Clipping the mean [3, 4] at 6 would not clip at all.)
    s = settings(base_lr=0.1, clip_gradients=6.0, iter_size=2)
    got = _run_keras(make_optimizer(s), [0.0, 0.0], [[3.0, 4.0], [3.0, 4.0]])
    np.testing.assert_allclose(got, [-0.18, -0.24], rtol=1e-6)


# --------------------------------------------------------------------------------------------
# Fresh optimizers
# --------------------------------------------------------------------------------------------


def test_fresh_optimizer_starts_at_scheduled_rate():
    s = settings(base_lr=0.1, lr_policy="step", gamma=0.1, stepsize=2, momentum=0.9)
    used = make_optimizer(s)
    var = keras.Variable(np.ones(3, np.float32))
    for _ in range(5):
        used.apply([tf.ones(3)], [var])
    assert float(used.learning_rate) == pytest.approx(caffe_learning_rate(s, 5), rel=1e-6)
    for fresh in (fresh_optimizer(s), fresh_optimizer(used)):
        assert type(fresh) is type(used) and fresh is not used
        assert int(fresh.iterations) == 0
        assert float(fresh.learning_rate) == pytest.approx(0.1, rel=1e-6)
        other = keras.Variable(np.ones(3, np.float32))
        fresh.apply([tf.ones(3)], [other])  # builds on new variables, first step at lr 0.1
        np.testing.assert_allclose(keras.ops.convert_to_numpy(other), [0.9] * 3, rtol=1e-6)


def test_zeroing_optimizer_variables_zeroes_the_learning_rate():
    # The pitfall fresh_optimizer avoids: the lr variable is one of optimizer.variables.
    opt = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9)
    opt.build([keras.Variable(np.ones(2, np.float32))])
    for v in opt.variables:
        v.assign(keras.ops.zeros(v.shape, v.dtype))
    assert float(opt.learning_rate) == 0.0


# --------------------------------------------------------------------------------------------
# Reading solvers
# --------------------------------------------------------------------------------------------


def _corpus_solvers() -> list[Path]:
    return sorted(CORPUS.glob("solver__*.prototxt")) if CORPUS.is_dir() else []


@pytest.mark.skipif(not _corpus_solvers(), reason="../shared/corpus is not available")
@pytest.mark.parametrize("path", _corpus_solvers(), ids=lambda p: p.name)
def test_corpus_solver_loads(path):
    s = TrainingSettings.from_solver(path)
    assert s.source == str(path) and s.max_iter > 0
    opt = make_optimizer(s)
    assert float(opt.learning_rate) == pytest.approx(caffe_learning_rate(s, 0), rel=1e-6)


def _corpus(name: str) -> Path:
    path = CORPUS / name
    if not path.exists():
        pytest.skip(f"../shared/corpus/{name} is not available")
    return path


def test_lenet_solver_values():
    s = TrainingSettings.from_solver(_corpus("solver__BVLC__lenet_solver.prototxt"))
    assert (s.lr_policy, s.gamma, s.power, s.base_lr) == ("inv", 1e-4, 0.75, 0.01)
    assert (s.momentum, s.weight_decay, s.max_iter) == (0.9, 5e-4, 10000)
    assert (s.solver_type, s.regularization_type, s.iter_size) == ("SGD", "L2", 1)
    assert (s.test_iter, s.test_interval, s.display, s.random_seed) == ((100,), 500, 100, None)
    assert s.delta == 1e-8 and s.clip_gradients == -1.0 and s.batch_size == 32


def test_lenet_rmsprop_solver_values():
    s = TrainingSettings.from_solver(_corpus("solver__BVLC__lenet_solver_rmsprop.prototxt"))
    assert (s.solver_type, s.rms_decay, s.momentum) == ("RMSProp", 0.98, 0.0)
    assert isinstance(make_optimizer(s), CaffeRMSprop)


def test_squeezenet_solver_values():
    s = TrainingSettings.from_solver(_corpus("solver__forresti__SqueezeNet_v1.1-solver.prototxt"))
    assert (s.lr_policy, s.power, s.base_lr, s.max_iter) == ("poly", 1.0, 0.04, 170000)
    assert (s.iter_size, s.random_seed, s.total_batches) == (16, 42, 170000 * 16)
    assert make_optimizer(s).gradient_accumulation_steps == 16


def test_alexnet_solver_values():
    s = TrainingSettings.from_solver(_corpus("solver__BVLC__bvlc_alexnet-solver.prototxt"))
    assert (s.lr_policy, s.gamma, s.stepsize) == ("step", 0.1, 100000)
    assert s.learning_rate(100000) == pytest.approx(0.001)


def test_solver_parameter_object_and_deprecated_enum(tmp_path):
    param = caffe_pb2.SolverParameter(base_lr=0.001, lr_policy="fixed", momentum=0.9)
    param.solver_type = caffe_pb2.SolverParameter.ADAM
    s = TrainingSettings.from_solver(param)
    assert s.solver_type == "Adam" and s.base_lr == 0.001
    path = write_solver(tmp_path, 'base_lr: 0.01 lr_policy: "fixed" solver_type: NESTEROV\n')
    assert TrainingSettings.from_solver(path).solver_type == "Nesterov"


def test_overrides(tmp_path):
    path = write_solver(tmp_path, 'base_lr: 0.01 lr_policy: "fixed" momentum: 0.9\n')
    s = TrainingSettings.from_solver(path)
    t = s.with_overrides(base_lr=0.5, max_iter=None, batch_size=64, solver_type="nesterov")
    assert (t.base_lr, t.max_iter, t.batch_size, t.solver_type) == (0.5, s.max_iter, 64, "Nesterov")
    assert t.momentum == 0.9 and s.base_lr == 0.01  # original untouched
    with pytest.raises(CocotuneError, match="stepsize"):
        s.with_overrides(lr_policy="step")
    with pytest.raises(TypeError):
        s.with_overrides(no_such_flag=1)
    # a solver without lr_policy is accepted when a flag supplies it
    bare = write_solver(tmp_path, "base_lr: 0.01\n")
    assert TrainingSettings.from_solver(bare, lr_policy="poly", max_iter=10).lr_policy == "poly"


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, pattern",
    [
        ('base_lr: 0.01 lr_policy: "fixed" type: "Adamm"', r"unknown solver type 'Adamm'.*'Adam'"),
        ('base_lr: 0.01 lr_policy: "cosine_decay"', r"unknown lr_policy 'cosine_decay'"),
        ('base_lr: 0.01 lr_policy: "sgdr"', r"unknown lr_policy 'sgdr'.*fork"),
        ('base_lr: 0.01 lr_policy: "steps"', r"'steps'.*did you mean 'step'"),
        ("base_lr: 0.01", r"does not set lr_policy"),
        ('lr_policy: "step" gamma: 0.1', r"stepsize > 0"),
        ('lr_policy: "poly" power: 1', r"max_iter > 0"),
        ('lr_policy: "fixed" type: "SGD" solver_type: ADAM', r"both 'type' and .*solver_type"),
        (
            'lr_policy: "fixed" type: "RMSProp" momentum: 0.9',
            r"momentum cannot be used with RMSProp",
        ),
        (
            'lr_policy: "fixed" type: "AdaGrad" momentum: 0.9',
            r"momentum cannot be used with AdaGrad",
        ),
        ('lr_policy: "fixed" type: "RMSProp" rms_decay: 1.0', r"rms_decay"),
        ('lr_policy: "fixed" regularization_type: "L3"', r"regularization_type 'L3'"),
        ('lr_policy: "fixed" clip_gradients: 0', r"clip_gradients"),
    ],
)
def test_solver_errors(tmp_path, text, pattern):
    path = write_solver(tmp_path, text + "\n")
    with pytest.raises(CocotuneError, match=pattern) as info:
        TrainingSettings.from_solver(path)
    assert str(path) in str(info.value)


def test_unknown_solver_field_is_a_cocotune_error(tmp_path):
    path = write_solver(tmp_path, 'base_lr: 0.01 lr_polcy: "fixed"\n')
    with pytest.raises(CocotuneError):
        TrainingSettings.from_solver(path)


def test_direct_construction_errors():
    with pytest.raises(CocotuneError, match="unknown lr_policy 'bogus'"):
        TrainingSettings(lr_policy="bogus")
    with pytest.raises(CocotuneError, match="unknown solver type"):
        TrainingSettings(solver_type="LBFGS")
    with pytest.raises(CocotuneError, match="unknown lr_policy"):
        CaffeSchedule(0.1, "bogus")


def test_spellings_are_normalised():
    s = TrainingSettings(solver_type="adagrad", lr_policy="FIXED", regularization_type="l1")
    assert (s.solver_type, s.lr_policy, s.regularization_type) == ("AdaGrad", "fixed", "L1")


# --------------------------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------------------------


def test_presets():
    r = preset("wootz-pretrain-resnet")
    assert (r.max_iter, r.batch_size, r.base_lr, r.weight_decay) == (10000, 32, 0.2, 1e-4)
    assert (r.solver_type, r.momentum, r.lr_policy) == ("SGD", 0.9, "fixed")
    i = preset("wootz-pretrain-inception")
    assert (i.max_iter, i.base_lr) == (20000, 0.08)
    f = preset("wootz-finetune")
    assert (f.max_iter, f.batch_size, f.base_lr, f.lr_policy, f.weight_decay) == (
        30000,
        32,
        0.001,
        "fixed",
        1e-5,
    )
    d = preset("demo")
    assert d.lr_policy == "step" and d.max_iter <= 1000 and d.momentum == 0.9
    for settings_ in PRESETS.values():
        make_optimizer(settings_)
    assert preset("demo").with_overrides(max_iter=10).max_iter == 10


def test_unknown_preset():
    with pytest.raises(CocotuneError, match=r"unknown preset 'wootz-finetun'.*'wootz-finetune'"):
        preset("wootz-finetun")
