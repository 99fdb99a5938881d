"""Every Caffe layer type, converted, against the independent numpy reference (rel. err ≤ 1e-4).

Each case is a tiny net on adversarial shapes (odd sizes, padding with ceil pooling, stride
larger than the kernel, groups, dilation, every Eltwise/LRN/BN variant). Weights are random
(cocotune.caffemodel.random_weights), inputs random normal; the comparison runs the generated
model.py exactly as a user imports it.
"""

from __future__ import annotations

import pytest

from cocotune.convert.command import convert, verify

TOL = 1e-4


def net(input_shape, body: str, extra_inputs: str = "") -> str:
    dims = " ".join(f"dim: {d}" for d in input_shape)
    return (
        f'name: "case"\nlayer {{ name: "data" type: "Input" top: "data" '
        f"input_param {{ shape {{ {dims} }} }} }}\n{extra_inputs}{body}"
    )


def conv(name, bottom, top, params):
    return (
        f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{top}" '
        f"convolution_param {{ {params} }} }}\n"
    )


def layer(name, kind, bottoms, tops, params=""):
    b = " ".join(f'bottom: "{x}"' for x in bottoms)
    t = " ".join(f'top: "{x}"' for x in tops)
    return f'layer {{ name: "{name}" type: "{kind}" {b} {t} {params} }}\n'


POSITIVE = layer("abs", "AbsVal", ["data"], ["pos"]) + layer(
    "shift", "Power", ["pos"], ["pos"], "power_param { shift: 0.5 }"
)

