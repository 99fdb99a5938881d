"""Element-wise layers: one Keras layer each, stock where Keras computes Caffe's formula."""

from __future__ import annotations

import numpy as np

from cocotune.convert.emitters.base import Call, Emitter, pyrepr


def f32(value: float) -> str:
    """A float parameter as Caffe holds it (float32), printed as the shortest literal."""
    return pyrepr(np.float32(value))


class ReLUEmitter(Emitter):
    def calls(self, plan, gen):
        slope = plan.layer.param.relu_param.negative_slope
        kwargs = {"negative_slope": f32(slope)} if slope else {}
        return [
            Call(
                plan.out_vars[0],
                "layers.ReLU",
                [plan.in_vars[0]],
                kwargs=kwargs,
                name=gen.name(plan.keras_name),
            )
        ]


class PReLUEmitter(Emitter):
    """Caffe PReLU: one slope per channel (or one shared); Keras PReLU with shared axes."""

    def has_weights(self, plan) -> bool:
        return True

    def _shared_axes(self, plan) -> list[int]:
        rank = len(plan.in_shapes[0])
        if plan.layer.param.prelu_param.channel_shared:
            return list(range(1, rank))
        if plan.in_layouts[0].kind == "nhwc":
            return [1, 2]
        return list(range(2, rank))  # plain (N, C, ...): one slope per axis-1 entry

    def calls(self, plan, gen):
        axes = self._shared_axes(plan)
        kwargs = {"shared_axes": pyrepr(axes)} if axes else {}
        return [
            Call(
                plan.out_vars[0],
                "layers.PReLU",
                [plan.in_vars[0]],
                kwargs=kwargs,
                name=gen.name(plan.keras_name),
            )
        ]

    def _alpha_shape(self, plan, n: int) -> tuple[int, ...]:
        rank = len(plan.in_shapes[0])
        shared = set(self._shared_axes(plan))
        if plan.layer.param.prelu_param.channel_shared:
            return (1,) * (rank - 1)
        dims = []
        for axis in range(1, rank):
            channel_axis = rank - 1 if plan.in_layouts[0].kind == "nhwc" else 1
            dims.append(n if axis == channel_axis else 1)
        assert not any(d != 1 for a, d in zip(range(1, rank), dims) if a in shared)
        return tuple(dims)

    def to_keras(self, plan, blobs):
        slope = blobs[0].reshape(-1)
        return {plan.keras_name: {"alpha": slope.reshape(self._alpha_shape(plan, slope.size))}}

    def from_keras(self, plan, weights):
        return [weights[plan.keras_name]["alpha"].reshape(-1)]


class SimpleEmitter(Emitter):
    """A parameter-free (or scalar-parameter) element-wise layer: ``ctor(**kwargs)``."""

    def __init__(self, ctor: str, kwargs_of=lambda layer: {}, args=()):
        self.ctor = ctor
        self.kwargs_of = kwargs_of
        self.args = list(args)

    def calls(self, plan, gen):
        return [
            Call(
                plan.out_vars[0],
                self.ctor,
                [plan.in_vars[0]],
                list(self.args),
                self.kwargs_of(plan.layer),
                name=gen.name(plan.keras_name),
            )
        ]


def _nondefault(pairs) -> dict[str, str]:
    return {k: f32(v) for k, v, default in pairs if v != default}


#: Caffe type -> its Keras constructor and arguments: the emitter's own dispatch among the
#: element-wise types whose entries say ``emitter="SimpleEmitter"``; cocotune.convert.registry
#: checks that the two name the same types.
SIMPLE_EMITTERS: dict[str, SimpleEmitter] = {
    "Sigmoid": SimpleEmitter("layers.Activation", args=['"sigmoid"']),
    "TanH": SimpleEmitter("layers.Activation", args=['"tanh"']),
    "AbsVal": SimpleEmitter("caffe.AbsVal"),
    "BNLL": SimpleEmitter("caffe.BNLL"),
    "ELU": SimpleEmitter(
        "layers.ELU", lambda l: _nondefault([("alpha", l.param.elu_param.alpha, 1.0)])
    ),
    "Dropout": SimpleEmitter(
        "layers.Dropout", kwargs_of=lambda l: {"rate": f32(l.param.dropout_param.dropout_ratio)}
    ),
    "Power": SimpleEmitter(
        "caffe.Power",
        lambda l: _nondefault(
            [
                ("power", l.param.power_param.power, 1.0),
                ("scale", l.param.power_param.scale, 1.0),
                ("shift", l.param.power_param.shift, 0.0),
            ]
        ),
    ),
    "Exp": SimpleEmitter(
        "caffe.CaffeExp",
        lambda l: _nondefault(
            [
                ("base", l.param.exp_param.base, -1.0),
                ("scale", l.param.exp_param.scale, 1.0),
                ("shift", l.param.exp_param.shift, 0.0),
            ]
        ),
    ),
    "Log": SimpleEmitter(
        "caffe.CaffeLog",
        lambda l: _nondefault(
            [
                ("base", l.param.log_param.base, -1.0),
                ("scale", l.param.log_param.scale, 1.0),
                ("shift", l.param.log_param.shift, 0.0),
            ]
        ),
    ),
    "Threshold": SimpleEmitter(
        "caffe.Threshold",
        lambda l: _nondefault([("threshold", l.param.threshold_param.threshold, 0.0)]),
    ),
    "Clip": SimpleEmitter(
        "caffe.Clip",
        lambda l: {"min": f32(l.param.clip_param.min), "max": f32(l.param.clip_param.max)},
    ),
    "Swish": SimpleEmitter(
        "caffe.Swish", lambda l: _nondefault([("beta", l.param.swish_param.beta, 1.0)])
    ),
}
