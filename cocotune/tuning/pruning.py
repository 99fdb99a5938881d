"""Which filters of a module can go, and what the pruned network costs (docs/design.md §3).

A Convolution or InnerProduct inside a module is *prunable* when the channels it produces,
followed through channel-wise layers (BatchNorm, Scale, ReLU, Pooling, depthwise convolution,
Split...), end only in Convolution/InnerProduct layers of the same module. Removing a filter
then removes one channel from a closed *region*: the producer's output, the channel-wise layers
in between, and the consumers' input channels -- nothing outside the module notices. Any other
reader of those channels (Eltwise, Concat, Flatten, a layer of another module, a net output)
makes the producer an *exit* that keeps all its filters: that is the paper's "the top layer of a
module is not pruned", stated for DAGs.

Because every region lies inside one module, the cost of a pruned network is a sum of
independent per-module terms: ``cost(rates) = outside + sum(module_cost(m, rates[m]))``.
:class:`PruningAnalysis` caches those terms, so costing thousands of configurations (subspace
sampling) is a table lookup per module. The costs are computed without building the pruned net:
the blobs of each region get the kept channel count and the layers' own cost functions
(:data:`cocotune.ir.shapes.LAYER_RULES`) are run again on those shapes.

Which types produce prunable filters, which are channel-wise (a depthwise convolution
included) and which fields take that role away is not written here but in each type's
catalogue entry (:class:`cocotune.ir.catalogue.PruningRole`); which axis of which blob loses the
pruned channels is read off the entry's blob rule. No type is named in this module.

Example:
    >>> analysis = analyze_pruning(net)                      # doctest: +SKIP
    >>> analysis.prunable["res2a"]                           # doctest: +SKIP
    [Layer('res2a_branch2a', 'Convolution')]
    >>> config_cost(net, {"res2a": 0.5})                     # doctest: +SKIP
    (params, macs)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from cocotune.errors import SubspaceError, WeightsError
from cocotune.ir.catalogue import (
    CATALOGUE,
    CHANNELWISE,
    PRODUCER,
    BlobSpec,
    depthwise,
    field_value,
    pruning_role,
)
from cocotune.ir.net import Blob, Layer, Net, Shape

if TYPE_CHECKING:  # the generated messages are imported where they are built
    from cocotune._proto.caffe_pb2 import LayerParameter, NetParameter
from cocotune.ir.shapes import LAYER_RULES, Cost
from cocotune.tuning.pruning_rule import kept_filters

__all__ = [
    "PruningAnalysis",
    "PruningPlan",
    "Region",
    "analyze_pruning",
    "channel_axes",
    "config_cost",
    "is_depthwise",
    "kept_filters",
    "l1_filter_choice",
    "plan_pruning",
    "prunable_layers",
    "pruned_net_param",
    "pruned_weights",
]


# ---------------------------------------------------------------------------------------------
# Regions: which layers see the channels of a producer
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Region:
    """The channels of one prunable layer and every layer that sees them.

    Attributes:
        producer: the prunable Convolution/InnerProduct.
        blobs: blob versions carrying the producer's channels (its output, and the outputs of
            the channel-wise layers after it).
        channelwise: layers in between, whose per-channel parameters follow the kept channels.
        consumers: Convolution/InnerProduct layers whose input channels shrink.
    """

    producer: Layer
    blobs: tuple[Blob, ...]
    channelwise: tuple[Layer, ...]
    consumers: tuple[Layer, ...]

    @property
    def num_output(self) -> int:
        return _num_output(self.producer)

    @property
    def module(self) -> str:
        """The producer's module (:func:`analyze_pruning` makes regions only inside modules)."""
        module = self.producer.module
        assert module is not None, f"layer '{self.producer.name}' is outside every module"
        return module


def _num_output(layer: Layer) -> int:
    """The output-channel count of a producer or depthwise convolution (its ``filters``)."""
    return field_value(layer.param, _filters_field(layer))


def _filters_field(layer: Layer) -> str:
    """The field path of ``layer``'s output-channel count; called only for producers and
    depthwise convolutions (:func:`_has_filters`), whose roles name one."""
    path = pruning_role(layer).filters
    assert path is not None, f"layer '{layer.name}' ({layer.type}) has no filter count"
    return path


def _has_filters(layer: Layer) -> bool:
    """A layer whose own output count follows pruning: a producer or a depthwise convolution."""
    return pruning_role(layer).filters is not None


