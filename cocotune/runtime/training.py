"""The training primitives every loop shares: step a model, evaluate it, re-estimate BatchNorm.

One compiled step function per model (``tf.function``), Caffe's solver semantics from
:mod:`cocotune.runtime.solver`, and an ``should_abort`` hook checked between steps so that
exploration can stop a configuration that no longer matters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class FitResult:
    steps: int
    losses: list[float] = field(default_factory=list)
    curve: list[tuple[int, float]] = field(default_factory=list)  # (step, test accuracy)
    aborted: bool = False


def classification_loss(outputs_probabilities: bool):
    import keras

    return keras.losses.SparseCategoricalCrossentropy(from_logits=not outputs_probabilities)


def fit(
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
) -> FitResult:
    """Run ``steps`` optimisation steps on ``batches`` (an iterator of (x, y)).

    ``loss_fn(y, outputs)`` returns the scalar loss; the model's own losses are added.
    ``evaluate_fn`` runs every ``eval_every`` steps (and at the end) to record a curve.
    """
    import tensorflow as tf

    variables = model.trainable_variables
    optimizer.build(variables)  # slots created eagerly, not inside the traced step

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            outputs = model(x, training=True)
            loss = loss_fn(y, outputs)
            if model.losses:
                loss = loss + tf.add_n(model.losses)
        grads = tape.gradient(loss, variables)
        optimizer.apply(grads, variables)
        return loss

    result = FitResult(steps=start_step)
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


def predict_batches(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Model outputs in inference mode, batch by batch (no Keras progress output)."""
    outs = [np.asarray(model(x[i : i + batch_size], training=False))
            for i in range(0, len(x), batch_size)]  # fmt: skip
    return np.concatenate(outs) if outs else np.zeros((0,))


def accuracy(model, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> float:
    """Top-1 accuracy of a classifier (probabilities or logits: argmax is the same)."""
    if len(x) == 0:
        return float("nan")
    pred = predict_batches(model, x, batch_size).reshape(len(x), -1).argmax(axis=1)
    return float(np.mean(pred == np.asarray(y).reshape(-1)))


def recalibrate_batchnorm(model, x: np.ndarray, batch_size: int = 256) -> int:
    """Re-estimate every trainable BatchNorm's statistics on ``x`` (returns how many layers).

    Pruning changes the activations a BatchNorm sees, so inherited statistics are stale; and
    with Caffe's moving-average fraction (0.999) a few hundred training steps leave the
    moving statistics far from the data's. Training-mode passes over ``x`` with momentum set
    to (k-1)/k for the k-th batch make the moving statistics the exact average of the batch
    statistics. Frozen BatchNorms (a teacher's) run in inference mode and are left alone.
    """
    import keras

    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not bns or len(x) == 0:
        return 0
    saved = [layer.momentum for layer in bns]
    try:
        for k, start in enumerate(range(0, len(x), batch_size), start=1):
            for layer in bns:
                layer.momentum = (k - 1) / k
            model(x[start : start + batch_size], training=True)
    finally:
        for layer, momentum in zip(bns, saved):
            layer.momentum = momentum
    return sum(1 for layer in bns if layer.trainable)
