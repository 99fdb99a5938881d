"""Pattern + connectivity pruning of a Keras model with ADMM, then masked retraining.

The problem: minimise the training loss subject to every pruned layer's kernel ``W`` lying in
``S`` = (each kernel follows one library pattern) ∩ (at most ``round(n/rate)`` kernels kept).
ADMM splits it with a copy ``Z ∈ S`` and a scaled dual ``U``:

- W-step: a few SGD epochs on ``loss(W) + Σ ρ/2 ‖W − Z + U‖²``;
- Z-step: ``Z = Proj_S(W + U)`` (exact Euclidean projection, :func:`project_layer`);
- U-step: ``U = U + W − Z``;
- ρ schedule: ``ρ_k = min(ρ0 · mult^k, ρ_max)``, so early iterations follow the loss and later
  ones pull ``W`` onto ``S``.

The first 3×3 layer (few input channels: removing kernels there removes whole filters' only
inputs) gets patterns but no connectivity pruning by default (``first_layer='pattern'``), as in
the CoCoPIE papers; ``'prune'`` treats it like the others and ``'skip'`` leaves it dense.

Then ``W = Proj_S(W)`` gives the masks, and masked retraining (gradients masked, weights
re-masked after every step) recovers accuracy while pruned weights stay exactly zero.

Pointwise layers (``pointwise > 1``): 1×1 Conv2D layers and every Dense layer except the
last (the classifier) join the same ADMM loop with the block-column constraint of
:mod:`cocotune.cocogen.pointwise` (at most ``round(n_blocks/rate)`` non-zero blocks of one input
channel × 16 filters; :func:`~cocotune.cocogen.pointwise.project_pointwise` is the exact
projection), so a network whose MACs are mostly 1×1 (a ResNet bottleneck) is compressed beyond
its 3×3 layers, in the layout the generated pointwise kernels read.

Depthwise layers (``depthwise=True``): every 3×3 DepthwiseConv2D joins the loop with the
constraint of :mod:`cocotune.cocogen.depthwise` (one 4-tap pattern per group of 16 channels,
:func:`~cocotune.cocogen.depthwise.project_depthwise` is the exact projection), the layout the
generated depthwise kernels read (MobileNet v1/v2).

BatchNorm: training steps normalise with batch statistics, while evaluation (and the converted
TFLite model, where the converter folds BatchNorm into the convolution) uses the moving
averages. With a high momentum (a Caffe BatchNorm converts with 0.999) those averages still
describe the weights of hundreds of steps ago after ADMM has moved them, and the hard
projection changes every layer's output statistics at once; so after the projection and after
retraining, :func:`recalibrate_batchnorm` sets every BatchNorm's moving mean and variance to the
exact statistics of its input over the training set, layer by layer in graph order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cocotune.cocogen.patterns import PatternLibrary, project_layer, select_library

__all__ = [
    "ADMMConfig",
    "PruneReport",
    "prunable_layers",
    "constraint_distance",
    "admm_prune",
    "recalibrate_batchnorm",
]


@dataclass
class ADMMConfig:
    patterns: int = 8
    connectivity: float = 3.6
    admm_epochs: int = 8
    retrain_epochs: int = 6
    rho0: float = 0.05
    rho_mult: float = 2.0
    rho_max: float = 10.0
    lr: float = 5e-3
    batch_size: int = 32
    seed: int = 0
    first_layer: str = (
        "pattern"  # 'prune' (patterns + connectivity) | 'pattern' (patterns only) | 'skip'
    )
    pointwise: float = 1.0  # block-pruning rate of 1x1 convs and hidden Dense layers; 1 = off
    depthwise: bool = False  # also prune 3x3 depthwise convs (one pattern per 16 channels)

    def rate_for(self, index: int) -> float:
        """Connectivity rate of the ``index``-th prunable layer (the first may be spared)."""
        return 1.0 if index == 0 and self.first_layer == "pattern" else self.connectivity


@dataclass
class PruneReport:
    library: PatternLibrary
    layers: list[str]
    acc_before: float
    acc_after_admm: float
    acc_after_retrain: float
    distance_before: float
    distance_history: list[float] = field(default_factory=list)
    kept: dict = field(default_factory=dict)  # layer -> (kept nonzeros, total)
    masks: dict = field(default_factory=dict)
    batchnorm_recalibrated: list = field(default_factory=list)  # BatchNorm layer names
    pointwise_kept: dict = field(default_factory=dict)  # 1x1 / Dense layer -> (nonzeros, total)
    depthwise_kept: dict = field(default_factory=dict)  # DepthwiseConv2D -> (nonzeros, total)

    @property
    def compression(self) -> float:
        total = sum(t for _, t in self.kept.values())
        nz = sum(k for k, _ in self.kept.values())
        return total / max(nz, 1)

    def to_json(self) -> dict:
        return {
            "library": self.library.to_json(),
            "layers": self.layers,
            "accuracy": {
                "before": self.acc_before,
                "after_admm": self.acc_after_admm,
                "after_retrain": self.acc_after_retrain,
            },
            "distance_to_constraint_set": {
                "before": self.distance_before,
                "per_admm_iteration": self.distance_history,
            },
            "compression_rate": self.compression,
            "batchnorm_recalibrated": self.batchnorm_recalibrated,
            "pointwise": {
                n: {"nonzero": k, "total": t, "rate": t / max(k, 1)}
                for n, (k, t) in self.pointwise_kept.items()
            },
            "depthwise": {
                n: {"nonzero": k, "total": t, "rate": t / max(k, 1)}
                for n, (k, t) in self.depthwise_kept.items()
            },
            "per_layer": {
                n: {"nonzero": k, "total": t, "rate": t / max(k, 1)}
                for n, (k, t) in self.kept.items()
            },
        }


def prunable_layers(model) -> list:
    """3×3 Conv2D layers (one group, no dilation, strides 1 or 2) that pattern pruning applies to."""
    import keras

    out = []
    for layer in model.layers:
        if type(layer).__name__ != "Conv2D" or not isinstance(layer, keras.layers.Conv2D):
            continue
        if tuple(layer.kernel_size) != (3, 3) or tuple(layer.dilation_rate) != (1, 1):
            continue
        if getattr(layer, "groups", 1) != 1 or tuple(layer.strides) not in ((1, 1), (2, 2)):
            continue
        out.append(layer)
    return out


def constraint_distance(kernels: list[np.ndarray], library: PatternLibrary, rate: float) -> float:
    """Relative distance of the kernels to S: ‖W − Proj_S(W)‖ / ‖W‖ over all layers."""
    num = den = 0.0
    for w in kernels:
        p = project_layer(w, library, rate).kernel
        num += float(np.sum((w.astype(np.float64) - p) ** 2))
        den += float(np.sum(w.astype(np.float64) ** 2))
    return (num / max(den, 1e-30)) ** 0.5


def _output_layer(model):
    """The layer producing the model's (first) output."""
    try:
        return model.outputs[0]._keras_history[0]
    except (AttributeError, IndexError, TypeError):
        return model.layers[-1]