def is_depthwise(layer: Layer) -> bool:
    """A convolution whose output channel c reads only input channel c (one filter per channel).

    ``ConvolutionDepthwise`` (MobileNet fork), or a ``Convolution`` with
    ``group == input channels == num_output > 1``, as the catalogue's pruning roles say
    (:func:`cocotune.ir.catalogue.depthwise`). A channel multiplier (num_output = k x
    channels) is not: its filters come in groups of k and do not follow single channels.
    """
    return depthwise(layer)


def _channel_axis(layer: Layer) -> int:
    """The canonical axis the layer works on (1 = channels; 1 too for types without an axis)."""
    field = pruning_role(layer).axis
    if field is None:
        return 1
    axis = field_value(layer.param, field)
    ndim = len(layer.inputs[0].shape or (0, 0))
    return axis % ndim if -ndim <= axis < ndim else axis


def _producer_problem(layer: Layer) -> str | None:
    """Why ``layer`` cannot have filters removed regardless of its consumers (None if it can)."""
    if len(layer.inputs) != 1 or len(layer.outputs) != 1:
        return "it has several bottoms or tops"
    if _channel_axis(layer) != 1:
        return "its axis is not the channel axis"
    group = _group(layer)
    if group != 1:
        return f"it is a grouped convolution (group {group}): its filters must stay in whole groups"
    return None


def _group(layer: Layer) -> int:
    field = pruning_role(layer).group
    return field_value(layer.param, field) if field else 1


CONSUMER = "consumer"


def _role(layer: Layer, module: str | None) -> tuple[str | None, str]:
    """How ``layer`` treats the channels it reads: channel-wise, prunable consumer, or exit.

    Returns (role, reason); role None means an exit and ``reason`` says why.
    """
    if layer.module != module:
        where = f"module '{layer.module}'" if layer.module else "outside any module"
        return None, f"is in {where}"
    role = pruning_role(layer)
    if role.kind not in (PRODUCER, CHANNELWISE):
        return None, "mixes or reshapes channels"
    if len(layer.inputs) != 1:
        return None, role.several_bottoms
    if _channel_axis(layer) != 1:
        return None, role.off_axis
    if is_depthwise(layer):
        return CHANNELWISE, ""
    if _group(layer) != 1:
        return None, f"is a grouped convolution (group {_group(layer)}) that needs whole groups"
    why = role.exit_when(layer) if role.exit_when else None
    if why:
        return None, why
    return (CONSUMER if role.kind == PRODUCER else CHANNELWISE), ""


def _follow(producer: Layer) -> Region | str:
    """The region of ``producer``'s channels, or why the producer is an exit."""
    problem = _producer_problem(producer)
    if problem:
        return problem
    blobs: list[Blob] = []
    channelwise: dict[int, Layer] = {}
    consumers: dict[int, Layer] = {}
    stack = [producer.outputs[0]]
    while stack:
        blob = stack.pop()
        blobs.append(blob)
        if not blob.consumers:
            return f"its channels reach the net output '{blob.name}'"
        for layer in blob.consumers:
            role, why = _role(layer, producer.module)
            if role is None:
                return f"its channels reach layer '{layer.name}' ({layer.type}), which {why}"
            if role == CONSUMER:
                consumers[layer.index] = layer
            elif layer.index not in channelwise:
                channelwise[layer.index] = layer
                stack.extend(layer.outputs)
    return Region(
        producer,
        tuple(sorted(blobs, key=lambda b: (_producer_index(b), b.name))),
        tuple(channelwise[i] for i in sorted(channelwise)),
        tuple(consumers[i] for i in sorted(consumers)),
    )


def _producer_index(blob: Blob) -> int:
    """Net position of the layer that writes ``blob`` (every blob a Net builds has one)."""
    assert blob.producer is not None, f"blob '{blob.name}' has no producer"
    return blob.producer.index


# ---------------------------------------------------------------------------------------------
# The analysis of a net, and plans for configurations
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PruningPlan:
    """What one configuration does to the net, computed without building it.

    Attributes:
        rates: module -> rate, every module of the net (missing ones are 0).
        kept: prunable layer -> number of filters kept.
        layer_costs: every layer -> its parameters and MACs in the pruned net.
        params: parameter count of the pruned net (weights, biases, BN/Scale/PReLU parameters).
        macs: multiply-accumulates per image of the pruned net.
    """

    rates: dict[str, float]
    kept: dict[str, int]
    layer_costs: dict[str, Cost]
    params: int
    macs: int


