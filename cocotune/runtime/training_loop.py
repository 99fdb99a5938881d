"""The training primitives every loop shares: step a model, evaluate it, re-estimate BatchNorm.

Two loops. :func:`fit` is the convergence-driven loop of exploration (and of the composability
benchmark): it measures validation accuracy every ``eval_every`` steps and stops on one
:class:`StopRule` -- the same rule for every method compared, so no method gets more steps.
:func:`train_steps` runs a fixed number of steps (the full model, tuning-block pre-training).

Small nets spend most of their time outside the arithmetic: one Python-level model call per
batch and one re-trace per new input shape. So each model gets one compiled step function per
loop, one compiled inference function (:func:`predict_batches`, cached per model, batch
dimension left open) and one compiled BatchNorm re-estimation pass (:func:`recalibrate_batchnorm`).

The commands that use these loops are :mod:`cocotune.runtime.train` (a generated ``train.py``),
:mod:`cocotune.runtime.pretrain` and :mod:`cocotune.runtime.explore`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from cocotune.errors import CocotuneError

#: Evaluations without an improvement of at least ``min_delta`` before a plateau stop.
DEFAULT_PATIENCE = 3
#: The smallest gain in validation accuracy that counts as an improvement.
DEFAULT_MIN_DELTA = 0.005
#: Steps between evaluations when neither ``--eval-every`` nor the solver's test_interval says.
DEFAULT_EVAL_EVERY = 20

STOPS = ("threshold", "plateau", "limit", "aborted")


@dataclass(frozen=True)
class StopRule:
    """When fine-tuning stops; evaluation happens at step 0, every ``eval_every`` steps and at
    the last step.

    * threshold: the first evaluation with accuracy >= ``threshold`` (None: never);
    * plateau: the best accuracy has not improved by >= ``min_delta`` for ``patience``
      consecutive evaluations;
    * limit: ``max_steps`` steps done.
    """

    max_steps: int
    eval_every: int
    patience: int
    min_delta: float
    threshold: float | None = None

    def __post_init__(self) -> None:
        if self.max_steps < 0:
            raise CocotuneError(f"the step limit must be >= 0, not {self.max_steps}")
        if self.eval_every < 1:
            raise CocotuneError(f"--eval-every must be >= 1, not {self.eval_every}")
        if self.patience < 1:
            raise CocotuneError(f"--patience must be >= 1, not {self.patience}")
        if not self.min_delta > 0:
            raise CocotuneError(f"--min-delta must be > 0, not {self.min_delta}")

    def as_dict(self) -> dict:
        return asdict(self)


def stop_rule(
    settings,
    *,
    steps: int | None = None,
    eval_every: int | None = None,
    patience: int | None = None,
    min_delta: float | None = None,
    threshold: float | None = None,
) -> StopRule:
    """The rule from flags, falling back to the solver's fields where Caffe has them.

    ``steps`` (the limit) defaults to Caffe's ``max_iter`` x ``iter_size`` batches,
    ``eval_every`` to ``test_interval`` x ``iter_size`` (else :data:`DEFAULT_EVAL_EVERY`),
    clamped to the limit; ``patience`` and ``min_delta`` have no Caffe field.
    """
    limit = int(steps) if steps is not None else int(settings.total_batches)
    if eval_every is None:
        interval = int(getattr(settings, "test_interval", 0) or 0)
        eval_every = interval * int(settings.iter_size) if interval else DEFAULT_EVAL_EVERY
        eval_every = max(1, min(eval_every, limit))
    return StopRule(
        max_steps=limit,
        eval_every=int(eval_every),
        patience=int(patience if patience is not None else DEFAULT_PATIENCE),
        min_delta=float(min_delta if min_delta is not None else DEFAULT_MIN_DELTA),
        threshold=threshold,
    )


@dataclass
class FitResult:
    """What :func:`fit` did. ``curve`` holds ``[step, seconds, val_accuracy]`` points, the
    first at step 0 before any step; ``seconds`` is wall time since the first step began,
    taken after that point's evaluation (so it includes the evaluations so far)."""

    steps: int
    stop: str
    curve: list[list] = field(default_factory=list)
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    losses: list[float] = field(default_factory=list)
    first_step_at: float | None = None  # time.perf_counter() when the first step began


