"""Element-wise layers: one Keras layer each, stock where Keras computes Caffe's formula."""

from __future__ import annotations

import numpy as np

from cocotune.convert.emitters.base import Call, Emitter, pyrepr


def f32(value: float) -> str:
    """A float parameter as Caffe holds it (float32), printed as the shortest literal."""
    return pyrepr(np.float32(value))


class ReLUEmitter(Emitter):
    types = ("ReLU",)

    def calls(self, plan, gen):
        slope = plan.layer.param.relu_param.negative_slope
        kwargs = {"negative_slope": f32(slope)} if slope else {}
        return [Call(plan.out_vars[0], "layers.ReLU", [plan.in_vars[0]], kwargs=kwargs,
                     name=gen.name(plan.keras_name))]  # fmt: skip


class PReLUEmitter(Emitter):
    """Caffe PReLU: one slope per channel (or one shared); Keras PReLU with shared axes."""

    types = ("PReLU",)

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
        return [Call(plan.out_vars[0], "layers.PReLU", [plan.in_vars[0]], kwargs=kwargs,
                     name=gen.name(plan.keras_name))]  # fmt: skip

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

    def __init__(self, caffe_type: str, ctor: str, kwargs_of=lambda layer: {}, args=()):
        self.types = (caffe_type,)
        self.ctor = ctor
        self.kwargs_of = kwargs_of
        self.args = list(args)

    def calls(self, plan, gen):
        return [Call(plan.out_vars[0], self.ctor, [plan.in_vars[0]], list(self.args),
                     self.kwargs_of(plan.layer), name=gen.name(plan.keras_name))]  # fmt: skip


def _nondefault(pairs) -> dict[str, str]:
    return {k: f32(v) for k, v, default in pairs if v != default}


SIMPLE_EMITTERS = [
    SimpleEmitter("Sigmoid", "layers.Activation", args=['"sigmoid"']),
    SimpleEmitter("TanH", "layers.Activation", args=['"tanh"']),
    SimpleEmitter("AbsVal", "caffe.AbsVal"),
    SimpleEmitter("BNLL", "caffe.BNLL"),
    SimpleEmitter(
        "ELU", "layers.ELU", lambda l: _nondefault([("alpha", l.param.elu_param.alpha, 1.0)])
    ),
    SimpleEmitter(
        "Dropout", "layers.Dropout", args=(), kwargs_of=lambda l: {
            "rate": f32(l.param.dropout_param.dropout_ratio)
        }
    ),
    SimpleEmitter("Power", "caffe.Power", lambda l: _nondefault([
        ("power", l.param.power_param.power, 1.0), ("scale", l.param.power_param.scale, 1.0),
        ("shift", l.param.power_param.shift, 0.0)])),
    SimpleEmitter("Exp", "caffe.CaffeExp", lambda l: _nondefault([
        ("base", l.param.exp_param.base, -1.0), ("scale", l.param.exp_param.scale, 1.0),
        ("shift", l.param.exp_param.shift, 0.0)])),
    SimpleEmitter("Log", "caffe.CaffeLog", lambda l: _nondefault([
        ("base", l.param.log_param.base, -1.0), ("scale", l.param.log_param.scale, 1.0),
        ("shift", l.param.log_param.shift, 0.0)])),
    SimpleEmitter("Threshold", "caffe.Threshold", lambda l: _nondefault([
        ("threshold", l.param.threshold_param.threshold, 0.0)])),
    SimpleEmitter("Clip", "caffe.Clip", lambda l: {
        "min": f32(l.param.clip_param.min), "max": f32(l.param.clip_param.max)}),
    SimpleEmitter("Swish", "caffe.Swish", lambda l: _nondefault([
        ("beta", l.param.swish_param.beta, 1.0)])),
]  # fmt: skip