@dataclass
class PruningAnalysis:
    """The prunable layers of a net and the per-module cost tables behind fast costing.

    Build it with :func:`analyze_pruning`; it assumes the net is not modified afterwards.
    """

    net: Net
    regions: dict[str, Region]  # prunable layer name -> region
    exits: dict[str, str]  # non-prunable Convolution/InnerProduct in a module -> why
    _module_cache: dict[tuple[str, float], tuple[Cost, dict[str, Cost]]] = field(
        default_factory=dict, repr=False
    )

    @property
    def prunable(self) -> dict[str, list[Layer]]:
        """Module -> its prunable layers in net order (every module present, maybe empty)."""
        out: dict[str, list[Layer]] = {m.name: [] for m in self.net.modules}
        for region in self.regions.values():
            out[region.module].append(region.producer)
        for layers in out.values():
            layers.sort(key=lambda layer: layer.index)
        return out

    def module_regions(self, module: str) -> list[Region]:
        return [r for r in self.regions.values() if r.module == module]

    def outside_cost(self) -> Cost:
        """Parameters and MACs of the layers outside every module (never pruned)."""
        layers = [layer for layer in self.net.layers if layer.module is None]
        return Cost(sum(x.params for x in layers), sum(x.macs for x in layers))

    def module_cost(self, module: str, rate: float) -> Cost:
        """Parameters and MACs of all of ``module``'s layers when it is pruned at ``rate``."""
        return self._module(module, rate)[0]

    def _module(self, module: str, rate: float) -> tuple[Cost, dict[str, Cost]]:
        key = (module, float(rate))
        if key not in self._module_cache:
            self._module_cache[key] = _module_costs(self, module, rate)
        return self._module_cache[key]

    def kept(self, rates: Mapping[str, float]) -> dict[str, int]:
        """Prunable layer -> filters kept under ``rates`` (module -> rate, missing = 0)."""
        return {
            name: kept_filters(r.num_output, rates.get(r.module, 0.0))
            for name, r in self.regions.items()
        }

    def cost(self, rates: Mapping[str, float]) -> tuple[int, int]:
        """(parameters, MACs per image) of the net pruned at ``rates``."""
        rates = self.check_rates(rates)
        total = self.outside_cost()
        params, macs = total.params, total.macs
        for module, rate in rates.items():
            c = self.module_cost(module, rate)
            params, macs = params + c.params, macs + c.macs
        return params, macs

    def plan(self, rates: Mapping[str, float]) -> PruningPlan:
        """The full :class:`PruningPlan` of one configuration."""
        rates = self.check_rates(rates)
        costs = {layer.name: Cost(layer.params, layer.macs) for layer in self.net.layers}
        for module, rate in rates.items():
            costs.update(self._module(module, rate)[1])
        return PruningPlan(
            rates=rates,
            kept=self.kept(rates),
            layer_costs=costs,
            params=sum(c.params for c in costs.values()),
            macs=sum(c.macs for c in costs.values()),
        )

    def check_rates(self, rates: Mapping[str, float]) -> dict[str, float]:
        """Every module -> its rate (0 when missing), after checking names and ranges."""
        modules = self.net.module_names
        unknown = [m for m in rates if m not in modules]
        if unknown:
            raise SubspaceError(
                f"unknown module '{unknown[0]}'", notes=[f"modules: {', '.join(modules)}"]
            )
        out = {}
        for m in modules:
            rate = float(rates.get(m, 0.0))
            if not 0 <= rate < 1:
                raise SubspaceError(f"rate {rate!r} of module '{m}' is not in [0, 1)")
            out[m] = rate
        return out


def analyze_pruning(net: Net) -> PruningAnalysis:
    """Find every module's prunable layers (docs/design.md §3) and remember why the others are exits."""
    regions: dict[str, Region] = {}
    exits: dict[str, str] = {}
    for layer in net.layers:
        if layer.module is None or pruning_role(layer).kind != PRODUCER:
            continue
        if is_depthwise(layer):
            continue  # channel-wise: follows its producer's kept channels
        found = _follow(layer)
        if isinstance(found, Region):
            regions[layer.name] = found
        else:
            exits[layer.name] = found
    return PruningAnalysis(net, regions, exits)


