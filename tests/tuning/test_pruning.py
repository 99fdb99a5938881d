"""Pruning (DESIGN §3): prunable layers in DAGs, kept filters, costs, and the pruned weights.

Costs are checked three ways: against the full net's totals (rate 0), against the sizes of the
arrays :func:`pruned_weights` produces (an independent path), and against MACs worked out by
hand. The pruned weights are checked functionally too: the pruned net (run by the independent
numpy reference of Caffe) computes what the full net computes once the consumers ignore the
removed channels.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from cocotune.frontend.load import load_net
from cocotune.tuning.pruning import (
    analyze_pruning,
    config_cost,
    kept_filters,
    l1_filter_choice,
    plan_pruning,
    prunable_layers,
    pruned_net_param,
    pruned_weights,
)
from tests.conftest import EXAMPLES
from tests.reference.caffe_layers import run_net

# -- building small nets ----------------------------------------------------------------------


def data(c: int, h: int = 6, w: int = 6) -> str:
    return (
        'layer { name: "data" type: "Input" top: "data" '
        f"input_param {{ shape {{ dim: 1 dim: {c} dim: {h} dim: {w} }} }} }}\n"
    )


def conv(name, bottom, n, k=3, pad=None, group=1, bias=True, typ="Convolution", stride=1):
    pad = k // 2 if pad is None else pad
    extra = f" group: {group}" if group != 1 else ""
    extra += "" if bias else " bias_term: false"
    extra += f" stride: {stride}" if stride != 1 else ""
    return (
        f'layer {{ name: "{name}" type: "{typ}" bottom: "{bottom}" top: "{name}" '
        f"convolution_param {{ num_output: {n} kernel_size: {k} pad: {pad}{extra} }} }}\n"
    )


def ip(name, bottom, n, top=None):
    return (
        f'layer {{ name: "{name}" type: "InnerProduct" bottom: "{bottom}" top: "{top or name}" '
        f"inner_product_param {{ num_output: {n} }} }}\n"
    )


def inplace(name, typ, blob, extra=""):
    return f'layer {{ name: "{name}" type: "{typ}" bottom: "{blob}" top: "{blob}" {extra}}}\n'


def layer(name, typ, bottoms, top=None, extra=""):
    bs = " ".join(f'bottom: "{b}"' for b in bottoms)
    return f'layer {{ name: "{name}" type: "{typ}" {bs} top: "{top or name}" {extra}}}\n'


def bn_scale_relu(blob, relu=True):
    out = inplace(f"{blob}_bn", "BatchNorm", blob)
    out += inplace(f"{blob}_scale", "Scale", blob, "scale_param { bias_term: true } ")
    return out + (inplace(f"{blob}_relu", "ReLU", blob) if relu else "")


def module(name, body):
    return f'module {{\n  name: "{name}"\n{body}}}\n'


@pytest.fixture
def net_of(tmp_path):
    counter = iter(range(1000))

    def load(text: str):
        path = tmp_path / f"net{next(counter)}.prototxt"
        path.write_text('name: "t"\n' + text)
        return load_net(path)

    return load


def prunable_names(net) -> dict[str, list[str]]:
    return {m: [x.name for x in layers] for m, layers in prunable_layers(net).items()}


BOTTLENECK = (
    data(8)
    + module(
        "res",
        conv("branch1", "data", 16, k=1, bias=False)
        + bn_scale_relu("branch1", relu=False)
        + conv("branch2a", "data", 4, k=1, bias=False)
        + bn_scale_relu("branch2a")
        + conv("branch2b", "branch2a", 6, k=3, bias=False)
        + bn_scale_relu("branch2b")
        + conv("branch2c", "branch2b", 16, k=1, bias=False)
        + bn_scale_relu("branch2c", relu=False)
        + layer("sum", "Eltwise", ["branch1", "branch2c"])
        + inplace("sum_relu", "ReLU", "sum"),
    )
    + ip("fc", "sum", 10)
)

IDENTITY = (
    data(8)
    + conv("pre", "data", 8)
    + module(
        "res",
        conv("branch2a", "pre", 4)
        + bn_scale_relu("branch2a")
        + conv("branch2b", "branch2a", 8)
        + bn_scale_relu("branch2b", relu=False)
        + layer("sum", "Eltwise", ["pre", "branch2b"]),
    )
)

CHAIN = (
    data(3)
    + module(
        "m",
        conv("conv1", "data", 8)
        + inplace("relu1", "ReLU", "conv1")
        + conv("conv2", "conv1", 6)
        + inplace("relu2", "ReLU", "conv2")
        + layer(
            "pool",
            "Pooling",
            ["conv2"],
            extra="pooling_param { pool: MAX kernel_size: 2 stride: 2 } ",
        )
        + ip("ip1", "pool", 5)
        + inplace("relu3", "ReLU", "ip1")
        + ip("ip2", "ip1", 4),
    )
    + layer("prob", "Softmax", ["ip2"])
)

DEPTHWISE = data(4) + module(
    "mb",
    conv("expand", "data", 8, k=1)
    + bn_scale_relu("expand")
    + conv("dw", "expand", 8, k=3, group=8, bias=False)
    + bn_scale_relu("dw")
    + conv("project", "dw", 6, k=1),
)


# -- which layers are prunable ----------------------------------------------------------------


def test_bottleneck_with_projection(net_of):
    net = net_of(BOTTLENECK)
    assert prunable_names(net) == {"res": ["branch2a", "branch2b"]}
    exits = analyze_pruning(net).exits
    assert set(exits) == {"branch1", "branch2c"}
    assert "'sum' (Eltwise)" in exits["branch2c"] and "'sum' (Eltwise)" in exits["branch1"]


def test_identity_shortcut(net_of):
    net = net_of(IDENTITY)
    assert prunable_names(net) == {"res": ["branch2a"]}
    assert set(analyze_pruning(net).exits) == {"branch2b"}  # 'pre' is outside every module


def test_inception_example():
    net = load_net(EXAMPLES / "inception_digits" / "net.prototxt")
    names = prunable_names(net)
    for m in ("inception_3a", "inception_4a"):
        assert names[m] == [f"{m}_3x3_reduce", f"{m}_5x5_reduce", f"{m}_5x5a"]
    exits = analyze_pruning(net).exits
    assert all("(Concat)" in why for why in exits.values())
    assert set(exits) == {
        f"{m}_{b}"
        for m in ("inception_3a", "inception_4a")
        for b in ("1x1", "3x3", "5x5b", "pool_proj")
    }


def test_plain_chain_inner_product_producer_and_exit(net_of):
    net = net_of(CHAIN)
    assert prunable_names(net) == {"m": ["conv1", "conv2", "ip1"]}
    assert "net output" not in analyze_pruning(net).exits["ip2"]
    assert "'prob' (Softmax)" in analyze_pruning(net).exits["ip2"]
    region = analyze_pruning(net).regions["conv2"]
    assert [x.name for x in region.channelwise] == ["relu2", "pool"]
    assert [x.name for x in region.consumers] == ["ip1"]


def test_net_output_is_an_exit(net_of):
    net = net_of(data(3) + module("m", conv("a", "data", 4) + conv("b", "a", 4)))
    assert prunable_names(net) == {"m": ["a"]}
    assert "net output 'b'" in analyze_pruning(net).exits["b"]


def test_resnet_example_each_module_branch2a():
    net = load_net(EXAMPLES / "resnet_digits" / "net.prototxt")
    names = prunable_names(net)
    assert list(names) == ["res2a", "res2b", "res3a", "res3b", "res4a", "res4b"]
    assert names == {m: [f"{m}_branch2a"] for m in names}


@pytest.mark.parametrize("typ", ["Convolution", "ConvolutionDepthwise"])
def test_depthwise_follows_its_producer(net_of, typ):
    net = net_of(DEPTHWISE.replace('name: "dw" type: "Convolution"', f'name: "dw" type: "{typ}"'))
    analysis = analyze_pruning(net)
    assert prunable_names(net) == {"mb": ["expand"]}
    assert set(analysis.exits) == {"project"}  # dw is neither: it is channel-wise
    region = analysis.regions["expand"]
    assert "dw" in [x.name for x in region.channelwise]
    assert [x.name for x in region.consumers] == ["project"]


def test_grouped_consumer_keeps_producer_whole(net_of):
    net = net_of(
        data(4) + module("m", conv("a", "data", 8) + conv("g", "a", 8, group=2) + conv("c", "g", 4))
    )
    assert prunable_names(net) == {"m": []}
    exits = analyze_pruning(net).exits
    assert "reach layer 'g' (Convolution), which is a grouped convolution (group 2)" in exits["a"]
    assert "it is a grouped convolution" in exits["g"]  # grouped producers stay whole too


def test_grouped_producer_is_not_pruned(net_of):
    net = net_of(data(4) + module("m", conv("g", "data", 8, group=2) + conv("c", "g", 4)))
    assert prunable_names(net) == {"m": []}
    assert "grouped convolution" in analyze_pruning(net).exits["g"]


@pytest.mark.parametrize(
    "region, prunable",
    [
        ("ACROSS_CHANNELS", False),  # mixes neighbouring channels
        ("WITHIN_CHANNEL", True),
    ],
)
def test_lrn(net_of, region, prunable):
    lrn = f"lrn_param {{ local_size: 3 norm_region: {region} }} "
    net = net_of(
        data(3)
        + module("m", conv("a", "data", 4) + inplace("n", "LRN", "a", lrn) + conv("b", "a", 4))
    )
    assert ("a" in prunable_names(net)["m"]) is prunable


def test_scale_with_second_bottom_is_an_exit(net_of):
    gate = ip("gate", "data", 4, top="gate")
    net = net_of(
        data(3)
        + module(
            "m",
            conv("a", "data", 4)
            + gate
            + layer("s", "Scale", ["a", "gate"], extra="scale_param { axis: 0 } ")
            + conv("b", "s", 4),
        )
    )
    assert "a" not in prunable_names(net)["m"]
    assert "second bottom" in analyze_pruning(net).exits["a"]


def test_split_to_two_convolutions_and_other_module(net_of):
    body = conv("a", "data", 4) + layer("sp", "Split", ["a"], extra='top: "a2" ')
    body = body.replace('top: "sp"', 'top: "a1"')
    net = net_of(
        data(3)
        + module("m", body + conv("b", "a1", 4) + conv("c", "a2", 4))
        + module("n", conv("d", "b", 4) + layer("e", "Eltwise", ["c", "d"]))
    )
    analysis = analyze_pruning(net)
    assert prunable_names(net) == {"m": ["a"], "n": []}
    assert [x.name for x in analysis.regions["a"].consumers] == ["b", "c"]
    assert "module 'n'" in analysis.exits["b"]


def test_flatten_and_concat_are_exits(net_of):
    net = net_of(
        data(3)
        + module("m", conv("a", "data", 4) + layer("f", "Flatten", ["a"]) + ip("fc", "f", 3))
    )
    assert "(Flatten)" in analyze_pruning(net).exits["a"]


# -- kept filters -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n, rate, kept",
    [
        (10, 0, 10),
        (10, 0.7, 3),  # (1 - 0.7) * 10 = 3.0000000000000004 in floating point
        (10, 0.3, 7),
        (10, 0.1 + 0.2, 7),
        (64, 0.999, 1),
        (1, 0.5, 1),
        (3, 0.5, 2),
        (100, 0.29, 71),
        (16, 0.5, 8),
    ],
)
def test_kept_filters(n, rate, kept):
    assert kept_filters(n, rate) == kept


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5])
def test_kept_filters_rejects_bad_rates(rate):
    with pytest.raises(ValueError):
        kept_filters(10, rate)


def test_l1_choice_largest_norms_sorted():
    w = np.zeros((5, 2, 1, 1))
    w[:, 0, 0, 0] = [1, -5, 3, 0.5, -4]
    assert l1_filter_choice(w, 2).tolist() == [1, 4]
    assert l1_filter_choice(w, 3).tolist() == [1, 2, 4]
    assert l1_filter_choice(w, 5).tolist() == [0, 1, 2, 3, 4]


def test_l1_choice_ties_lower_index_first():
    w = np.ones((6, 3))
    w[4] = 2
    assert l1_filter_choice(w, 1).tolist() == [4]
    assert l1_filter_choice(w, 3).tolist() == [0, 1, 4]
    assert l1_filter_choice(np.zeros((4, 2)), 2).tolist() == [0, 1]


# -- costs ------------------------------------------------------------------------------------


def random_weights(net, seed=0) -> dict[str, list[np.ndarray]]:
    """Full weights in Caffe layouts, shaped from the net's parameters (not from shapes.py)."""
    rng = np.random.default_rng(seed)
    out = {}
    for x in net.layers:
        c = x.inputs[0].shape[1] if x.inputs else 0
        if x.type in ("Convolution", "ConvolutionDepthwise"):
            p = x.param.convolution_param
            group = c if x.type == "ConvolutionDepthwise" else p.group
            k = tuple(p.kernel_size) * 2
            shapes = [(p.num_output, c // group) + k] + ([(p.num_output,)] if p.bias_term else [])
        elif x.type == "InnerProduct":
            p = x.param.inner_product_param
            shapes = [(p.num_output, math.prod(x.inputs[0].shape[1:])), (p.num_output,)]
        elif x.type == "BatchNorm":
            shapes = [(c,), (c,), (1,)]
        elif x.type == "Scale":
            shapes = [(c,)] + ([(c,)] if x.param.scale_param.bias_term else [])
        elif x.type == "PReLU":
            shapes = [(c,)]
        else:
            continue
        out[x.name] = [rng.normal(size=s) for s in shapes]
        if x.type == "BatchNorm":
            out[x.name][1] = np.abs(out[x.name][1]) + 0.5
            out[x.name][2] = np.ones(1)
    return out


def weight_count(weights) -> int:
    """Parameters held by Caffe blobs, without BatchNorm's scale-factor blob (bookkeeping)."""
    return sum(
        sum(a.size for a in blobs) - (1 if len(blobs) == 3 and blobs[2].shape == (1,) else 0)
        for blobs in weights.values()
    )


NETS = {"bottleneck": BOTTLENECK, "identity": IDENTITY, "chain": CHAIN, "depthwise": DEPTHWISE}


@pytest.mark.parametrize("name", sorted(NETS))
def test_rate_zero_is_the_full_net(net_of, name):
    net = net_of(NETS[name])
    full = sum(x.params for x in net.layers), sum(x.macs for x in net.layers)
    assert config_cost(net, {}) == full
    assert config_cost(net, dict.fromkeys(net.module_names, 0.0)) == full
    weights = random_weights(net)
    assert weight_count(weights) == full[0]  # the generator agrees with shapes.py
    pruned, kept = pruned_weights(net, weights, {})
    assert kept == {}
    for layer_name, blobs in weights.items():
        assert all(np.array_equal(a, b) for a, b in zip(blobs, pruned[layer_name]))


@pytest.mark.parametrize("name", sorted(NETS))
@pytest.mark.parametrize("rate", [0.3, 0.5, 0.7, 0.99])
def test_params_equal_pruned_weight_sizes(net_of, name, rate):
    net = net_of(NETS[name])
    rates = dict.fromkeys(net.module_names, rate)
    pruned, _ = pruned_weights(net, random_weights(net), rates)
    plan = plan_pruning(net, rates)
    assert weight_count(pruned) == plan.params == config_cost(net, rates)[0]
    assert plan.params < sum(x.params for x in net.layers)


def test_resnet_example_costs_add_up():
    net = load_net(EXAMPLES / "resnet_digits" / "net.prototxt")
    weights = random_weights(net)
    analysis = analyze_pruning(net)
    for rates in (
        {"res2a": 0.5},
        {"res3a": 0.3, "res4b": 0.7},
        dict.fromkeys(net.module_names, 0.5),
    ):
        pruned, kept = pruned_weights(net, weights, rates, analysis)
        assert weight_count(pruned) == analysis.cost(rates)[0]
        assert set(kept) == {f"{m}_branch2a" for m in rates}


def test_chain_macs_by_hand(net_of):
    net = net_of(CHAIN)
    # data 3x6x6; conv1 8 3x3 pad 1; conv2 6 3x3 pad 1; pool 2x2 -> 3x3; ip1 5; ip2 4.
    full_macs = 8 * 36 * 3 * 9 + 6 * 36 * 8 * 9 + 6 * 9 * 4 + 6 * 9 * 5 + 5 * 4
    assert config_cost(net, {})[1] == full_macs
    # rate 0.5: conv1 keeps 4, conv2 keeps 3, ip1 keeps ceil(2.5) = 3.
    plan = plan_pruning(net, {"m": 0.5})
    assert plan.kept == {"conv1": 4, "conv2": 3, "ip1": 3}
    macs = 4 * 36 * 3 * 9 + 3 * 36 * 4 * 9 + 3 * 9 * 4 + 3 * 9 * 3 + 3 * 4
    params = (4 * 3 * 9 + 4) + (3 * 4 * 9 + 3) + (3 * 27 + 3) + (4 * 3 + 4)
    assert (plan.params, plan.macs) == (params, macs)
    assert plan.layer_costs["pool"].macs == 3 * 9 * 4


def test_depthwise_costs_by_hand(net_of):
    net = net_of(DEPTHWISE)
    plan = plan_pruning(net, {"mb": 0.5})  # expand keeps 4; dw follows with 4 channels
    assert plan.kept == {"expand": 4}
    c = plan.layer_costs
    assert c["expand"].params == 4 * 4 + 4
    assert c["expand_bn"].params == 2 * 4 and c["expand_scale"].params == 2 * 4
    assert c["dw"].params == 4 * 9 and c["dw"].macs == 4 * 36 * 9
    assert c["project"].params == 6 * 4 + 6


# -- pruned weights ---------------------------------------------------------------------------


def test_inner_product_columns_follow_channels(net_of):
    net = net_of(CHAIN)
    weights = random_weights(net)
    spatial = 9  # ip1 reads pool: 6 x 3 x 3
    ip1 = np.array([[1000 * (k // spatial) + k % spatial for k in range(6 * spatial)]] * 5, float)
    weights["ip1"][0] = ip1
    pruned, kept = pruned_weights(net, weights, {"m": 0.5})
    channels = kept["conv2"]
    expected = [1000 * c + s for c in channels for s in range(spatial)]
    assert pruned["ip1"][0].shape == (3, 3 * spatial)
    assert pruned["ip1"][0][0].tolist() == expected


def test_weights_pick_largest_l1_and_shrink_everything_between(net_of):
    net = net_of(BOTTLENECK)
    weights = random_weights(net)
    weights["branch2a"][0] = np.arange(4)[:, None, None, None] * np.ones((4, 8, 1, 1))
    pruned, kept = pruned_weights(net, weights, {"res": 0.5})
    assert kept["branch2a"].tolist() == [2, 3]
    assert pruned["branch2a"][0].shape == (2, 8, 1, 1)
    for blob in ("branch2a_bn",):
        assert [a.shape for a in pruned[blob]] == [(2,), (2,), (1,)]
        assert np.array_equal(pruned[blob][0], weights[blob][0][[2, 3]])
    assert [a.shape for a in pruned["branch2a_scale"]] == [(2,), (2,)]
    assert pruned["branch2b"][0].shape == (3, 2, 3, 3)
    assert np.array_equal(
        pruned["branch2b"][0], weights["branch2b"][0][kept["branch2b"]][:, [2, 3]]
    )
    assert pruned["branch2c"][0].shape == (16, 3, 1, 1)  # exit: all filters, fewer inputs
    assert pruned["branch1"] == weights["branch1"]  # untouched


def _masked_full(net, weights, rates):
    """Full weights whose consumers ignore the channels pruning removes."""
    analysis = analyze_pruning(net)
    _, kept = pruned_weights(net, weights, rates, analysis)
    masked = {k: [a.copy() for a in v] for k, v in weights.items()}
    for name, region in analysis.regions.items():
        if name not in kept:
            continue
        gone = np.setdiff1d(np.arange(region.num_output), kept[name])
        for consumer in region.consumers:
            w = masked[consumer.name][0]
            if consumer.type == "InnerProduct":
                s = math.prod(consumer.inputs[0].shape[2:])
                w[:, (gone[:, None] * s + np.arange(s)).reshape(-1)] = 0
            else:
                w[:, gone] = 0
    return masked


@pytest.mark.parametrize("name", sorted(NETS))
def test_pruned_net_computes_what_the_masked_full_net_computes(net_of, name):
    net = net_of(NETS[name])
    weights = random_weights(net, seed=1)
    rates = dict.fromkeys(net.module_names, 0.5)
    pruned, _ = pruned_weights(net, weights, rates)
    x = np.random.default_rng(2).normal(size=net.layers[0].outputs[0].shape)
    full_param = pruned_net_param(net, {})
    want = run_net(full_param, _masked_full(net, weights, rates), {"data": x}, dtype=np.float64)
    got = run_net(pruned_net_param(net, rates), pruned, {"data": x}, dtype=np.float64)
    final = net.layers[-1].tops[0]
    np.testing.assert_allclose(got[final], want[final], rtol=1e-9, atol=1e-9)


def test_missing_weights_for_a_pruned_layer(net_of):
    from cocotune.errors import WeightsError

    net = net_of(CHAIN)
    weights = random_weights(net)
    del weights["conv1"]
    with pytest.raises(WeightsError, match="conv1"):
        pruned_weights(net, weights, {"m": 0.5})
    weights = random_weights(net)
    weights["conv2"][0] = weights["conv2"][0][:, :4]
    with pytest.raises(WeightsError, match="conv2"):
        pruned_weights(net, weights, {"m": 0.5})


def test_unknown_module_and_bad_rate(net_of):
    from cocotune.errors import SubspaceError

    net = net_of(CHAIN)
    with pytest.raises(SubspaceError, match="unknown module 'n'"):
        config_cost(net, {"n": 0.5})
    with pytest.raises(SubspaceError, match="not in"):
        config_cost(net, {"m": 1.0})


# Every type whose blobs follow pruned channels, in the layouts the hand-made generator above
# does not cover: a transposed InnerProduct (producer and consumer), a depthwise Convolution
# (group == channels), the fork's ConvolutionDepthwise, Bias, a channel-shared PReLU slope and a
# Scale with num_axes: -1 (one factor per C x H x W entry).
def _ip_t(name, bottom, n):
    return layer(
        name,
        "InnerProduct",
        [bottom],
        extra=(f"inner_product_param {{ num_output: {n} transpose: true }} "),
    )


EVERY_KIND = data(3) + module(
    "m",
    conv("conv1", "data", 8)
    + bn_scale_relu("conv1")
    + inplace("pr1", "PReLU", "conv1")
    + inplace("sc_all", "Scale", "conv1", "scale_param { num_axes: -1 } ")
    + conv("dw", "conv1", 8, group=8)
    + inplace("b1", "Bias", "dw")
    + inplace("pr2", "PReLU", "dw", "prelu_param { channel_shared: true } ")
    + conv("cdw", "dw", 8, typ="ConvolutionDepthwise")
    + _ip_t("ip1", "cdw", 6)
    + _ip_t("ip2", "ip1", 4),
)


def test_every_kind_of_blob_follows_the_pruned_channels(net_of):
    """The blob rules of the catalogue say which axes follow channels; run the pruned net."""
    from cocotune.caffemodel import random_weights as catalogue_weights

    net = net_of(EVERY_KIND)
    analysis = analyze_pruning(net)
    assert sorted(analysis.regions) == ["conv1", "ip1"]
    weights = {k: [a.astype(np.float64) for a in v] for k, v in catalogue_weights(net).items()}
    rates = {"m": 0.5}
    pruned, kept = pruned_weights(net, weights, rates, analysis)
    assert sorted(kept) == ["cdw", "conv1", "dw", "ip1"]
    assert pruned["pr2"][0].shape == weights["pr2"][0].shape  # one shared slope stays
    assert pruned["sc_all"][0].shape == (4, 6, 6) and pruned["cdw"][0].shape == (4, 1, 3, 3)
    assert pruned["ip1"][0].shape == (4 * 36, 3) and pruned["ip2"][0].shape == (3, 4)
    masked = {k: [a.copy() for a in v] for k, v in weights.items()}
    gone = np.setdiff1d(np.arange(8), kept["conv1"])
    masked["ip1"][0][(gone[:, None] * 36 + np.arange(36)).reshape(-1), :] = 0
    masked["ip2"][0][np.setdiff1d(np.arange(6), kept["ip1"]), :] = 0
    x = np.random.default_rng(2).normal(size=net.layers[0].outputs[0].shape)
    want = run_net(pruned_net_param(net, {}), masked, {"data": x}, dtype=np.float64)
    got = run_net(pruned_net_param(net, rates), pruned, {"data": x}, dtype=np.float64)
    np.testing.assert_allclose(got["ip2"], want["ip2"], rtol=1e-9, atol=1e-9)