@dataclass
class StepsResult:
    """What :func:`train_steps` did (``curve``: ``(step, accuracy)`` pairs)."""

    steps: int
    losses: list[float] = field(default_factory=list)
    curve: list[tuple[int, float]] = field(default_factory=list)
    aborted: bool = False


def classification_loss(outputs_probabilities: bool):
    import keras

    return keras.losses.SparseCategoricalCrossentropy(from_logits=not outputs_probabilities)


def _train_step_fn(model, optimizer, loss_fn):
    """One compiled optimisation step for ``model`` (traced once per input shape)."""
    import tensorflow as tf

    variables = model.trainable_variables
    optimizer.build(variables)  # slots created eagerly, not inside the traced step

    @tf.function(reduce_retracing=True, autograph=False)
    def train_step(x, y):
        with tf.GradientTape() as tape:
            outputs = model(x, training=True)
            loss = loss_fn(y, outputs)
            if model.losses:
                loss = loss + tf.add_n(model.losses)
        grads = tape.gradient(loss, variables)
        optimizer.apply(grads, variables)
        return loss

    return train_step


def fit(
    model,
    batches,
    optimizer,
    loss_fn,
    rule,
    evaluate_fn: Callable[[], float] | None = None,
    *,
    should_abort: Callable[[], bool] | None = None,
    on_eval: Callable[[int, float, float], None] | None = None,
    on_step: Callable[[int, float], None] | None = None,
    **legacy,
):
    """Fine-tune until ``rule`` says stop, measuring ``evaluate_fn()`` (validation accuracy).

    ``loss_fn(y, outputs)`` returns the scalar loss; the model's own losses are added.
    ``on_eval(step, seconds, accuracy)`` runs after each evaluation. ``should_abort`` is
    polled between steps; an abort ends the fit with ``stop == "aborted"``.

    Called the old way, ``fit(model, batches, optimizer, steps:int, loss_fn, ...)``, it runs
    :func:`train_steps` (kept while callers move over).
    """
    if isinstance(loss_fn, (int, np.integer)) and not isinstance(loss_fn, bool):
        return train_steps(
            model,
            batches,
            optimizer,
            int(loss_fn),
            rule,
            evaluate_fn=evaluate_fn,
            should_abort=should_abort,
            on_step=on_step,
            **legacy,
        )
    if legacy:
        raise TypeError(f"fit() got unexpected arguments {sorted(legacy)}")
    if evaluate_fn is None:
        raise TypeError("fit() needs evaluate_fn (validation accuracy)")
    train_step = _train_step_fn(model, optimizer, loss_fn)
    result = FitResult(steps=0, stop="limit")
    clock: dict[str, float | None] = {"origin": None}
    best = {"acc": -np.inf, "stale": 0}

    def evaluate(step: int) -> str | None:
        t = time.perf_counter()
        acc = float(evaluate_fn())
        now = time.perf_counter()
        result.eval_seconds += now - t
        seconds = 0.0 if clock["origin"] is None else now - clock["origin"]
        result.curve.append([step, round(seconds, 4), acc])
        if on_eval is not None:
            on_eval(step, seconds, acc)
        if rule.threshold is not None and acc >= rule.threshold:
            return "threshold"
        if acc >= best["acc"] + rule.min_delta or best["acc"] == -np.inf:
            best["acc"], best["stale"] = max(acc, best["acc"]), 0
        else:
            best["stale"] += 1
            if best["stale"] >= rule.patience:
                return "plateau"
        return None

    stop = evaluate(0)
    iterator = iter(batches)
    step = 0
    while stop is None and step < rule.max_steps:
        if should_abort is not None and should_abort():
            stop = "aborted"
            break
        x, y = next(iterator)
        t = time.perf_counter()
        if clock["origin"] is None:
            clock["origin"] = result.first_step_at = t
        loss = float(train_step(x, y))
        result.train_seconds += time.perf_counter() - t
        if not np.isfinite(loss):
            raise FloatingPointError(f"training diverged at step {step + 1} (loss {loss})")
        step += 1
        result.losses.append(loss)
        result.steps = step
        if on_step is not None:
            on_step(step, loss)
        if step % rule.eval_every == 0 or step == rule.max_steps:
            stop = evaluate(step)
    result.stop = stop or "limit"
    return result