def prunable_layers(net: Net) -> dict[str, list[Layer]]:
    """Module name -> its prunable Convolution/InnerProduct layers, in net order."""
    return analyze_pruning(net).prunable


def plan_pruning(net: Net, rates: Mapping[str, float]) -> PruningPlan:
    """Kept filters and the pruned net's cost for one configuration (module -> rate)."""
    return analyze_pruning(net).plan(rates)


def config_cost(net: Net, rates: Mapping[str, float]) -> tuple[int, int]:
    """(parameters, MACs per image) of ``net`` pruned at ``rates``; all-zero = the full net."""
    return analyze_pruning(net).cost(rates)


def _module_costs(
    analysis: PruningAnalysis, module: str, rate: float
) -> tuple[Cost, dict[str, Cost]]:
    """Costs of every layer of ``module`` pruned at ``rate``: re-run the cost rules on shapes
    whose channel axis holds the kept count, with the pruned layers' num_output changed."""
    layers = analysis.net.module(module).layers
    shapes: dict[int, Shape] = {}
    for region in analysis.module_regions(module):
        keep = kept_filters(region.num_output, rate)
        if keep != region.num_output:
            for blob in region.blobs:
                shape = blob.inferred_shape
                shapes[id(blob)] = shape[:1] + (keep,) + shape[2:]
    channels = _new_num_outputs(analysis, {module: rate})
    costs: dict[str, Cost] = {}
    for layer in layers:
        touched = layer.name in channels or any(id(b) in shapes for b in layer.inputs)
        if not touched:
            costs[layer.name] = Cost(layer.params, layer.macs)
            continue
        rule = LAYER_RULES[layer.type]
        if rule.cost is None:
            costs[layer.name] = Cost()
            continue
        pruned = _with_num_output(layer, channels[layer.name]) if layer.name in channels else layer
        ins = [shapes.get(id(b), b.inferred_shape) for b in layer.inputs]
        outs = [shapes.get(id(b), b.inferred_shape) for b in layer.outputs]
        costs[layer.name] = rule.cost(pruned, ins, outs)
    total = Cost(sum(c.params for c in costs.values()), sum(c.macs for c in costs.values()))
    return total, costs


def _new_num_outputs(analysis: PruningAnalysis, rates: Mapping[str, float]) -> dict[str, int]:
    """Layer -> its pruned num_output, for producers and the depthwise convolutions after them
    (modules missing from ``rates`` are left alone)."""
    out: dict[str, int] = {}
    for region in analysis.regions.values():
        rate = rates.get(region.module, 0.0)
        keep = kept_filters(region.num_output, rate)
        if keep == region.num_output:
            continue
        out[region.producer.name] = keep
        for layer in region.channelwise:
            if _has_filters(layer):
                out[layer.name] = keep
    return out


def pruned_net_param(
    net: Net, rates: Mapping[str, float], analysis: PruningAnalysis | None = None
) -> NetParameter:
    """A ``caffe_pb2.NetParameter`` of the pruned net: every layer in order, with the pruned
    layers' ``num_output`` (and a depthwise ``Convolution``'s ``group``) changed.

    Modules become plain layers: the result is what a stock Caffe would run with the weights of
    :func:`pruned_weights`.
    """
    from cocotune._proto import caffe_pb2

    analysis = analysis or analyze_pruning(net)
    channels = _new_num_outputs(analysis, analysis.check_rates(rates))
    out = caffe_pb2.NetParameter(name=net.name)
    for layer in net.layers:
        pruned = _with_num_output(layer, channels[layer.name]) if layer.name in channels else layer
        copy = out.layer.add()
        copy.CopyFrom(pruned.param)
        del copy.include[:]  # the net is already filtered for its phase
        del copy.exclude[:]
    return out


def _with_num_output(layer: Layer, num_output: int) -> Layer:
    """A copy of ``layer`` whose parameters say ``num_output`` (and group, if depthwise)."""
    param = type(layer.param)()
    param.CopyFrom(layer.param)
    role = pruning_role(layer)
    _set_field(param, _filters_field(layer), num_output)
    if role.group and is_depthwise(layer):
        _set_field(param, role.group, num_output)
    return dataclasses.replace(layer, param=param)


def _set_field(param: LayerParameter, path: str, value: int) -> None:
    *parents, name = path.split(".")
    setattr(field_value(param, ".".join(parents)) if parents else param, name, value)


# ---------------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------------