def _from_logits(model) -> bool:
    """False when the model ends in a softmax: a Softmax layer (a Caffe Softmax converts to one)
    or a layer with a softmax activation."""
    from cocotune.cocogen.model import keras_activation

    last = _output_layer(model)
    return type(last).__name__ != "Softmax" and keras_activation(last) != "softmax"


def recalibrate_batchnorm(
    model, x: np.ndarray, batch_size: int = 2048, max_samples: int = 4096
) -> list[str]:
    """Set every BatchNormalization's moving mean / variance to its input's statistics over
    ``x[:max_samples]`` (population variance), in graph order, so that each layer sees the
    recalibrated statistics of the layers before it. Returns the names of the layers set.

    One forward pass (a graph-compiled model whose outputs are every BatchNorm's input) per
    BatchNorm, in chunks of ``batch_size``."""
    import warnings

    import keras

    x = x[:max_samples]
    bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    if not bns or not len(x):
        return []
    try:  # one model whose outputs are every BatchNorm's input
        probe = keras.Model(model.inputs, [l.input for l in bns])
    except (ValueError, AttributeError, TypeError):
        return []  # e.g. BatchNorm inside a nested model: left as trained
    import tensorflow as tf

    run = tf.function(lambda t: probe(t, training=False), reduce_retracing=True)
    done = []
    for j, layer in enumerate(bns):  # pass j sees layers < j already recalibrated: exact
        axis = layer.axis if isinstance(layer.axis, int) else layer.axis[0]
        s1 = s2 = np.zeros((), np.float64)  # broadcasts to the channel sums on the first add
        n = 0
        for i in range(0, len(x), batch_size):
            with warnings.catch_warnings():  # a dict-input model called with one array
                warnings.simplefilter("ignore", UserWarning)
                outs = run(tf.constant(x[i : i + batch_size]))
            a = np.asarray(outs[j] if isinstance(outs, (list, tuple)) else outs, np.float64)
            a = np.moveaxis(a, axis, -1).reshape(-1, a.shape[axis])
            s1 = s1 + a.sum(0)
            s2 = s2 + (a * a).sum(0)
            n += len(a)
        mean = s1 / n
        var = np.maximum(s2 / n - mean**2, 0.0)
        layer.moving_mean.assign(mean.astype(np.float32))
        layer.moving_variance.assign(var.astype(np.float32))
        done.append(layer.name)
    return done


