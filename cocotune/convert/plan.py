"""Resolve a net into per-layer conversion plans: names, layouts, fusions, prunable layers.

The plan is computed from the net alone (no TensorFlow), and both code generation and weight
conversion read it, so the generated code and the weights always agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cocotune.convert.emitters.base import LayerPlan
from cocotune.convert.emitters.io import InputEmitter
from cocotune.convert.emitters.norm import BatchNormEmitter, scale_follows
from cocotune.convert.layout import Layout
from cocotune.convert.registry import EMITTERS, check_convertible
from cocotune.ir.catalogue import CATALOGUE, field_value
from cocotune.ir.names import NameTable
from cocotune.ir.net import Blob, Layer, Net


@dataclass
class ModulePlan:
    """A module as generated code sees it: its layers, and the blobs crossing its border."""

    name: str
    function: str
    plans: list[LayerPlan]
    inputs: list[Blob]
    outputs: list[Blob]
    prunable: list[str]


@dataclass
class NetPlan:
    net: Net
    plans: list[LayerPlan]
    modules: list[ModulePlan]
    var_names: NameTable
    keras_names: NameTable
    prunable: dict[str, int] = field(default_factory=dict)  # Caffe layer -> full num_output
    model_inputs: list[Blob] = field(default_factory=list)
    model_outputs: list[Blob] = field(default_factory=list)

    def plan_of(self, layer_name: str) -> LayerPlan:
        for plan in self.plans:
            if plan.layer.name == layer_name:
                return plan
        raise KeyError(layer_name)

    def var(self, blob: Blob) -> str:
        return self.var_names[blob.name]


def hidden_by_fusion(plan: LayerPlan, blob: Blob) -> bool:
    """A BatchNorm output that exists only inside a fused BatchNorm+Scale Keras layer."""
    return plan.fused is not None and blob.name != plan.fused.outputs[0].name


def prunable_layers_of(net: Net) -> dict[str, int]:
    """Prunable layer → full number of filters (empty when the net has no modules)."""
    if not net.modules:
        return {}
    from cocotune.tuning.pruning import prunable_layers

    return {
        layer.name: _num_output(layer)
        for layers in prunable_layers(net).values()
        for layer in layers
    }


def _num_output(layer: Layer) -> int:
    """The filter count pruning rewrites, from the type's catalogue entry."""
    filters = CATALOGUE[layer.type].pruning.filters
    assert filters is not None, f"{layer.type} is prunable: its entry names its filter count"
    return field_value(layer.param, filters)


def plan_net(net: Net) -> NetPlan:
    """Check that every layer converts, then resolve names, layouts and fusions in order."""
    check_convertible(net)
    var_names, keras_names = NameTable("python"), NameTable("keras")
    prunable = prunable_layers_of(net)
    layouts: dict[int, Layout] = {}  # id(blob) -> layout
    plans: list[LayerPlan] = []
    fused_scales: dict[str, str] = {}
    # Model inputs are named after their Caffe blobs: claim those names before any layer's.
    for layer in net.layers:
        if isinstance(EMITTERS[layer.type], InputEmitter):
            for top in layer.tops:
                keras_names.get(f"input:{top}", top)
    for layer in net.layers:
        emitter = EMITTERS[layer.type]
        plan = LayerPlan(
            layer=layer,
            emitter=emitter,
            keras_name=keras_names[layer.name],
            in_vars=[var_names[b.name] for b in layer.inputs],
            out_vars=[var_names[b.name] for b in layer.outputs],
            in_layouts=[layouts[id(b)] for b in layer.inputs],
            prunable=layer.name in prunable,
        )
        if isinstance(emitter, BatchNormEmitter):
            nxt = layer.outputs[0].consumers
            if len(nxt) == 1 and scale_follows(layer, nxt[0]):
                plan.fused = nxt[0]
                fused_scales[nxt[0].name] = layer.name
                # One Keras layer computes both: it writes the Scale's output variable.
                plan.out_vars = [var_names[nxt[0].outputs[0].name]]
        if layer.name in fused_scales:
            plan.fused_into = fused_scales[layer.name]
            plan.keras_name = keras_names[plan.fused_into]
        if isinstance(emitter, InputEmitter):
            plan.info["input_names"] = [keras_names[f"input:{t}"] for t in layer.tops]
            plan.keras_name = plan.info["input_names"][0]
        plan.out_layouts = emitter.out_layouts(plan)
        for blob, layout in zip(layer.outputs, plan.out_layouts):
            layouts[id(blob)] = layout
        plans.append(plan)
    net_plan = NetPlan(net, plans, [], var_names, keras_names, prunable)
    net_plan.modules = [_module_plan(net_plan, m) for m in net.modules]
    net_plan.model_inputs = [
        p.layer.outputs[i]
        for p in plans
        if isinstance(p.emitter, InputEmitter)
        for i in p.emitter.model_inputs(p)
    ]
    net_plan.model_outputs = _model_outputs(net_plan)
    return net_plan


def _module_plan(net_plan: NetPlan, module) -> ModulePlan:
    members = {id(layer) for layer in module.layers}
    plans = [p for p in net_plan.plans if id(p.layer) in members]
    inputs: list[Blob] = []
    outputs: list[Blob] = []
    for plan in plans:
        for blob in plan.layer.inputs:
            if (blob.producer is None or id(blob.producer) not in members) and blob not in inputs:
                inputs.append(blob)
        for blob in plan.layer.outputs:
            leaves = any(id(c) not in members for c in blob.consumers) or not blob.consumers
            if leaves and blob not in outputs:
                outputs.append(blob)
    function = net_plan.var_names[f"module {module.name}"]
    prunable = [p.layer.name for p in plans if p.prunable]
    return ModulePlan(module.name, function, plans, inputs, outputs, prunable)


def _model_outputs(net_plan: NetPlan) -> list[Blob]:
    """Unread blobs of emitted layers, plus what losses/metrics read (the predictions)."""
    outputs: list[Blob] = []
    label_blobs = {
        id(p.layer.outputs[i])
        for p in net_plan.plans
        if isinstance(p.emitter, InputEmitter)
        for i in range(len(p.layer.outputs))
        if i not in p.emitter.model_inputs(p)
    }
    for plan in net_plan.plans:
        if plan.emitter.skip:
            first = plan.layer.inputs[0] if plan.layer.inputs else None
            if first is not None and id(first) not in label_blobs and first not in outputs:
                outputs.append(first)
            continue
        if isinstance(plan.emitter, InputEmitter):
            continue
        for blob in plan.layer.outputs:
            live = [c for c in blob.consumers if not EMITTERS[c.type].skip]
            if not live and not blob.consumers and blob not in outputs:
                outputs.append(blob)
    return outputs