def l1_filter_choice(weights: np.ndarray, keep: int) -> np.ndarray:
    """Indices (ascending) of the ``keep`` filters with the largest L1 norms.

    ``weights`` has the output axis first (Caffe layout: OIHW, or (out, K) for InnerProduct).
    Ties go to the lower index (a stable sort of the negated norms), so the choice is
    reproducible and does not depend on the sort algorithm.
    """
    w = np.asarray(weights)
    if not 1 <= keep <= w.shape[0]:
        raise ValueError(f"cannot keep {keep} of {w.shape[0]} filters")
    norms = np.abs(w.reshape(w.shape[0], -1)).astype(np.float64).sum(axis=1)
    order = np.argsort(-norms, kind="stable")
    return np.sort(order[:keep])


def pruned_weights(
    net: Net,
    full_weights: Mapping[str, list[np.ndarray]],
    rates: Mapping[str, float],
    analysis: PruningAnalysis | None = None,
) -> tuple[dict[str, list[np.ndarray]], dict[str, np.ndarray]]:
    """The weights of the pruned net, taken from the full model's (Caffe blob layouts).

    Layouts: Convolution OIHW + bias; InnerProduct (out, K) + bias ((K, out) with
    ``transpose: true``); BatchNorm [mean, variance, factor]; Scale [gamma, beta]; Bias [beta];
    PReLU [slope]. Each prunable layer keeps its largest-L1 filters (of the full weights); the
    same channels leave the channel-wise layers after it (BN/Scale/Bias/PReLU blobs, depthwise
    filters) and the consumers' inputs: axis 1 of a convolution, and for an InnerProduct the
    columns ``c*S .. (c+1)*S - 1`` of every kept channel ``c``, since Caffe flattens C x H x W
    with ``S = H*W`` of the blob it reads. Arrays of untouched layers are passed through (shared,
    not copied).

    Returns:
        (layer name -> list of arrays, layer name -> kept output indices) -- the index map has
        every pruned producer and every depthwise convolution following one.

    Raises:
        WeightsError: a pruned layer's arrays do not have the shape the net implies.
    """
    analysis = analysis or analyze_pruning(net)
    rates = analysis.check_rates(rates)
    out_index: dict[str, np.ndarray] = {}  # layer -> kept output channels
    in_index: dict[str, np.ndarray] = {}  # consumer -> kept input channels
    for name, region in analysis.regions.items():
        keep = kept_filters(region.num_output, rates[region.module])
        if keep == region.num_output:
            continue
        blobs = _layer_blobs(full_weights, region.producer, need=1)
        kept = l1_filter_choice(_output_major(region.producer, blobs[0]), keep)
        out_index[name] = kept
        for layer in region.channelwise:
            if _has_filters(layer):
                out_index[layer.name] = kept
            else:
                in_index[layer.name] = kept
        for layer in region.consumers:
            in_index[layer.name] = kept
    result: dict[str, list[np.ndarray]] = {}
    for name, blobs in full_weights.items():
        if name not in out_index and name not in in_index:
            result[name] = list(blobs)
            continue
        layer = net.layer(name)
        new = [np.asarray(b) for b in blobs]
        if name in out_index:
            new = _take_outputs(layer, new, out_index[name], name not in analysis.regions)
        if name in in_index:
            new = _take_inputs(layer, new, in_index[name])
        result[name] = new
    missing = [n for n in (*out_index, *in_index) if n not in full_weights and net.layer(n).params]
    if missing:
        raise WeightsError(f"no weights for layer '{missing[0]}', which pruning changes")
    return result, out_index


def _layer_blobs(weights: Mapping[str, list[np.ndarray]], layer: Layer, need: int) -> list:
    blobs = weights.get(layer.name)
    if blobs is None or len(blobs) < need:
        raise WeightsError(f"no weights for layer '{layer.name}' ({layer.type}), which is pruned")
    return [np.asarray(b) for b in blobs]


def _blob_specs(layer: Layer, num_output: int | None = None, channels: int | None = None):
    """The blobs the catalogue's rule allocates for ``layer``, or for ``layer`` with
    ``num_output`` filters and/or ``channels`` input channels (None: the type has no blobs)."""
    blobs = CATALOGUE[layer.type].blobs if layer.type in CATALOGUE else None
    if blobs is None:
        return None
    probe = _with_num_output(layer, num_output) if num_output is not None else layer
    shapes = [b.inferred_shape for b in layer.inputs]
    if channels is not None:
        shapes[0] = shapes[0][:1] + (channels,) + shapes[0][2:]
    return blobs(probe, shapes)


