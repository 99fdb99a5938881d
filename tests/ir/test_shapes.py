"""Shape rules against the independent numpy reference (tests/reference) and hand examples."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cocotune.errors import ShapeError
from cocotune.frontend.load import load_net
from tests.reference import caffe_layers as ref


def net_text(input_shape, body: str) -> str:
    dims = " ".join(f"dim: {d}" for d in input_shape)
    return (
        f'layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ {dims} }} }} }}\n'
        + body
    )


def shape_of(write_net, input_shape, body, blob="out"):
    return load_net(write_net(net_text(input_shape, body))).final_blobs()[blob].shape


@settings(max_examples=120, deadline=None)
@given(
    size=st.integers(1, 12),
    kernel=st.integers(1, 5),
    stride=st.integers(1, 4),
    pad=st.integers(0, 3),
    method=st.sampled_from(["MAX", "AVE"]),
    round_mode=st.sampled_from(["CEIL", "FLOOR"]),
)
def test_pooling_shape_matches_reference(
    tmp_path_factory, size, kernel, stride, pad, method, round_mode
):
    if pad >= kernel or size + 2 * pad < kernel:
        return
    x = np.random.default_rng(0).standard_normal((1, 2, size, size + 1)).astype(np.float32)
    want = ref.pooling(
        x, method=method, kernel=kernel, stride=stride, pad=pad, round_mode=round_mode
    ).shape
    path = tmp_path_factory.mktemp("p") / "n.prototxt"
    path.write_text(
        net_text(
            x.shape,
            (
                f'layer {{ name: "out" type: "Pooling" bottom: "data" top: "out" pooling_param {{ '
                f"pool: {method} kernel_size: {kernel} stride: {stride} pad: {pad} round_mode: {round_mode} }} }}\n"
            ),
        )
    )
    assert load_net(path).final_blobs()["out"].shape == want


@settings(max_examples=80, deadline=None)
@given(
    size=st.integers(3, 10),
    kernel=st.integers(1, 3),
    stride=st.integers(1, 3),
    pad=st.integers(0, 2),
    dilation=st.integers(1, 2),
    group=st.sampled_from([1, 2]),
    deconv=st.booleans(),
)
def test_convolution_shapes_match_reference(
    tmp_path_factory, size, kernel, stride, pad, dilation, group, deconv
):
    if not deconv and size + 2 * pad < dilation * (kernel - 1) + 1:
        return
    if deconv and stride * (size - 1) + dilation * (kernel - 1) + 1 - 2 * pad <= 0:
        return
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 4, size, size)).astype(np.float32)
    if deconv:
        w = rng.standard_normal((4, 6 // group, kernel, kernel)).astype(np.float32)
        want = ref.deconvolution(x, w, stride=stride, pad=pad, dilation=dilation, group=group)
    else:
        w = rng.standard_normal((6, 4 // group, kernel, kernel)).astype(np.float32)
        want = ref.convolution(x, w, stride=stride, pad=pad, dilation=dilation, group=group)
    kind = "Deconvolution" if deconv else "Convolution"
    path = tmp_path_factory.mktemp("c") / "n.prototxt"
    path.write_text(
        net_text(
            x.shape,
            (
                f'layer {{ name: "out" type: "{kind}" bottom: "data" top: "out" convolution_param {{ '
                f"num_output: 6 kernel_size: {kernel} stride: {stride} pad: {pad} dilation: {dilation} "
                f"group: {group} }} }}\n"
            ),
        )
    )
    assert load_net(path).final_blobs()["out"].shape == want.shape


def test_caffe_ceil_pooling_drops_window_starting_in_padding(write_net):
    # 6 wide, kernel 2, stride 2, pad 1: ceil((6+2-2)/2)+1 = 4, but the 4th window would
    # start at 6 >= 6+1-1... (4-1)*2 = 6 >= 6+1 is false -> 4; with size 5: ceil(5/2)+1=4,
    # (4-1)*2=6 >= 5+1 -> 3.
    body = (
        'layer { name: "out" type: "Pooling" bottom: "data" top: "out" '
        "pooling_param { pool: MAX kernel_size: 2 stride: 2 pad: 1 } }\n"
    )
    assert shape_of(write_net, (1, 1, 6, 6), body) == (1, 1, 4, 4)
    assert shape_of(write_net, (1, 1, 5, 5), body) == (1, 1, 3, 3)


def test_fork_ceil_mode_false_floors(write_net):
    body = (
        'layer { name: "out" type: "Pooling" bottom: "data" top: "out" '
        "pooling_param { pool: MAX kernel_size: 3 stride: 2 ceil_mode: false } }\n"
    )
    assert shape_of(write_net, (1, 1, 8, 8), body) == (1, 1, 3, 3)


def test_reshape_zero_and_minus_one(write_net):
    body = (
        'layer { name: "out" type: "Reshape" bottom: "data" top: "out" '
        "reshape_param { shape { dim: 0 dim: -1 dim: 2 } } }\n"
    )
    assert shape_of(write_net, (2, 3, 4, 4), body) == (2, 24, 2)
    x = np.zeros((2, 3, 4, 4))
    assert ref.reshape(x, [0, -1, 2]).shape == (2, 24, 2)
    body = (
        'layer { name: "out" type: "Reshape" bottom: "data" top: "out" '
        "reshape_param { axis: 1 num_axes: 2 shape { dim: -1 } } }\n"
    )
    assert shape_of(write_net, (2, 3, 4, 5), body) == (2, 12, 5)


@pytest.mark.parametrize(
    "body,expected",
    [
        (
            'layer { name: "out" type: "InnerProduct" bottom: "data" top: "out" '
            "inner_product_param { num_output: 7 axis: 2 } }",
            (2, 3, 7),
        ),
        (
            'layer { name: "out" type: "Flatten" bottom: "data" top: "out" '
            "flatten_param { axis: 1 end_axis: 2 } }",
            (2, 12, 5),
        ),
        (
            'layer { name: "s" type: "Slice" bottom: "data" top: "out" top: "b" '
            "slice_param { axis: 1 slice_point: 1 } }",
            (2, 1, 4, 5),
        ),
        (
            'layer { name: "out" type: "ArgMax" bottom: "data" top: "out" '
            "argmax_param { top_k: 2 out_max_val: true } }",
            (2, 2, 2, 1),
        ),
        (
            'layer { name: "out" type: "Reduction" bottom: "data" top: "out" '
            "reduction_param { axis: 1 } }",
            (2,),
        ),
        (
            'layer { name: "out" type: "Tile" bottom: "data" top: "out" '
            "tile_param { axis: -1 tiles: 3 } }",
            (2, 3, 4, 15),
        ),
        ('layer { name: "out" type: "Softmax" bottom: "data" top: "out" }', (2, 3, 4, 5)),
    ],
    ids=["ip-axis", "flatten", "slice", "argmax", "reduction", "tile", "softmax"],
)
def test_axis_rules(write_net, body, expected):
    assert shape_of(write_net, (2, 3, 4, 5), body + "\n") == expected


def test_scale_second_bottom_and_crop(write_net):
    body = (
        'layer { name: "p" type: "Pooling" bottom: "data" top: "p" '
        "pooling_param { pool: AVE global_pooling: true } }\n"
        'layer { name: "r" type: "Reshape" bottom: "p" top: "r" reshape_param { shape { dim: 0 dim: 0 } } }\n'
        'layer { name: "out" type: "Scale" bottom: "data" bottom: "r" top: "out" scale_param { axis: 0 } }\n'
        'layer { name: "c" type: "Crop" bottom: "data" bottom: "p" top: "cropped" '
        "crop_param { axis: 2 offset: 1 } }\n"
    )
    net = load_net(write_net(net_text((2, 3, 4, 5), body)))
    assert net.final_blobs()["out"].shape == (2, 3, 4, 5)
    assert net.final_blobs()["cropped"].shape == (2, 3, 1, 1)


def test_grouped_conv_params_and_macs(write_net):
    body = (
        'layer { name: "out" type: "Convolution" bottom: "data" top: "out" '
        "convolution_param { num_output: 8 kernel_size: 3 pad: 1 group: 2 } }\n"
    )
    net = load_net(write_net(net_text((1, 4, 5, 5), body)))
    layer = net.layer("out")
    assert layer.params == 8 * 2 * 9 + 8
    assert layer.macs == 8 * 5 * 5 * 2 * 9


def test_group_must_divide_channels(write_net):
    body = (
        'layer { name: "out" type: "Convolution" bottom: "data" top: "out" '
        "convolution_param { num_output: 8 kernel_size: 3 group: 3 } }\n"
    )
    with pytest.raises(ShapeError, match=r"input channels \(4\) are not divisible by group \(3\)"):
        load_net(write_net(net_text((1, 4, 5, 5), body)))