CASES = {
    "conv-odd-pad-stride": net(
        (1, 3, 9, 7), conv("c", "data", "out", "num_output: 5 kernel_size: 3 pad: 1 stride: 2")
    ),
    "conv-hw-kernels-bias": net(
        (2, 2, 8, 9),
        conv(
            "c",
            "data",
            "out",
            "num_output: 4 kernel_h: 3 kernel_w: 1 pad_h: 2 pad_w: 0 stride_h: 1 stride_w: 2",
        ),
    ),
    "conv-stride-gt-kernel": net(
        (1, 2, 11, 11),
        conv("c", "data", "out", "num_output: 3 kernel_size: 2 stride: 3 bias_term: false"),
    ),
    "conv-groups": net(
        (1, 4, 7, 7), conv("c", "data", "out", "num_output: 6 kernel_size: 3 group: 2 pad: 1")
    ),
    "conv-dilation": net(
        (1, 3, 12, 12), conv("c", "data", "out", "num_output: 4 kernel_size: 3 dilation: 2 pad: 2")
    ),
    "conv-depthwise": net(
        (1, 4, 8, 8),
        conv("c", "data", "out", "num_output: 4 kernel_size: 3 group: 4 pad: 1 stride: 2"),
    ),
    "conv-depthwise-multiplier": net(
        (1, 3, 6, 6), conv("c", "data", "out", "num_output: 6 kernel_size: 3 group: 3")
    ),
    "convolution-depthwise-fork": net(
        (1, 4, 8, 8),
        layer(
            "c",
            "ConvolutionDepthwise",
            ["data"],
            ["out"],
            "convolution_param { num_output: 4 kernel_size: 3 pad: 1 }",
        ),
    ),
    "deconv": net(
        (1, 3, 5, 4),
        layer(
            "d",
            "Deconvolution",
            ["data"],
            ["out"],
            "convolution_param { num_output: 4 kernel_size: 3 stride: 2 pad: 1 }",
        ),
    ),
    "deconv-groups-dilation": net(
        (1, 4, 5, 5),
        layer(
            "d",
            "Deconvolution",
            ["data"],
            ["out"],
            "convolution_param { num_output: 6 kernel_size: 3 stride: 1 dilation: 2 group: 2 }",
        ),
    ),
    "pool-max-ceil-pad": net(
        (1, 3, 8, 8),
        layer(
            "p",
            "Pooling",
            ["data"],
            ["out"],
            "pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 }",
        ),
    ),
    "pool-ave-ceil-pad": net(
        (1, 3, 7, 9),
        layer(
            "p",
            "Pooling",
            ["data"],
            ["out"],
            "pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 }",
        ),
    ),
    "pool-ave-ceil-nopad": net(
        (1, 2, 8, 8),
        layer(
            "p",
            "Pooling",
            ["data"],
            ["out"],
            "pooling_param { pool: AVE kernel_size: 3 stride: 2 }",
        ),
    ),
    "pool-max-stride-gt-kernel": net(
        (1, 2, 10, 10),
        layer(
            "p",
            "Pooling",
            ["data"],
            ["out"],
            "pooling_param { pool: MAX kernel_size: 2 stride: 3 }",
        ),
    ),
    "pool-floor": net(
        (1, 2, 8, 8),
        layer(
            "p",
            "Pooling",
            ["data"],
            ["out"],
            "pooling_param { pool: MAX kernel_size: 3 stride: 2 round_mode: FLOOR }",
        ),
    ),
    "pool-fork-ceil-mode-false": net(
        (1, 2, 9, 9),
        layer(
            "p",
            "Pooling",
            ["data"],
            ["out"],
            "pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 ceil_mode: false }",
        ),
    ),
    "pool-exact-tiles": net(
        (1, 2, 8, 8),
        layer(
            "p",
            "Pooling",
            ["data"],
            ["out"],
            "pooling_param { pool: MAX kernel_size: 2 stride: 2 }",
        ),
    ),
    "pool-global-ave": net(
        (2, 3, 5, 7),
        layer(
            "p", "Pooling", ["data"], ["out"], "pooling_param { pool: AVE global_pooling: true }"
        ),
    ),
    "pool-global-max": net(
        (2, 3, 5, 7),
        layer(
            "p", "Pooling", ["data"], ["out"], "pooling_param { pool: MAX global_pooling: true }"
        ),
    ),
    "lrn-across": net(
        (1, 7, 5, 5),
        layer(
            "n",
            "LRN",
            ["data"],
            ["out"],
            "lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 k: 2 }",
        ),
    ),
    "lrn-across-strong": net(
        (1, 4, 3, 3),
        layer("n", "LRN", ["data"], ["out"], "lrn_param { local_size: 3 alpha: 2 beta: 0.5 }"),
    ),
    "lrn-within": net(
        (1, 3, 6, 5),
        layer(
            "n",
            "LRN",
            ["data"],
            ["out"],
            "lrn_param { local_size: 3 alpha: 1.5 beta: 0.75 norm_region: WITHIN_CHANNEL }",
        ),
    ),
    "batchnorm-alone": net(
        (2, 3, 4, 4), layer("bn", "BatchNorm", ["data"], ["out"], "batch_norm_param { eps: 0.001 }")
    ),
    "batchnorm-scale-fused": net(
        (2, 3, 4, 4),
        layer("bn", "BatchNorm", ["data"], ["data"])
        + layer("sc", "Scale", ["data"], ["out"], "scale_param { bias_term: true }"),
    ),
    "batchnorm-scale-nobias": net(
        (2, 3, 4, 4),
        layer("bn", "BatchNorm", ["data"], ["x"]) + layer("sc", "Scale", ["x"], ["out"]),
    ),
    "batchnorm-2d": net((3, 5), layer("bn", "BatchNorm", ["data"], ["out"])),
    "scale-axis-num-axes": net(
        (2, 3, 4, 5),
        layer(
            "sc", "Scale", ["data"], ["out"], "scale_param { axis: 1 num_axes: 2 bias_term: true }"
        ),
    ),
    "scale-trailing": net(
        (2, 3, 4, 5),
        layer("sc", "Scale", ["data"], ["out"], "scale_param { axis: 2 num_axes: -1 }"),
    ),
    "scale-two-bottoms": net(
        (2, 3, 4, 5),
        layer("g", "Pooling", ["data"], ["g"], "pooling_param { pool: AVE global_pooling: true }")
        + layer("r", "Reshape", ["g"], ["g2"], "reshape_param { shape { dim: 0 dim: -1 } }")
        + layer("sc", "Scale", ["data", "g2"], ["out"], "scale_param { axis: 0 }"),
    ),
    "bias": net((2, 3, 4, 5), layer("b", "Bias", ["data"], ["out"])),
    "eltwise-sum-coeff": net(
        (1, 3, 4, 4),
        layer(
            "e",
            "Eltwise",
            ["data", "data", "data"],
            ["out"],
            "eltwise_param { operation: SUM coeff: 0.5 coeff: -2 coeff: 1 }",
        ),
    ),
    "eltwise-prod-max": net(
        (1, 3, 4, 4),
        layer("r", "ReLU", ["data"], ["r"])
        + layer("e", "Eltwise", ["data", "r"], ["prod"], "eltwise_param { operation: PROD }")
        + layer("m", "Eltwise", ["prod", "data"], ["out"], "eltwise_param { operation: MAX }"),
    ),
    "concat-channels-and-height": net(
        (1, 2, 3, 4),
        layer("c1", "Concat", ["data", "data"], ["c1"])
        + layer("out", "Concat", ["c1", "c1"], ["out"], "concat_param { axis: 2 }"),
    ),
    "slice": net(
        (1, 6, 3, 3),
        layer(
            "s",
            "Slice",
            ["data"],
            ["a", "b", "c"],
            "slice_param { axis: 1 slice_point: 1 slice_point: 4 }",
        )
        + layer("e", "Concat", ["c", "a", "b"], ["out"]),
    ),
    "split-crop": net(
        (1, 2, 7, 6),
        layer("sp", "Split", ["data"], ["x", "y"])
        + layer(
            "p", "Pooling", ["y"], ["small"], "pooling_param { pool: MAX kernel_size: 2 stride: 2 }"
        )
        + layer(
            "cr", "Crop", ["x", "small"], ["out"], "crop_param { axis: 2 offset: 1 offset: 2 }"
        ),
    ),
    "flatten-ip": net(
        (2, 3, 4, 5),
        layer("f", "Flatten", ["data"], ["f"])
        + layer("fc", "InnerProduct", ["f"], ["out"], "inner_product_param { num_output: 7 }"),
    ),
    "flatten-softmax": net(
        (2, 3, 2, 2), layer("f", "Flatten", ["data"], ["f"]) + layer("s", "Softmax", ["f"], ["out"])
    ),
    "ip-on-4d-transpose": net(
        (2, 3, 4, 5),
        layer(
            "fc",
            "InnerProduct",
            ["data"],
            ["out"],
            "inner_product_param { num_output: 6 transpose: true }",
        ),
    ),
    "reshape-zero-minus-one": net(
        (2, 4, 3, 2),
        layer(
            "r",
            "Reshape",
            ["data"],
            ["out"],
            "reshape_param { shape { dim: 0 dim: 2 dim: -1 dim: 3 } }",
        ),
    ),
    "reshape-to-2d": net(
        (2, 4, 3, 2),
        layer("r", "Reshape", ["data"], ["out"], "reshape_param { shape { dim: 0 dim: -1 } }"),
    ),
    "softmax-axis-2": net(
        (2, 3, 4, 5), layer("s", "Softmax", ["data"], ["out"], "softmax_param { axis: 2 }")
    ),
    "relu-leaky": net(
        (1, 3, 4, 4), layer("r", "ReLU", ["data"], ["out"], "relu_param { negative_slope: 0.1 }")
    ),
    "prelu": net((1, 3, 4, 4), layer("r", "PReLU", ["data"], ["out"])),
    "prelu-shared": net(
        (1, 3, 4, 4), layer("r", "PReLU", ["data"], ["out"], "prelu_param { channel_shared: true }")
    ),
    "elu-sigmoid-tanh": net(
        (1, 3, 4, 4),
        layer("e", "ELU", ["data"], ["e"], "elu_param { alpha: 0.5 }")
        + layer("s", "Sigmoid", ["e"], ["s"])
        + layer("t", "TanH", ["s"], ["out"]),
    ),
    "power-exp-log": net(
        (1, 3, 4, 4),
        POSITIVE
        + layer("p", "Power", ["pos"], ["p"], "power_param { power: 1.5 scale: 2 shift: 0.1 }")
        + layer("l", "Log", ["p"], ["l"], "log_param { base: 2 scale: 0.5 shift: 1 }")
        + layer("x", "Exp", ["l"], ["out"], "exp_param { base: 3 scale: 0.2 }"),
    ),
    "bnll-abs-threshold-clip-swish": net(
        (1, 3, 4, 4),
        layer("b", "BNLL", ["data"], ["b"])
        + layer("a", "AbsVal", ["b"], ["a"])
        + layer("c", "Clip", ["data"], ["c"], "clip_param { min: -0.5 max: 0.7 }")
        + layer("s", "Swish", ["c"], ["s"], "swish_param { beta: 1.5 }")
        + layer("e", "Eltwise", ["a", "s"], ["out"])
        + layer("t", "Threshold", ["data"], ["thr"], "threshold_param { threshold: 0.2 }"),
    ),
    "dropout-at-test": net((2, 5), layer("d", "Dropout", ["data"], ["out"])),
    "tile-reduction": net(
        (2, 3, 4, 5),
        layer("t", "Tile", ["data"], ["t"], "tile_param { axis: 1 tiles: 2 }")
        + layer(
            "r",
            "Reduction",
            ["t"],
            ["out"],
            "reduction_param { operation: SUMSQ axis: 2 coeff: 0.5 }",
        ),
    ),
    "argmax-axis": net(
        (2, 5, 3, 3), layer("a", "ArgMax", ["data"], ["out"], "argmax_param { axis: 1 top_k: 1 }")
    ),
    "argmax-flat-maxval": net(
        (2, 7),
        layer("a", "ArgMax", ["data"], ["out"], "argmax_param { top_k: 2 out_max_val: true }"),
    ),
    "shuffle-channel": net(
        (1, 6, 3, 3),
        layer("s", "ShuffleChannel", ["data"], ["out"], "shuffle_channel_param { group: 3 }"),
    ),
    "axpy-senet": net(
        (2, 4, 5, 5),
        layer("g", "Pooling", ["data"], ["g"], "pooling_param { pool: AVE global_pooling: true }")
        + layer("sg", "Sigmoid", ["g"], ["g"])
        + layer("ax", "Axpy", ["g", "data", "data"], ["out"]),
    ),
    "mvn": net((2, 3, 4, 5), layer("m", "MVN", ["data"], ["out"])),
    # Embed reads indices: squash the random input into [0, input_dim) (Caffe truncates).
    "embed": net(
        (2, 5),
        layer("s", "Sigmoid", ["data"], ["ids"])
        + layer("p", "Power", ["ids"], ["ids"], "power_param { scale: 4.99 }")
        + layer("e", "Embed", ["ids"], ["out"], "embed_param { input_dim: 5 num_output: 3 }"),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_matches_reference(tmp_path, case):
    path = tmp_path / "net.prototxt"
    path.write_text(CASES[case])
    net, plan, module, _ = convert(str(path), tmp_path / "out")
    report = verify(net, plan, module, None, seed=3)
    assert report, "no outputs compared"
    for row in report:
        assert row["max_rel_error"] <= TOL, row