def channel_axes(
    layer: Layer, keep: int, outputs: bool, inputs: bool
) -> list[tuple[BlobSpec, int, int] | None]:
    """For each of ``layer``'s blobs, (spec, axis, entries per channel) of the one axis that
    follows its output channels (``outputs``: its filters) and/or the channels it reads
    (``inputs``) when they go down to ``keep``; None for a blob that does not follow them.

    Why read it off the catalogue's blob rule: the rule already says which axis of which blob
    holds the channels (axis 1 of a convolution's weights, the columns of an InnerProduct's --
    channel c owning ``c*S .. (c+1)*S - 1`` as Caffe flattens C x H x W --, the first axis of
    BatchNorm's statistics but not its factor, nothing for a channel-shared PReLU slope), so a
    new type's blobs are pruned right without a second description here. The rule is run on
    the layer as it is and as pruned, and the axes that changed are compared.

    Raises:
        AssertionError: a blob changes along several axes or not in proportion (a blob rule
            tests/ir/test_catalogue.py rejects).
    """
    full = _blob_specs(layer)
    if full is None:
        return []
    count = _num_output(layer) if outputs else layer.inputs[0].inferred_shape[1]
    pruned = _blob_specs(layer, keep if outputs else None, keep if inputs else None)
    out: list[tuple[BlobSpec, int, int] | None] = []
    for a, b in zip(full, pruned):
        axes = [i for i, (x, y) in enumerate(zip(a.shape, b.shape)) if x != y]
        if not axes and len(a.shape) == len(b.shape):
            out.append(None)
            continue
        per = a.shape[axes[0]] // count if len(axes) == 1 else 0
        if len(axes) != 1 or a.shape[axes[0]] != per * count or b.shape[axes[0]] != per * keep:
            raise AssertionError(
                f"{layer.type}: blob '{a.name}' {a.shape} -> {b.shape} does not follow "
                f"{count} -> {keep} channels along one axis"
            )
        out.append((a, axes[0], per))
    return out


def _take_following(
    layer: Layer, blobs: list[np.ndarray], kept: np.ndarray, outputs: bool, inputs: bool
) -> list[np.ndarray]:
    """Keep the channels ``kept`` in every blob that follows them (see :func:`channel_axes`)."""
    out = list(blobs)
    for i, follow in enumerate(channel_axes(layer, len(kept), outputs, inputs)):
        if follow is None or i >= len(out):
            continue
        spec, axis, per = follow
        index = (kept[:, None] * per + np.arange(per)[None, :]).reshape(-1)
        out[i] = _take(layer, out[i], index, axis, spec.shape[axis])
    return out


def _output_axis(layer: Layer) -> int:
    """The axis of a producer's weights (blob 0) that holds its filters."""
    n = _num_output(layer)
    follow = channel_axes(layer, n - 1 if n > 1 else 2, outputs=True, inputs=False)[0]
    return follow[1] if follow else 0


def _output_major(layer: Layer, w: np.ndarray) -> np.ndarray:
    """The weight array with the output axis first (InnerProduct ``transpose`` stores (K, N))."""
    return np.moveaxis(w, _output_axis(layer), 0)


def _take(layer: Layer, array: np.ndarray, index: np.ndarray, axis: int, size: int) -> np.ndarray:
    if array.ndim <= axis or array.shape[axis] != size:
        raise WeightsError(
            f"weights of layer '{layer.name}' ({layer.type}) have shape {tuple(array.shape)}; "
            f"expected {size} along axis {axis}"
        )
    return np.take(array, index, axis=axis)


def _take_outputs(
    layer: Layer, blobs: list[np.ndarray], kept: np.ndarray, channelwise: bool
) -> list[np.ndarray]:
    """Keep the output filters ``kept`` of a producer, or of a depthwise convolution after one
    (``channelwise``: its input channels go with its outputs)."""
    return _take_following(layer, blobs, kept, outputs=True, inputs=channelwise)


def _take_inputs(layer: Layer, blobs: list[np.ndarray], kept: np.ndarray) -> list[np.ndarray]:
    """Remove the pruned channels from what ``layer`` reads (consumers and channel-wise layers)."""
    return _take_following(layer, blobs, kept, outputs=False, inputs=True)