def train_steps(
    model,
    batches,
    optimizer,
    steps: int,
    loss_fn: Callable,
    *,
    on_step: Callable[[int, float], None] | None = None,
    eval_every: int = 0,
    evaluate_fn: Callable[[], float] | None = None,
    should_abort: Callable[[], bool] | None = None,
    start_step: int = 0,
) -> StepsResult:
    """Run ``steps`` optimisation steps on ``batches`` (an iterator of (x, y)).

    ``loss_fn(y, outputs)`` returns the scalar loss; the model's own losses are added.
    ``evaluate_fn`` runs every ``eval_every`` steps to record a curve.
    """
    train_step = _train_step_fn(model, optimizer, loss_fn)
    result = StepsResult(steps=start_step)
    iterator = iter(batches)
    for step in range(start_step, steps):
        if should_abort is not None and should_abort():
            result.aborted = True
            break
        x, y = next(iterator)
        loss = float(train_step(x, y))
        if not np.isfinite(loss):
            raise FloatingPointError(f"training diverged at step {step + 1} (loss {loss})")
        result.losses.append(loss)
        result.steps = step + 1
        if on_step is not None:
            on_step(step + 1, loss)
        if evaluate_fn is not None and eval_every and (step + 1) % eval_every == 0:
            result.curve.append((step + 1, evaluate_fn()))
    return result


def _compiled(model, purpose: str, make: Callable):
    """One compiled function per model and purpose, kept on the model itself: a global cache
    (even a WeakKeyDictionary) would keep every model alive, since each function refers to it."""
    per_model = model.__dict__.setdefault("_cocotune_compiled", {})
    if purpose not in per_model:
        per_model[purpose] = make()
    return per_model[purpose]


def _open_batch_spec(model):
    import tensorflow as tf

    shape = tuple(model.inputs[0].shape)[1:] if getattr(model, "inputs", None) else None
    if shape is None or any(d is None for d in shape):
        return None
    return [tf.TensorSpec((None, *shape), tf.float32)]


def _predict_fn(model):
    import tensorflow as tf

    def make():
        spec = _open_batch_spec(model)
        if spec is None:
            return tf.function(
                lambda x: model(x, training=False), reduce_retracing=True, autograph=False
            )
        return tf.function(
            lambda x: model(x, training=False), input_signature=spec, autograph=False
        )

    return _compiled(model, "predict", make)


def _batch_size(x, batch_size: int | None) -> int:
    """``batch_size``, else one bounded by the image size (27 at 224x224x3, 256 for small
    images): a batch's activations, not the model, dominate memory for large images."""
    from cocotune.runtime.model import eval_batch_size

    return int(batch_size) if batch_size else eval_batch_size(tuple(x.shape[1:]))


