"""Caffe solver → Keras training settings, learning-rate schedule and optimizer.

A Caffe solver prototxt says how a net is trained: the learning-rate policy, the update rule
(``type``), weight decay, gradient clipping and gradient accumulation (``iter_size``). This
module turns one into a :class:`TrainingSettings` value and builds the Keras 3 objects that
train exactly as Caffe's ``SGDSolver`` family does (``src/caffe/solvers/*.cpp``):

* :func:`caffe_learning_rate` is ``SGDSolver::GetLearningRate`` in plain Python (the reference);
  :class:`CaffeSchedule` computes the same numbers with ``keras.ops`` inside a training graph.
* :func:`make_optimizer` returns a Keras optimizer per Caffe ``type``. Caffe applies one
  iteration as: clip the summed gradients, divide them by ``iter_size``, add the weight-decay
  term, then run the update rule. Keras' ``apply`` does accumulation (average), clipping,
  then ``update_step`` per variable, so the same order is kept by

  - ``gradient_accumulation_steps = iter_size`` (Keras averages; Caffe sums then divides);
  - ``global_clipnorm = clip_gradients / iter_size`` (Caffe compares the norm of the *sum*
    of the ``iter_size`` gradients with ``clip_gradients``; on the average that threshold is
    ``clip_gradients / iter_size``, and the scale factor is the same);
  - coupled weight decay added to the gradient inside ``update_step`` (the documented hook for
    custom Keras optimizers), *not* Keras' ``weight_decay`` argument, which is decoupled
    (AdamW-style ``w -= lr * wd * w``) and therefore differs from Caffe for every adaptive
    rule and for momentum SGD.

Per-parameter ``lr_mult`` / ``decay_mult`` of the net's layers are not read here: they belong to
the net, not the solver. ``decay_mult: 0`` can be reproduced with Keras'
``optimizer.exclude_from_weight_decay(var_names=[...])``, which the Caffe optimizers below
honour for their coupled decay; ``lr_mult`` has no equivalent yet.

Numbers: Caffe keeps solver fields as ``float`` (float32). :meth:`TrainingSettings.from_solver`
reads them back as the shortest decimal that rounds to the same float32 (``0.01``, not
``0.009999999776``), and all learning-rate maths runs in float64, so results agree with Caffe's
float32 arithmetic to about 1e-7 relative.

Update rules, checked against Caffe (``w`` weight, ``g`` gradient incl. decay, ``lr`` the rate of
the current iteration, ``μ`` momentum):

=========  ====================================================  ==============================
Caffe      Caffe's update                                        Keras
=========  ====================================================  ==============================
SGD        ``v = μv + lr·g; w -= v``                             ``SGD``: ``m = μm - lr·g;
                                                                 w += m`` (``m = -v``, same
                                                                 numbers even when lr changes)
Nesterov   ``v' = μv + lr·g; w -= (1+μ)v' - μv``                 ``SGD(nesterov=True)``:
                                                                 ``w -= μv' + lr·g`` (equal)
Adam       ``m,v`` EMAs (β1=momentum, β2=momentum2);             ``Adam`` (same, ε outside the
           ``w -= lr·√(1-β2^t)/(1-β1^t) · m/(√v + δ)``           square root, t = update + 1)
RMSProp    ``h = ρh + (1-ρ)g²; w -= lr·g/(√h + δ)``              ``RMSprop`` puts ε inside the
                                                                 root: :class:`CaffeRMSprop`
AdaGrad    ``h += g²; w -= lr·g/(√h + δ)``                       ``Adagrad`` starts h at 0.1, ε
                                                                 inside: :class:`CaffeAdagrad`
AdaDelta   ``h = μh + (1-μ)g²; u = g·√((h2+δ)/(h+δ));            ``Adadelta(rho=μ, epsilon=δ)``
           h2 = μh2 + (1-μ)u²; w -= lr·u``                       (same)
=========  ====================================================  ==============================

PITFALL: ``optimizer.variables`` of a Keras 3 optimizer includes its iteration counter (and,
for a float learning rate, the learning-rate variable). Code that "resets" an optimizer between
configurations by zeroing all its variables silently trains with lr 0. Build a new one with
:func:`fresh_optimizer` instead.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
from keras import ops

from cocotune.errors import CocotuneError

if TYPE_CHECKING:
    # The mixin below calls the Keras optimizer it is combined with through super(); to
    # mypy its base is that optimizer (untyped: Any), at run time object, as written.
    from keras.optimizers import Optimizer as _OptimizerMixinBase

    from cocotune._proto.caffe_pb2 import SolverParameter
else:
    _OptimizerMixinBase = object

__all__ = [
    "LR_POLICIES",
    "PRESETS",
    "SOLVER_TYPES",
    "CaffeAdadelta",
    "CaffeAdagrad",
    "CaffeAdam",
    "CaffeRMSprop",
    "CaffeSGD",
    "CaffeSchedule",
    "TrainingSettings",
    "caffe_learning_rate",
    "fresh_optimizer",
    "make_optimizer",
    "preset",
]

#: Caffe's registered solver types (``SolverParameter.type``), spelled as Caffe spells them.
SOLVER_TYPES: tuple[str, ...] = ("SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam")

#: The learning-rate policies of BVLC Caffe's ``SGDSolver::GetLearningRate``.
LR_POLICIES: tuple[str, ...] = ("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid")

# Policies found only in Caffe forks; named in the error so users know why they are refused.
_FORK_POLICIES = {"plateau", "sgdr", "cosine", "warmup"}

# The deprecated ``solver_type`` enum, upgraded the way Caffe's UpgradeSolverType does.
_ENUM_TO_TYPE = {
    "SGD": "SGD",
    "NESTEROV": "Nesterov",
    "ADAGRAD": "AdaGrad",
    "RMSPROP": "RMSProp",
    "ADADELTA": "AdaDelta",
    "ADAM": "Adam",
}


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingSettings:
    """Everything the training loops need from a Caffe solver, plus our ``batch_size``.

    Field names and meanings are Caffe's (``SolverParameter``), except ``solver_type`` (Caffe's
    ``type``), ``stepvalues`` (Caffe's repeated ``stepvalue``), ``batch_size`` (in Caffe the
    batch size lives in the net's data layer; we need it for in-memory data) and ``source``
    (where the values came from, for logs). Defaults are Caffe's; the three fields Caffe
    leaves without a default (``base_lr``, ``lr_policy``, ``max_iter``) default to 0.01,
    ``"fixed"`` and 1000 so that ``TrainingSettings()`` is usable.

    Iterations are Caffe's: ``max_iter`` counts weight updates, and each update consumes
    ``iter_size`` batches (see :attr:`total_batches`).

    Construction normalises spellings (``"adam"`` → ``"Adam"``, ``"l1"`` → ``"L1"``) and checks
    the values the way Caffe's solvers do, raising :class:`~cocotune.errors.CocotuneError`;
    an instance is therefore always usable by :func:`make_optimizer`.
    """

    base_lr: float = 0.01
    lr_policy: str = "fixed"
    gamma: float = 0.0
    power: float = 0.0
    stepsize: int = 0
    stepvalues: tuple[int, ...] = ()
    max_iter: int = 1000
    momentum: float = 0.0
    momentum2: float = 0.999
    delta: float = 1e-8
    rms_decay: float = 0.99
    weight_decay: float = 0.0
    regularization_type: str = "L2"
    iter_size: int = 1
    solver_type: str = "SGD"
    test_iter: tuple[int, ...] = ()
    test_interval: int = 0
    display: int = 0
    batch_size: int = 32
    clip_gradients: float = -1.0
    random_seed: int | None = None
    source: str = ""

    def __post_init__(self) -> None:
        fix = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        for name in ("base_lr", "gamma", "power", "momentum", "momentum2", "delta"):
            fix(name, float(getattr(self, name)))
        for name in ("rms_decay", "weight_decay", "clip_gradients"):
            fix(name, float(getattr(self, name)))
        for name in ("stepsize", "max_iter", "iter_size", "test_interval", "display"):
            fix(name, int(getattr(self, name)))
        fix("batch_size", int(self.batch_size))
        fix("stepvalues", tuple(int(v) for v in self.stepvalues))
        fix("test_iter", tuple(int(v) for v in self.test_iter))
        if self.random_seed is not None:
            fix("random_seed", int(self.random_seed))
        fix("solver_type", _canonical_type(self.solver_type, self._where()))
        fix("lr_policy", _canonical_policy(self.lr_policy, self._where()))
        fix("regularization_type", _canonical_regularization(self.regularization_type, self))
        _check(self)

    def _where(self) -> str:
        return f"{self.source}: " if self.source else ""

    @classmethod
    def from_solver(
        cls, solver: str | Path | SolverParameter, **overrides: Any
    ) -> TrainingSettings:
        """Read a solver prototxt (path) or a ``caffe_pb2.SolverParameter``.

        Fields not set in the solver take Caffe's defaults, as Caffe would. Non-None
        ``overrides`` replace solver values before checking (the CLI's flags), so a solver that
        only becomes valid with a flag (e.g. ``--lr-policy``) is accepted.

        Raises:
            CocotuneError: unreadable file, unknown field (from the parser), or values Caffe
                would reject (unknown ``type`` or ``lr_policy``, both ``type`` and the
                deprecated ``solver_type``, ``momentum`` with RMSProp/AdaGrad, ...).
        """
        if isinstance(solver, (str, Path)):
            from cocotune.frontend.load import load_solver

            param = load_solver(solver)
            source = str(solver)
        else:
            param = solver
            source = "solver"
        where = f"{source}: "
        if param.HasField("solver_type"):
            if param.HasField("type"):
                raise CocotuneError(
                    f"{where}both 'type' and the deprecated 'solver_type' are set; Caffe "
                    "refuses that too: keep only 'type'"
                )
            enum_name = type(param).SolverType.Name(param.solver_type)
            solver_type = _ENUM_TO_TYPE[enum_name]
        else:
            solver_type = param.type
        if not param.lr_policy and overrides.get("lr_policy") is None:
            raise CocotuneError(
                f"{where}the solver does not set lr_policy (Caffe stops at the first "
                f"iteration without one); use one of {', '.join(LR_POLICIES)}"
            )
        # Any: __post_init__ converts and checks every value, overrides included.
        values: dict[str, Any] = dict(
            base_lr=_f32(param.base_lr),
            lr_policy=param.lr_policy or "fixed",
            gamma=_f32(param.gamma),
            power=_f32(param.power),
            stepsize=param.stepsize,
            stepvalues=tuple(param.stepvalue),
            max_iter=param.max_iter,
            momentum=_f32(param.momentum),
            momentum2=_f32(param.momentum2),
            delta=_f32(param.delta),
            rms_decay=_f32(param.rms_decay),
            weight_decay=_f32(param.weight_decay),
            regularization_type=param.regularization_type,
            iter_size=param.iter_size,
            solver_type=solver_type,
            test_iter=tuple(param.test_iter),
            test_interval=param.test_interval,
            display=param.display,
            clip_gradients=_f32(param.clip_gradients),
            random_seed=param.random_seed if param.random_seed >= 0 else None,
            source=source,
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_overrides(self, **flags: Any) -> TrainingSettings:
        """A copy with every non-None flag replacing the field of the same name.

        ``None`` means "flag not given, keep the solver's value", so the CLI can pass all its
        options through unfiltered. Unknown names raise ``TypeError`` (a programming error).
        """
        return dataclasses.replace(self, **{k: v for k, v in flags.items() if v is not None})

    @property
    def total_batches(self) -> int:
        """Batches the loop must feed: Caffe's ``max_iter`` updates × ``iter_size`` batches."""
        return self.max_iter * self.iter_size

    def learning_rate(self, step: int) -> float:
        """Caffe's learning rate at update ``step`` (see :func:`caffe_learning_rate`)."""
        return caffe_learning_rate(self, step)

    def as_dict(self) -> dict[str, object]:
        """JSON-able fields (tuples become lists), e.g. for results files."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }


def _f32(value: float) -> float:
    """The shortest decimal that is the same float32 Caffe stores (``0.01``, not 0.0099999...)."""
    return float(str(np.float32(value)))


def _canonical_type(name: str, where: str) -> str:
    by_lower = {t.lower(): t for t in SOLVER_TYPES}
    if str(name).lower() in by_lower:
        return by_lower[str(name).lower()]
    close = difflib.get_close_matches(str(name), SOLVER_TYPES, n=1, cutoff=0.5)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise CocotuneError(
        f"{where}unknown solver type '{name}'{hint}; Caffe's types are {', '.join(SOLVER_TYPES)}"
    )


def _canonical_policy(name: str, where: str) -> str:
    lowered = str(name).lower()
    if lowered in LR_POLICIES:
        return lowered
    if lowered in _FORK_POLICIES:
        hint = " (a policy of a Caffe fork, not BVLC Caffe)"
    else:
        close = difflib.get_close_matches(lowered, LR_POLICIES, n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise CocotuneError(
        f"{where}unknown lr_policy '{name}'{hint}; supported: {', '.join(LR_POLICIES)}"
    )


def _canonical_regularization(name: str, s: TrainingSettings) -> str:
    if str(name).upper() in ("L1", "L2"):
        return str(name).upper()
    raise CocotuneError(f"{s._where()}unknown regularization_type '{name}': use L2 or L1")


def _check(s: TrainingSettings) -> None:
    """Caffe's own CHECKs (sgd_solver.cpp, sgd_solvers.hpp), plus what Keras needs to build."""
    where = s._where()

    def need(ok: bool, message: str) -> None:
        if not ok:
            raise CocotuneError(where + message)

    need(s.base_lr >= 0, f"base_lr must be >= 0, got {s.base_lr}")
    need(s.max_iter >= 0, f"max_iter must be >= 0, got {s.max_iter}")
    need(s.iter_size >= 1, f"iter_size must be >= 1, got {s.iter_size}")
    need(s.batch_size >= 1, f"batch_size must be >= 1, got {s.batch_size}")
    need(s.weight_decay >= 0, f"weight_decay must be >= 0, got {s.weight_decay}")
    need(
        s.clip_gradients != 0,
        "clip_gradients: 0 would scale every gradient to zero; use a positive threshold, "
        "or a negative value (Caffe's default -1) for no clipping",
    )
    policy = s.lr_policy
    if policy in ("step", "exp", "inv", "multistep", "sigmoid"):
        need(s.gamma >= 0, f"lr_policy '{policy}' needs gamma >= 0, got {s.gamma}")
    if policy in ("step", "sigmoid"):
        need(s.stepsize > 0, f"lr_policy '{policy}' needs stepsize > 0, got {s.stepsize}")
    if policy == "poly":
        need(s.max_iter > 0, "lr_policy 'poly' needs max_iter > 0 (it divides by it)")
    if s.solver_type in ("SGD", "Nesterov", "AdaDelta", "Adam"):
        need(0 <= s.momentum <= 1, f"momentum must lie in [0, 1], got {s.momentum}")
    if s.solver_type in ("RMSProp", "AdaGrad"):
        need(
            s.momentum == 0,
            f"momentum cannot be used with {s.solver_type} (Caffe refuses it); "
            f"got momentum {s.momentum}",
        )
    if s.solver_type == "RMSProp":
        need(0 <= s.rms_decay < 1, f"rms_decay must lie in [0, 1), got {s.rms_decay}")
    if s.solver_type == "Adam":
        need(0 <= s.momentum2 < 1, f"momentum2 must lie in [0, 1), got {s.momentum2}")


# --------------------------------------------------------------------------------------------
# Learning rate
# --------------------------------------------------------------------------------------------


def _cpow(base: float, exponent: float) -> float:
    """C's ``pow`` (NaN for a negative base and fractional exponent, inf for 0^-x)."""
    with np.errstate(all="ignore"):
        return float(np.power(np.float64(base), np.float64(exponent)))


def _multistep_thresholds(stepvalues: Sequence[int]) -> list[int]:
    """The iteration at which Caffe's multistep counter passes each stepvalue.

    Caffe advances ``current_step`` by at most one per iteration, when
    ``iter >= stepvalue[current_step]``. For increasing stepvalues that is just "stepvalues
    passed"; for repeated or unsorted ones the k-th step happens at
    ``max(stepvalue[k], previous + 1)``, which this reproduces.
    """
    out: list[int] = []
    previous = -1
    for value in stepvalues:
        previous = max(int(value), previous + 1)
        out.append(previous)
    return out


def caffe_learning_rate(settings: TrainingSettings, step: int) -> float:
    """The learning rate Caffe uses for update ``step`` (0-based), by its formulas.

    ``step`` counts updates (Caffe's ``iter_``), not batches; with ``iter_size`` > 1, batch
    ``b`` belongs to update ``b // iter_size``.

    - fixed: ``base_lr``
    - step: ``base_lr * gamma ^ floor(iter / stepsize)``
    - exp: ``base_lr * gamma ^ iter``
    - inv: ``base_lr * (1 + gamma * iter) ^ (-power)``
    - multistep: ``base_lr * gamma ^ (number of stepvalues passed)``
    - poly: ``base_lr * (1 - iter / max_iter) ^ power`` (undefined past max_iter, like Caffe)
    - sigmoid: ``base_lr / (1 + exp(-gamma * (iter - stepsize)))``

    Raises:
        CocotuneError: the policy is not one of :data:`LR_POLICIES`.
    """
    s, it, policy = settings, int(step), settings.lr_policy
    base = s.base_lr
    if policy == "fixed":
        return base
    if policy == "step":
        return base * _cpow(s.gamma, it // s.stepsize)
    if policy == "exp":
        return base * _cpow(s.gamma, it)
    if policy == "inv":
        return base * _cpow(1.0 + s.gamma * it, -s.power)
    if policy == "multistep":
        passed = sum(1 for t in _multistep_thresholds(s.stepvalues) if it >= t)
        return base * _cpow(s.gamma, passed)
    if policy == "poly":
        return base * _cpow(1.0 - it / s.max_iter, s.power)
    if policy == "sigmoid":
        with np.errstate(over="ignore"):
            return base / (1.0 + float(np.exp(np.float64(-s.gamma * (it - s.stepsize)))))
    # TrainingSettings refuses unknown policies; this guards hand-made (replace()d) objects.
    raise CocotuneError(f"unknown lr_policy '{policy}'; supported: {', '.join(LR_POLICIES)}")


@keras.saving.register_keras_serializable(package="cocotune")
class CaffeSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Caffe's learning-rate policies as a Keras schedule (graph-safe, serialisable).

    Keras calls a schedule with the optimizer's raw batch counter; with gradient accumulation
    that counter advances once per batch, so the Caffe iteration is ``step // iter_size``.
    Computed in float64 (Caffe's ``gamma ^ iter`` over 10⁵ iterations loses digits in float32)
    and returned as ``keras.backend.floatx()``. Works on a scalar or a vector of steps.

    Args:
        base_lr, lr_policy, gamma, power, stepsize, stepvalues, max_iter: as in the solver.
        iter_size: batches per update (Caffe's ``iter_size``).

    Example:
        >>> schedule = CaffeSchedule(0.01, "step", gamma=0.1, stepsize=100)
        >>> round(float(schedule(250)), 8)  # 0.01 * 0.1 ** (250 // 100)
        0.0001
    """

    def __init__(
        self,
        base_lr: float,
        lr_policy: str = "fixed",
        gamma: float = 0.0,
        power: float = 0.0,
        stepsize: int = 0,
        stepvalues: Sequence[int] = (),
        max_iter: int = 0,
        iter_size: int = 1,
        name: str = "CaffeSchedule",
    ) -> None:
        super().__init__()
        # Validates exactly as a solver would (unknown policy, stepsize 0, ...).
        TrainingSettings(
            base_lr=base_lr,
            lr_policy=lr_policy,
            gamma=gamma,
            power=power,
            stepsize=stepsize,
            stepvalues=tuple(stepvalues),
            max_iter=max_iter,
            iter_size=iter_size,
        )
        self.base_lr = float(base_lr)
        self.lr_policy = str(lr_policy).lower()
        self.gamma = float(gamma)
        self.power = float(power)
        self.stepsize = int(stepsize)
        self.stepvalues = [int(v) for v in stepvalues]
        self.max_iter = int(max_iter)
        self.iter_size = int(iter_size)
        self.name = name
        self._thresholds = _multistep_thresholds(self.stepvalues)

    @classmethod
    def from_settings(cls, settings: TrainingSettings) -> CaffeSchedule:
        return cls(
            base_lr=settings.base_lr,
            lr_policy=settings.lr_policy,
            gamma=settings.gamma,
            power=settings.power,
            stepsize=settings.stepsize,
            stepvalues=settings.stepvalues,
            max_iter=settings.max_iter,
            iter_size=settings.iter_size,
        )

    def __call__(self, step):
        it = ops.floor_divide(ops.cast(step, "int64"), self.iter_size)
        x = ops.cast(it, "float64")
        f64 = lambda v: ops.convert_to_tensor(v, dtype="float64")  # noqa: E731
        base, gamma, policy = f64(self.base_lr), f64(self.gamma), self.lr_policy
        if policy == "fixed":
            rate = base * ops.ones_like(x)
        elif policy == "step":
            rate = base * ops.power(gamma, ops.cast(ops.floor_divide(it, self.stepsize), "float64"))
        elif policy == "exp":
            rate = base * ops.power(gamma, x)
        elif policy == "inv":
            rate = base * ops.power(1.0 + gamma * x, f64(-self.power))
        elif policy == "multistep":
            if self._thresholds:
                thresholds = ops.convert_to_tensor(self._thresholds, dtype="int64")
                passed = ops.sum(
                    ops.cast(ops.greater_equal(ops.expand_dims(it, -1), thresholds), "float64"),
                    axis=-1,
                )
            else:
                passed = ops.zeros_like(x)
            rate = base * ops.power(gamma, passed)
        elif policy == "poly":
            rate = base * ops.power(1.0 - x / f64(self.max_iter), f64(self.power))
        else:  # sigmoid
            rate = base / (1.0 + ops.exp(-gamma * (x - f64(self.stepsize))))
        return ops.cast(rate, keras.backend.floatx())

    def get_config(self) -> dict[str, object]:
        return {
            "base_lr": self.base_lr,
            "lr_policy": self.lr_policy,
            "gamma": self.gamma,
            "power": self.power,
            "stepsize": self.stepsize,
            "stepvalues": list(self.stepvalues),
            "max_iter": self.max_iter,
            "iter_size": self.iter_size,
            "name": self.name,
        }


# --------------------------------------------------------------------------------------------
# Optimizers
# --------------------------------------------------------------------------------------------


class _CaffeRegularization(_OptimizerMixinBase):
    """Mixin: Caffe's coupled weight decay, added to the gradient just before the update.

    Caffe's ``Regularize`` adds ``weight_decay * w`` (L2) or ``weight_decay * sign(w)`` (L1)
    to the gradient after clipping and ``iter_size`` normalisation and before the update rule,
    so momentum and the adaptive rules see the decayed gradient. ``update_step`` is where Keras
    hands over one variable's final gradient, after its own averaging and clipping, so the
    term is added there. Variables excluded with ``exclude_from_weight_decay`` get none
    (Caffe's ``decay_mult: 0``).
    """

    def __init__(
        self,
        *args: object,
        caffe_weight_decay: float = 0.0,
        regularization_type: str = "L2",
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        if str(regularization_type).upper() not in ("L1", "L2"):
            raise ValueError(
                f"regularization_type must be 'L2' or 'L1'. Received: {regularization_type!r}"
            )
        self.caffe_weight_decay = float(caffe_weight_decay)
        self.regularization_type = str(regularization_type).upper()

    def _regularize(self, gradient, variable):
        gradient = ops.cast(gradient, variable.dtype)
        if not self.caffe_weight_decay or not self._use_weight_decay(variable):
            return gradient
        decay = ops.cast(self.caffe_weight_decay, variable.dtype)
        term = variable if self.regularization_type == "L2" else ops.sign(variable)
        return ops.add(gradient, ops.multiply(decay, term))

    def _caffe_update(self, gradient, variable, learning_rate) -> None:
        """The update rule proper; Keras' own unless a subclass follows Caffe more closely."""
        super().update_step(gradient, variable, learning_rate)

    def update_step(self, gradient, variable, learning_rate) -> None:
        self._caffe_update(self._regularize(gradient, variable), variable, learning_rate)

    def get_config(self) -> dict[str, object]:
        config = super().get_config()
        config.update(
            caffe_weight_decay=self.caffe_weight_decay,
            regularization_type=self.regularization_type,
        )
        return config


@keras.saving.register_keras_serializable(package="cocotune")
class CaffeSGD(_CaffeRegularization, keras.optimizers.SGD):
    """Caffe ``SGD`` (and ``Nesterov`` with ``nesterov=True``): Keras' rule, Caffe's decay.

    Keras' momentum buffer is the negative of Caffe's history, and both scale the new gradient
    by the current rate only, so the weights are identical even when the rate changes.
    """


@keras.saving.register_keras_serializable(package="cocotune")
class CaffeAdam(_CaffeRegularization, keras.optimizers.Adam):
    """Caffe ``Adam``: Keras' rule is Caffe's (ε added to √v, bias correction in the rate)."""


@keras.saving.register_keras_serializable(package="cocotune")
class CaffeAdadelta(_CaffeRegularization, keras.optimizers.Adadelta):
    """Caffe ``AdaDelta`` (rho = Caffe's ``momentum``): Keras' rule is Caffe's."""


@keras.saving.register_keras_serializable(package="cocotune")
class CaffeRMSprop(_CaffeRegularization, keras.optimizers.RMSprop):
    """Caffe ``RMSProp``: ``w -= lr * g / (sqrt(h) + delta)`` — δ outside the square root.

    Keras' RMSprop divides by ``sqrt(h + epsilon)``, which differs while ``h`` is small (the
    first updates, rarely-active units). Caffe's RMSProp has no momentum and is not centred.
    """

    def __init__(self, *args: object, **kwargs: Any) -> None:
        # get_config() of the Keras base carries these; Caffe's rule has neither.
        kwargs.pop("momentum", None)
        kwargs.pop("centered", None)
        super().__init__(*args, momentum=0.0, centered=False, **kwargs)

    def _caffe_update(self, gradient, variable, learning_rate) -> None:
        lr = ops.cast(learning_rate, variable.dtype)
        history = self._velocities[self._get_variable_index(variable)]
        rho = ops.cast(self.rho, variable.dtype)
        self.assign(history, rho * history + (1.0 - rho) * ops.square(gradient))
        denominator = ops.sqrt(history) + ops.cast(self.epsilon, variable.dtype)
        self.assign_sub(variable, lr * gradient / denominator)


@keras.saving.register_keras_serializable(package="cocotune")
class CaffeAdagrad(_CaffeRegularization, keras.optimizers.Adagrad):
    """Caffe ``AdaGrad``: history starts at 0, ``w -= lr * g / (sqrt(h) + delta)``.

    Keras' Adagrad starts the history at 0.1 and divides by ``sqrt(h + epsilon)``.
    """

    def __init__(self, *args: object, initial_accumulator_value: float = 0.0, **kwargs) -> None:
        super().__init__(*args, initial_accumulator_value=initial_accumulator_value, **kwargs)

    def _caffe_update(self, gradient, variable, learning_rate) -> None:
        lr = ops.cast(learning_rate, variable.dtype)
        history = self._accumulators[self._get_variable_index(variable)]
        self.assign_add(history, ops.square(gradient))
        denominator = ops.sqrt(history) + ops.cast(self.epsilon, variable.dtype)
        self.assign_sub(variable, lr * gradient / denominator)


def make_optimizer(settings: TrainingSettings) -> keras.optimizers.Optimizer:
    """A new Keras optimizer that updates weights as Caffe's solver ``settings.solver_type``.

    The learning rate is a :class:`CaffeSchedule`; ``iter_size`` > 1 becomes
    ``gradient_accumulation_steps`` (call ``apply`` once per batch, i.e.
    :attr:`TrainingSettings.total_batches` times); ``clip_gradients`` > 0 becomes
    ``global_clipnorm = clip_gradients / iter_size`` (see the module docstring);
    ``weight_decay`` is Caffe's coupled decay, not Keras' ``weight_decay``.
    """
    s = settings
    common: dict[str, Any] = dict(
        learning_rate=CaffeSchedule.from_settings(s),
        caffe_weight_decay=s.weight_decay,
        regularization_type=s.regularization_type,
        global_clipnorm=s.clip_gradients / s.iter_size if s.clip_gradients > 0 else None,
        gradient_accumulation_steps=s.iter_size if s.iter_size > 1 else None,
        name=f"caffe_{s.solver_type.lower()}",
    )
    kind = s.solver_type
    if kind in ("SGD", "Nesterov"):
        return CaffeSGD(momentum=s.momentum, nesterov=kind == "Nesterov", **common)
    if kind == "Adam":
        return CaffeAdam(beta_1=s.momentum, beta_2=s.momentum2, epsilon=s.delta, **common)
    if kind == "RMSProp":
        return CaffeRMSprop(rho=s.rms_decay, epsilon=s.delta, **common)
    if kind == "AdaGrad":
        return CaffeAdagrad(epsilon=s.delta, **common)
    if kind == "AdaDelta":
        return CaffeAdadelta(rho=s.momentum, epsilon=s.delta, **common)
    raise CocotuneError(f"unknown solver type '{kind}'")  # pragma: no cover - checked earlier


def fresh_optimizer(
    source: TrainingSettings | keras.optimizers.Optimizer,
) -> keras.optimizers.Optimizer:
    """A brand-new optimizer (step 0, empty slots) for the next model or configuration.

    Why not reuse and reset: ``optimizer.variables`` in Keras 3 also holds the iteration
    counter and, for float learning rates, the learning-rate variable, so zeroing "the state"
    sets the rate to 0 and training silently does nothing; slot variables are also bound to
    the variables of the model the optimizer was built on. Pass the settings, or an existing
    optimizer whose configuration (not state) is copied.
    """
    if isinstance(source, TrainingSettings):
        return make_optimizer(source)
    return type(source).from_config(source.get_config())


# --------------------------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------------------------

#: Named settings. The ``wootz-*`` ones are the training settings reported in the Wootz paper
#: (Guan, Shen, Lim, PLDI 2019) for teacher-student pre-training of tuning blocks and for
#: fine-tuning pruned ResNet-50 / Inception-V3: batch 32; pre-training lr 0.2 (ResNet, 10k
#: steps) and 0.08 (Inception, 20k steps) with weight decay 1e-4; fine-tuning lr 0.001 with
#: weight decay 1e-5 for up to 30k steps. The optimizer and any lr decay are not part of those
#: numbers (and were not checked against the paper's text), so these use SGD with momentum 0.9
#: and a fixed rate, and the Inception pre-training reuses the ResNet weight decay.
#: ``demo`` is ours, not the paper's: a few hundred steps that train the bundled 8×8 digits
#: examples in seconds on a CPU (measured on ``examples/resnet_digits`` with a plain loop:
#: about 15 s, test accuracy about 0.88 over three seeds; lr 0.05 was less stable).
PRESETS: dict[str, TrainingSettings] = {
    "wootz-pretrain-resnet": TrainingSettings(
        base_lr=0.2,
        lr_policy="fixed",
        momentum=0.9,
        weight_decay=1e-4,
        max_iter=10_000,
        batch_size=32,
        source="preset wootz-pretrain-resnet",
    ),
    "wootz-pretrain-inception": TrainingSettings(
        base_lr=0.08,
        lr_policy="fixed",
        momentum=0.9,
        weight_decay=1e-4,
        max_iter=20_000,
        batch_size=32,
        source="preset wootz-pretrain-inception",
    ),
    "wootz-finetune": TrainingSettings(
        base_lr=0.001,
        lr_policy="fixed",
        momentum=0.9,
        weight_decay=1e-5,
        max_iter=30_000,
        batch_size=32,
        source="preset wootz-finetune",
    ),
    "demo": TrainingSettings(
        base_lr=0.02,
        lr_policy="step",
        gamma=0.5,
        stepsize=150,
        momentum=0.9,
        weight_decay=5e-4,
        max_iter=500,
        batch_size=32,
        test_interval=100,
        display=50,
        random_seed=1,
        source="preset demo",
    ),
}


def preset(name: str) -> TrainingSettings:
    """The preset called ``name`` (see :data:`PRESETS`); refine it with ``with_overrides``.

    Raises:
        CocotuneError: no such preset (the message lists them).
    """
    if name in PRESETS:
        return PRESETS[name]
    close = difflib.get_close_matches(name, list(PRESETS), n=1, cutoff=0.5)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise CocotuneError(f"unknown preset '{name}'{hint}; presets: {', '.join(PRESETS)}")
