"""Caffe blobs (Caffe layout) ⇄ Keras variables of the generated model, layer by layer.

Weights always travel in Caffe layout between steps (import, pruning, block assembly) and are
converted to Keras only when set on a model, through the same :class:`NetPlan` the code was
generated from. Keras variables are matched by layer name and variable name, never by order.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from cocotune.convert.emitters.base import KerasWeights
from cocotune.convert.emitters.norm import FusedScaleWeights
from cocotune.convert.plan import NetPlan
from cocotune.errors import WeightsError

CaffeWeights = Mapping[str, list[np.ndarray]]


def caffe_to_keras(net_plan: NetPlan, weights: CaffeWeights, prefix: str = "") -> KerasWeights:
    """Every parameterised layer's blobs → {keras layer name: {variable name: array}}.

    Layers absent from ``weights`` are skipped (they keep whatever the model has).
    """
    out: KerasWeights = {}
    for plan in net_plan.plans:
        blobs = weights.get(plan.layer.name)
        if blobs is None:
            continue
        blobs = [np.asarray(b, dtype=np.float32) for b in blobs]
        if plan.fused_into:
            part = FusedScaleWeights.to_keras(plan.keras_name, blobs)
        else:
            part = plan.emitter.to_keras(plan, blobs)
        for name, variables in part.items():
            out.setdefault(prefix + name, {}).update(variables)
    return out


def keras_to_caffe(net_plan: NetPlan, model, prefix: str = "") -> dict[str, list[np.ndarray]]:
    """The model's variables back in Caffe layout, for every parameterised Caffe layer."""
    available = {layer.name: layer for layer in model.layers}
    out: dict[str, list[np.ndarray]] = {}
    for plan in net_plan.plans:
        if plan.fused_into:
            name = prefix + plan.keras_name
            if name in available:
                variables = {plan.keras_name: _variables(available[name])}
                bias = plan.layer.param.scale_param.bias_term
                out[plan.layer.name] = FusedScaleWeights.from_keras(
                    plan.keras_name, variables, bias
                )
            continue
        names = plan.emitter.keras_layer_names(plan)
        if not names or any(prefix + n not in available for n in names):
            continue
        variables = {n: _variables(available[prefix + n]) for n in names}
        out[plan.layer.name] = plan.emitter.from_keras(plan, variables)
    return out


def _variables(layer) -> dict[str, np.ndarray]:
    return {v.name: np.asarray(v.numpy()) for v in layer.weights}


def set_weights(model, keras_weights: KerasWeights, strict: bool = True) -> None:
    """Assign variables by layer and variable name, checking every shape.

    Raises:
        WeightsError: a variable's shape differs (names the layer and both shapes), or —
            with ``strict`` — a named layer or variable is missing from the model.
    """
    layers = {layer.name: layer for layer in model.layers}
    for layer_name, variables in keras_weights.items():
        layer = layers.get(layer_name)
        if layer is None:
            if strict:
                raise WeightsError(f"the model has no layer '{layer_name}' to load weights into")
            continue
        by_name = {v.name: v for v in layer.weights}
        for var_name, value in variables.items():
            var = by_name.get(var_name)
            if var is None:
                if strict:
                    raise WeightsError(
                        f"layer '{layer_name}' has no variable '{var_name}' "
                        f"(it has: {', '.join(by_name) or 'none'})"
                    )
                continue
            if tuple(var.shape) != tuple(value.shape):
                raise WeightsError(
                    f"layer '{layer_name}': variable '{var_name}' expects shape "
                    f"{tuple(var.shape)}, the weights have {tuple(value.shape)}"
                )
            var.assign(value.astype(np.float32))