def predict_batches(model, x, batch_size: int | None = None) -> np.ndarray:
    """Model outputs in inference mode, batch by batch (one compiled function per model)."""
    predict = _predict_fn(model)
    batch_size = _batch_size(x, batch_size)
    outs = [
        np.asarray(predict(np.asarray(x[i : i + batch_size], dtype=np.float32)))
        for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(outs) if outs else np.zeros((0,))


def accuracy(model, x, y, batch_size: int | None = None) -> float:
    """Top-1 accuracy of a classifier (probabilities or logits: argmax is the same)."""
    if len(x) == 0:
        return float("nan")
    pred = predict_batches(model, x, batch_size).reshape(len(x), -1).argmax(axis=1)
    return float(np.mean(pred == np.asarray(y).reshape(-1)))


def recalibration_images(x, n: int, chunk: int = 64) -> np.ndarray:
    """The ``n`` training images BatchNorm statistics are re-estimated on: contiguous chunks
    spread evenly over ``x`` (so a class-sorted folder still gives every class), the same
    images every time for the same ``x`` and ``n``. Uses only ``len(x)`` and slices."""
    total = len(x)
    n = min(int(n), total)
    if n <= 0:
        return np.zeros((0, *tuple(x.shape[1:])), np.float32)
    chunks = -(-n // chunk)
    starts = np.linspace(0, total - min(chunk, n), chunks).astype(int) if chunks > 1 else [0]
    parts, taken = [], 0
    for s in starts:
        size = min(chunk, n - taken)
        parts.append(np.asarray(x[int(s) : int(s) + size], dtype=np.float32))
        taken += size
    return np.concatenate(parts)


def recalibrate_batchnorm(model, x, batch_size: int | None = None) -> int:
    """Re-estimate every trainable BatchNorm's statistics on ``x`` (returns how many layers).

    Pruning changes the activations a BatchNorm sees, so inherited statistics are stale; and
    with Caffe's moving-average fraction (0.999) a few hundred training steps leave the
    moving statistics far from the data's. Each batch runs through the model in training mode
    with momentum 0 (one compiled pass per model), so a BatchNorm's moving statistics become
    that batch's; their mean over the batches (weighted by batch size) is then assigned: the
    exact average of the batch statistics. Frozen BatchNorms (a teacher's) run in inference
    mode and are left alone. Batches hold ``batch_size`` images, by default 256 for small
    images and fewer for large ones (27 at 224x224x3, see ``model.eval_batch_size``): a
    training-mode pass holds ~15 MB per 224x224 image for ResNet-50.
    """
    import keras
    import tensorflow as tf

    bns = [
        layer
        for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable
    ]
    if not bns or len(x) == 0:
        return 0

    def make():
        saved = [layer.momentum for layer in bns]
        for layer in bns:
            layer.momentum = 0.0  # read when tracing: the traced pass copies batch statistics
        try:
            spec = _open_batch_spec(model)
            fn = (
                tf.function(
                    lambda x: model(x, training=True), input_signature=spec, autograph=False
                )
                if spec is not None
                else tf.function(lambda x: model(x, training=True), autograph=False)
            )
            # trace now, while momentum is 0 (on a copy of the statistics, restored below)
            probe = np.asarray(x[:1], dtype=np.float32)
            before = [(b.moving_mean.numpy(), b.moving_variance.numpy()) for b in bns]
            fn.get_concrete_function(tf.constant(probe))
            for b, (m, v) in zip(bns, before):
                b.moving_mean.assign(m)
                b.moving_variance.assign(v)
        finally:
            for layer, momentum in zip(bns, saved):
                layer.momentum = momentum
        return fn

    run = _compiled(model, "bn", make)
    batch_size = _batch_size(x, batch_size)
    means = [np.zeros(b.moving_mean.shape, np.float64) for b in bns]
    variances = [np.zeros(b.moving_variance.shape, np.float64) for b in bns]
    seen = 0
    for start in range(0, len(x), batch_size):
        batch = np.asarray(x[start : start + batch_size], dtype=np.float32)
        run(batch)
        for i, b in enumerate(bns):
            means[i] += len(batch) * b.moving_mean.numpy()
            variances[i] += len(batch) * b.moving_variance.numpy()
        seen += len(batch)
    for b, m, v in zip(bns, means, variances):
        b.moving_mean.assign((m / seen).astype(b.moving_mean.dtype))
        b.moving_variance.assign((v / seen).astype(b.moving_variance.dtype))
    return len(bns)