def evaluate(model, x, y, batch_size: int = 256) -> float:
    pred = np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
    return float(np.mean(np.argmax(pred, -1) == y))


def admm_prune(model, data, cfg: ADMMConfig, log=print) -> PruneReport:
    """Prune ``model`` in place (see the module docstring); returns the report with the masks."""
    import keras
    import tensorflow as tf

    xtr, ytr, xte, yte = data
    layers = prunable_layers(model)
    if cfg.first_layer == "skip":
        layers = layers[1:]
    if not layers:
        from cocotune.cocogen.errors import CocogenError

        raise CocogenError("the model has no 3x3 Conv2D layer to prune")
    keras.utils.set_random_seed(cfg.seed)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=_from_logits(model))
    n3 = len(layers)
    lib = select_library([np.asarray(l.kernel) for l in layers], cfg.patterns)
    rates = [cfg.rate_for(i) for i in range(n3)]
    if cfg.pointwise > 1:
        from cocotune.cocogen.pointwise import pointwise_layers

        pw = pointwise_layers(model, classifier=False)
        layers = layers + pw
        rates += [cfg.pointwise] * len(pw)
        log(f"block pruning at {cfg.pointwise}x: {', '.join(l.name for l in pw) or 'none'}")
    n_dw = len(layers)  # layers[n_dw:]: depthwise
    if cfg.depthwise:
        from cocotune.cocogen.depthwise import depthwise_layers

        dw = depthwise_layers(model)
        layers = layers + dw
        rates += [1.0] * len(dw)
        log(f"depthwise patterns (per 16 channels): {', '.join(l.name for l in dw) or 'none'}")
    kvars = [layer.kernel for layer in layers]

    def proj(i, w):
        if i >= n_dw:
            from cocotune.cocogen.depthwise import project_depthwise

            return project_depthwise(w)
        if i >= n3:
            from cocotune.cocogen.pointwise import project_pointwise

            return project_pointwise(w, rates[i])
        return project_layer(w, lib, rates[i])

    def distance():
        num = den = 0.0
        for i, v in enumerate(kvars):
            w = np.asarray(v).astype(np.float64)
            num += float(np.sum((w - proj(i, w).kernel) ** 2))
            den += float(np.sum(w**2))
        return (num / max(den, 1e-30)) ** 0.5

    acc0 = evaluate(model, xte, yte)
    d0 = distance()
    log(f"library of {len(lib)} patterns: {lib.to_json()}")
    log(f"accuracy before pruning: {acc0:.4f}; distance to the constraint set {d0:.4f}")

    Z = [tf.Variable(proj(i, np.asarray(v)).kernel, trainable=False) for i, v in enumerate(kvars)]
    U = [tf.Variable(tf.zeros_like(v), trainable=False) for v in kvars]
    rho = tf.Variable(cfg.rho0, trainable=False, dtype=tf.float32)
    opt = keras.optimizers.Adam(cfg.lr)
    tvars = model.trainable_variables

    @tf.function
    def admm_step(xb, yb):
        with tf.GradientTape() as tape:
            out = model(xb, training=True)
            loss = loss_fn(yb, out)
            pen = tf.add_n([tf.reduce_sum(tf.square(w - z + u)) for w, z, u in zip(kvars, Z, U)])
            total = loss + 0.5 * rho * pen
        grads = tape.gradient(total, tvars)
        opt.apply_gradients(zip(grads, tvars))
        return loss

    n = len(xtr)
    rng = np.random.default_rng(cfg.seed)

    def batches():
        idx = rng.permutation(n)
        for i in range(0, n, cfg.batch_size):
            j = idx[i : i + cfg.batch_size]
            yield tf.constant(xtr[j]), tf.constant(ytr[j])

    hist = []
    for it in range(cfg.admm_epochs):
        rho.assign(min(cfg.rho0 * cfg.rho_mult**it, cfg.rho_max))
        for xb, yb in batches():
            admm_step(xb, yb)
        for i, (w, z, u) in enumerate(zip(kvars, Z, U)):
            wn = np.asarray(w)
            zn = proj(i, wn + np.asarray(u)).kernel
            z.assign(zn)
            u.assign(np.asarray(u) + wn - zn)
        d = distance()
        hist.append(d)
        log(
            f"ADMM iteration {it + 1}/{cfg.admm_epochs}: rho={float(rho.numpy()):.4g}, distance {d:.4f}"
        )

    masks = {}
    for i, (layer, w) in enumerate(zip(layers, kvars)):
        pr = proj(i, np.asarray(w))
        w.assign(pr.kernel)
        masks[layer.name] = pr.mask
    recal = recalibrate_batchnorm(model, xtr)
    if recal:
        log(f"BatchNorm statistics re-estimated on the training set: {len(recal)} layer(s)")
    acc1 = evaluate(model, xte, yte)
    log(f"accuracy after ADMM + hard pruning: {acc1:.4f}")

    mvars = [tf.constant(masks[l.name].astype(np.float32)) for l in layers]
    opt2 = keras.optimizers.Adam(cfg.lr)
    kid = {id(v): i for i, v in enumerate(kvars)}

    @tf.function
    def masked_step(xb, yb):
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True))
        grads = tape.gradient(loss, tvars)
        grads = [g * mvars[kid[id(v)]] if id(v) in kid else g for g, v in zip(grads, tvars)]
        opt2.apply_gradients(zip(grads, tvars))
        for w, m in zip(kvars, mvars):
            w.assign(w * m)
        return loss

    for ep in range(cfg.retrain_epochs):
        for xb, yb in batches():
            masked_step(xb, yb)
        recalibrate_batchnorm(model, xtr)
        log(
            f"masked retraining epoch {ep + 1}/{cfg.retrain_epochs}: accuracy {evaluate(model, xte, yte):.4f}"
        )
    acc2 = evaluate(model, xte, yte)
    kept = {
        l.name: (int(np.count_nonzero(np.asarray(l.kernel))), int(np.asarray(l.kernel).size))
        for l in layers
    }
    names = [l.name for l in layers]
    rep = PruneReport(
        lib, names[:n3], acc0, acc1, acc2, d0, hist, {n: kept[n] for n in names[:n3]}, masks
    )
    rep.batchnorm_recalibrated = recal
    rep.pointwise_kept = {n: kept[n] for n in names[n3:n_dw]}
    rep.depthwise_kept = {n: kept[n] for n in names[n_dw:]}
    return rep
