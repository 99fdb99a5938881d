"""cocotune.runtime.layers against the numpy Caffe reference (tests/reference).

Every layer runs on NHWC data that is the transpose of the reference's NCHW input, inside a
functional model with an unknown batch size, traced by tf.function; the result is transposed
back and compared with rtol = atol = 1e-5. The static output shape the layer reports must
match what it computes.
"""

from __future__ import annotations

import importlib
import inspect
import itertools
import pkgutil
import re
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from cocotune.ir.geometry import caffe_pool_output_size
from cocotune.runtime import layers as L
from tests.reference import caffe_layers as ref

TOL = dict(rtol=1e-5, atol=1e-5)


def nhwc(x):
    return np.ascontiguousarray(np.moveaxis(x, 1, -1))


def nchw(x):
    return np.ascontiguousarray(np.moveaxis(x, -1, 1))


def rand(*shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def run(layer, *inputs, weights=None):
    """Apply ``layer`` to numpy ``inputs`` through a functional model with batch None,
    checking the static output shape against the computed one."""
    syms = [keras.Input(shape=a.shape[1:], dtype=str(a.dtype)) for a in inputs]
    out = layer(syms if len(syms) > 1 else syms[0])
    model = keras.Model(syms, out)
    if weights is not None:
        layer.set_weights(weights)
    spec = [tf.TensorSpec((None,) + a.shape[1:], a.dtype) for a in inputs]
    fn = tf.function(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0]), input_signature=spec)
    y = fn(*inputs).numpy()
    assert tuple(out.shape[1:]) == y.shape[1:], (out.shape, y.shape)
    return y


# --------------------------------------------------------------------------
# pooling
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size,kernel,stride,pad",
    [(h, k, s, p) for h in range(1, 9) for k in range(1, 5) for s in range(1, 5) for p in range(k)],
)
def test_caffe_pool_output_size(size, kernel, stride, pad):
    for ceil in (True, False):
        expected = ref._pool_out_size(size, kernel, stride, pad, ceil)
        if pad and (expected - 1) * stride >= size + pad:
            expected -= 1
        assert caffe_pool_output_size(size, kernel, stride, pad, ceil) == expected
        if expected > 0:  # the reference agrees on real shapes too
            x = np.zeros((1, 1, size, 1), np.float32)
            y = ref.pooling(
                x, "MAX", kernel=(kernel, 1), stride=(stride, 1), pad=(pad, 0), ceil_mode=ceil
            )
            assert y.shape[2] == expected


POOL_CASES = [
    # (H, W), kernel, stride, pad, ceil_mode
    ((7, 9), 3, 2, 1, True),  # ResNet stem style, odd sizes
    ((6, 6), 3, 2, 0, True),  # ceil window hangs over the edge, no pad
    ((13, 13), 3, 2, 0, True),  # AlexNet
    ((5, 8), 2, 3, 0, True),  # stride > kernel
    ((7, 7), 3, 2, 1, False),  # floor
    ((5, 7), 3, 4, 2, True),  # pad > 0 drops the last window
    ((6, 5), (3, 2), (2, 1), (1, 1), True),  # non-square everything
    ((8, 7), (2, 3), (3, 2), (1, 2), True),
    ((7, 7), 7, 1, 0, True),  # global
    ((4, 6), 3, 1, 1, True),  # same-size with padding
]


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("hw,kernel,stride,pad,ceil", POOL_CASES)
def test_pooling(method, hw, kernel, stride, pad, ceil):
    x = rand(2, 3, *hw, seed=1) - 2.0  # mostly negative: zero padding would win a max
    expected = ref.pooling(x, method, kernel=kernel, stride=stride, pad=pad, ceil_mode=ceil)
    layer = L.CaffePooling2D(method.lower(), kernel, stride, pad, ceil_mode=ceil)
    y = run(layer, nhwc(x))
    np.testing.assert_allclose(nchw(y), expected, **TOL)


@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_pooling_grid(method):
    """Every small configuration, eagerly: covers both the SAME and the padded paths."""
    x = rand(2, 2, 7, 9, seed=3) - 1.0
    checked = 0
    for h, k, s, ceil in itertools.product(range(1, 8), range(1, 4), range(1, 4), (True, False)):
        for p in range(k):
            xs = x[:, :, :h, : h + 2]
            if min(caffe_pool_output_size(n, k, s, p, ceil) for n in xs.shape[2:]) <= 0:
                continue
            with np.errstate(all="ignore"):
                expected = ref.pooling(xs, method, kernel=k, stride=s, pad=p, ceil_mode=ceil)
            layer = L.CaffePooling2D(method.lower(), k, s, p, ceil)
            y = nchw(layer(nhwc(xs)).numpy())
            np.testing.assert_allclose(y, expected, **TOL, err_msg=f"{h} {k} {s} {p} {ceil}")
            checked += 1
    assert checked > 150


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("h", [5, 4])
def test_pooling_window_outside_image(method, h):
    # no pad, ceil, stride > kernel: the last window lies wholly outside the image; Caffe
    # gives -FLT_MAX (MAX) and 0/-0/NaN (AVE, divisor <= 0). Must not crash; matches Caffe.
    x = rand(1, 2, h, h, seed=2)
    with np.errstate(all="ignore"):
        expected = ref.pooling(x, method, kernel=1, stride=3 if h == 5 else 2)
    layer = L.CaffePooling2D(method.lower(), 1, 3 if h == 5 else 2, 0)
    np.testing.assert_allclose(nchw(run(layer, nhwc(x))), expected, **TOL)


def test_pooling_validates():
    with pytest.raises(ValueError, match="Received: method='sum'"):
        L.CaffePooling2D("sum", 2, 2)
    with pytest.raises(ValueError, match="pad"):
        L.CaffePooling2D("max", 2, 2, pad=2)


# --------------------------------------------------------------------------
# LRN / MVN / affine
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "c,n,alpha,beta,k,region",
    [
        (7, 5, 1e-4, 0.75, 1.0, "ACROSS_CHANNELS"),
        (7, 3, 0.5, 0.75, 2.0, "ACROSS_CHANNELS"),
        (3, 5, 0.3, 0.6, 1.5, "ACROSS_CHANNELS"),  # window wider than C
        (4, 1, 0.3, 0.75, 1.0, "ACROSS_CHANNELS"),
        (3, 3, 0.5, 0.75, 2.0, "WITHIN_CHANNEL"),  # k must be ignored
        (2, 5, 0.2, 0.9, 1.0, "WITHIN_CHANNEL"),
    ],
)
def test_lrn(c, n, alpha, beta, k, region):
    x = rand(2, c, 5, 7, seed=3, scale=2.0)
    expected = ref.lrn(x, n, alpha, beta, k, region)
    y = run(L.LRN(n, alpha, beta, k, region.lower()), nhwc(x))
    np.testing.assert_allclose(nchw(y), expected, **TOL)


@pytest.mark.parametrize("normalize_variance", [True, False])
@pytest.mark.parametrize("across_channels", [True, False])
@pytest.mark.parametrize("eps", [1e-9, 0.1])  # 0.1 tells std + eps from var + eps
def test_mvn(normalize_variance, across_channels, eps):
    x = rand(2, 3, 5, 4, seed=4, scale=0.5) + 1.0
    expected = ref.mvn(x, normalize_variance, across_channels, eps)
    y = run(L.MVN(normalize_variance, across_channels, eps), nhwc(x))
    np.testing.assert_allclose(nchw(y), expected, **TOL)


def test_mvn_rank2():
    x = rand(3, 4, seed=5)
    for across in (False, True):
        np.testing.assert_allclose(run(L.MVN(True, across), x), ref.mvn(x, True, across), **TOL)


def _affine_cases():
    c, h, w = 3, 4, 5
    s_c, s_chw, s_hw, s_0 = rand(c, seed=6), rand(c, h, w, seed=7), rand(h, w, seed=8), rand(seed=9)
    return [
        # (caffe param, caffe axis, num_axes, NHWC param_shape, NHWC param)
        (s_c, 1, 1, (c,), s_c),
        (s_chw, 1, 3, (h, w, c), np.moveaxis(s_chw, 0, -1)),
        (s_hw, 2, 2, (h, w, 1), s_hw[..., None]),
        (s_0, 1, 0, (), s_0),
    ]


@pytest.mark.parametrize("case", range(4))
@pytest.mark.parametrize("mode", ["scale", "scale+bias", "bias"])
def test_channel_affine(case, mode):
    s, axis, num_axes, pshape, p = _affine_cases()[case]
    x = rand(2, 3, 4, 5, seed=10)
    b, pb = s * 0.5 + 1, p * 0.5 + 1
    if mode == "bias":
        expected = ref.bias(x, b, axis, num_axes)
        layer, weights = L.ChannelAffine(pshape, scale=False, bias=True), [pb]
    elif mode == "scale":
        expected = ref.scale(x, s, None, axis, num_axes)
        layer, weights = L.ChannelAffine(pshape, scale=True, bias=False), [p]
    else:
        expected = ref.scale(x, s, b, axis, num_axes)
        layer, weights = L.ChannelAffine(pshape), [p, pb]
    y = run(layer, nhwc(x), weights=weights)
    np.testing.assert_allclose(nchw(y), expected, **TOL)
    assert [v.name for v in layer.weights] == {"bias": ["beta"], "scale": ["gamma"]}.get(
        mode, ["gamma", "beta"]
    )


def test_channel_affine_default_shape_and_validation():
    x = rand(2, 3, 4, 5, seed=11)
    s = rand(3, seed=12)
    y = run(L.ChannelAffine(scale=True, bias=False), nhwc(x), weights=[s])
    np.testing.assert_allclose(nchw(y), ref.scale(x, s), **TOL)
    with pytest.raises(ValueError, match="does not broadcast"):
        L.ChannelAffine((7,)).build((None, 4, 5, 3))


# --------------------------------------------------------------------------
# multi-input
# --------------------------------------------------------------------------


def test_weighted_sum():
    xs = [rand(2, 3, 4, 5, seed=s) for s in range(3)]
    coeffs = [1.0, -0.5, 2.0]
    y = run(L.WeightedSum(coeffs), *[nhwc(a) for a in xs])
    np.testing.assert_allclose(nchw(y), ref.eltwise(xs, "SUM", coeffs), **TOL)
    with pytest.raises(ValueError, match="needs as many inputs"):
        L.WeightedSum([1.0, 2.0]).compute_output_shape([(None, 3)] * 3)


@pytest.mark.parametrize("a_rank", [2, 4])
def test_axpy(a_rank):
    x, yy = rand(2, 6, 3, 5, seed=13), rand(2, 6, 3, 5, seed=14)
    a = rand(2, 6, 1, 1, seed=15) if a_rank == 4 else rand(2, 6, seed=15)
    expected = ref.axpy(a, x, yy)
    a_in = nhwc(a) if a_rank == 4 else a
    y = run(L.Axpy(), a_in, nhwc(x), nhwc(yy))
    np.testing.assert_allclose(nchw(y), expected, **TOL)


@pytest.mark.parametrize("c,g", [(12, 3), (12, 4), (6, 1), (6, 6)])
def test_shuffle_channel(c, g):
    x = rand(2, c, 3, 5, seed=16)
    y = run(L.ShuffleChannel(g), nhwc(x))
    np.testing.assert_array_equal(nchw(y), ref.shuffle_channel(x, g))


# --------------------------------------------------------------------------
# element-wise
# --------------------------------------------------------------------------

X_ELT = rand(2, 3, 4, 5, seed=17, scale=3.0)
X_POS = np.abs(X_ELT) + 0.1


@pytest.mark.parametrize(
    "kw,x",
    [
        (dict(power=1.0, scale=1.0, shift=0.0), X_ELT),
        (dict(power=2.0, scale=0.5, shift=-1.0), X_ELT),
        (dict(power=3.0, scale=-1.5, shift=0.25), X_ELT),
        (dict(power=0.5, scale=2.0, shift=0.1), X_POS),
        (dict(power=-1.0, scale=1.0, shift=0.5), X_POS),
        (dict(power=-0.75, scale=0.3, shift=1.0), X_POS),
        (dict(power=0.0, scale=2.0, shift=3.0), X_ELT),  # constant 1
        (dict(power=2.0, scale=0.0, shift=3.0), X_ELT),  # constant shift^power
    ],
)
def test_power(kw, x):
    y = run(L.Power(**kw), nhwc(x))
    np.testing.assert_allclose(nchw(y), ref.power(x, **kw), **TOL)


@pytest.mark.parametrize(
    "kw",
    [
        dict(base=-1.0, scale=1.0, shift=0.0),
        dict(base=-1.0, scale=0.5, shift=-1.0),
        dict(base=2.0, scale=1.0, shift=0.0),
        dict(base=0.5, scale=-0.7, shift=1.5),
        dict(base=10.0, scale=0.2, shift=0.3),
    ],
)
def test_exp(kw):
    y = run(L.CaffeExp(**kw), nhwc(X_ELT))
    np.testing.assert_allclose(nchw(y), ref.exp(X_ELT, **kw), **TOL)


@pytest.mark.parametrize(
    "kw",
    [
        dict(base=-1.0, scale=1.0, shift=0.0),
        dict(base=-1.0, scale=2.0, shift=1.0),
        dict(base=2.0, scale=1.0, shift=0.0),
        dict(base=10.0, scale=0.5, shift=0.25),
    ],
)
def test_log(kw):
    y = run(L.CaffeLog(**kw), nhwc(X_POS))
    np.testing.assert_allclose(nchw(y), ref.log(X_POS, **kw), **TOL)


def test_exp_log_validate():
    with pytest.raises(ValueError, match="Received: base=-2.0"):
        L.CaffeExp(base=-2)
    with pytest.raises(ValueError, match="Received: base=1.0"):
        L.CaffeLog(base=1)


def test_bnll():
    x = np.concatenate([X_ELT, X_ELT * 30.0], axis=1)  # includes |x| ~ 100
    np.testing.assert_allclose(nchw(run(L.BNLL(), nhwc(x))), ref.bnll(x), **TOL)


def test_threshold():
    x = np.round(X_ELT)  # many values exactly at the threshold
    for t in (0.0, 1.0, -2.0):
        y = run(L.Threshold(t), nhwc(x))
        np.testing.assert_array_equal(nchw(y), ref.threshold(x, t))


def test_absval_clip_swish():
    np.testing.assert_allclose(nchw(run(L.AbsVal(), nhwc(X_ELT))), ref.absval(X_ELT), **TOL)
    for lo, hi in ((-1.0, 2.0), (0.0, 6.0), (1.0, -1.0)):
        y = run(L.Clip(lo, hi), nhwc(X_ELT))
        np.testing.assert_allclose(nchw(y), ref.clip(X_ELT, lo, hi), **TOL)
    for beta in (1.0, 0.5, 2.5):
        y = run(L.Swish(beta), nhwc(X_ELT))
        np.testing.assert_allclose(nchw(y), ref.swish(X_ELT, beta), **TOL)


def test_stock_keras_activations_match_caffe():
    """The generator uses these stock layers; they must compute what Caffe does."""
    x = nhwc(X_ELT)
    slope = rand(3, seed=19)
    prelu = keras.layers.PReLU(shared_axes=[1, 2])
    y = run(prelu, x, weights=[slope.reshape(1, 1, 3)])
    np.testing.assert_allclose(nchw(y), ref.prelu(X_ELT, slope), **TOL)
    for alpha in (1.0, 0.3):
        y = run(keras.layers.ELU(alpha=alpha), x)
        np.testing.assert_allclose(nchw(y), ref.elu(X_ELT, alpha), **TOL)
    for slope_ in (0.1, 0.0, 1.5):
        y = run(keras.layers.LeakyReLU(negative_slope=slope_), x)
        np.testing.assert_allclose(nchw(y), ref.relu(X_ELT, slope_), **TOL)


# --------------------------------------------------------------------------
# deconvolution
# --------------------------------------------------------------------------

DECONV_CASES = [
    # c_in, c_out, group, kernel, stride, pad, dilation, (H, W)
    (4, 6, 1, 3, 2, 1, 1, (5, 6)),
    (4, 6, 1, (3, 2), (2, 3), (1, 0), 1, (4, 5)),
    (3, 2, 1, 2, 3, 0, 1, (3, 4)),  # stride > kernel: gaps in the output
    (4, 6, 1, 3, 1, 0, 2, (5, 6)),  # dilation
    (4, 6, 1, (3, 2), (2, 1), (2, 1), (2, 3), (5, 4)),
    (4, 6, 2, 3, 2, 1, 1, (5, 6)),  # groups, per-group path
    (6, 6, 6, 4, 2, 1, 1, (5, 6)),  # FCN-style depthwise upsampling
    (6, 3, 3, 4, 2, 1, 2, (4, 5)),  # one output per group, 2 inputs per group, dilated
    (4, 8, 2, 3, 2, 2, 2, (4, 4)),  # groups + dilation + pad
]


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("cin,cout,g,kernel,stride,pad,dil,hw", DECONV_CASES)
def test_deconvolution(cin, cout, g, kernel, stride, pad, dil, hw, use_bias):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    x = rand(2, cin, *hw, seed=20)
    w = rand(cin, cout // g, kh, kw, seed=21)
    b = rand(cout, seed=22) if use_bias else None
    expected = ref.deconvolution(x, w, b, stride=stride, pad=pad, dilation=dil, group=g)
    layer = L.CaffeDeconv2D(cout, kernel, stride, pad, dil, groups=g, use_bias=use_bias)
    weights = [w.transpose(2, 3, 1, 0)] + ([b] if use_bias else [])
    y = run(layer, nhwc(x), weights=weights)
    np.testing.assert_allclose(nchw(y), expected, **TOL)
    assert [v.name for v in layer.weights] == ["kernel", "bias"][: len(weights)]


def test_deconvolution_group1_is_conv2dtranspose_layout():
    x = rand(2, 4, 3, 5, seed=23)
    w = rand(4, 6, 3, 3, seed=24)
    ours = L.CaffeDeconv2D(6, 3, 2, 0, use_bias=False)
    stock = keras.layers.Conv2DTranspose(6, 3, 2, padding="valid", use_bias=False)
    y1 = run(ours, nhwc(x), weights=[w.transpose(2, 3, 1, 0)])
    y2 = run(stock, nhwc(x), weights=[w.transpose(2, 3, 1, 0)])
    np.testing.assert_allclose(y1, y2, **TOL)


# --------------------------------------------------------------------------
# argmax / reduction
# --------------------------------------------------------------------------


@pytest.mark.parametrize("out_max_val", [False, True])
@pytest.mark.parametrize("top_k", [1, 3])
@pytest.mark.parametrize("caffe_axis,nhwc_axis", [(1, 3), (2, 1), (3, 2), (-1, -2)])
def test_argmax_axis(caffe_axis, nhwc_axis, top_k, out_max_val):
    x = np.random.default_rng(25).integers(0, 3, (2, 5, 4, 6)).astype(np.float32)  # many ties
    expected = ref.argmax(x, top_k, out_max_val, axis=caffe_axis)
    y = run(L.ArgMax(top_k, out_max_val, nhwc_axis), nhwc(x))
    np.testing.assert_array_equal(nchw(y), expected)


@pytest.mark.parametrize("out_max_val", [False, True])
@pytest.mark.parametrize("top_k", [1, 4])
def test_argmax_flat(top_k, out_max_val):
    x = np.random.default_rng(26).integers(0, 4, (3, 10)).astype(np.float32)
    expected = ref.argmax(x, top_k, out_max_val)
    y = run(L.ArgMax(top_k, out_max_val), x)
    np.testing.assert_array_equal(y, expected)
    # a 4-D blob: the generator moves it to channels-first order first
    x4 = rand(2, 3, 2, 2, seed=27)
    y4 = run(L.ArgMax(top_k, out_max_val), x4)
    np.testing.assert_allclose(y4, ref.argmax(x4, top_k, out_max_val)[..., 0], **TOL)


@pytest.mark.parametrize("op", ["SUM", "ASUM", "SUMSQ", "MEAN"])
@pytest.mark.parametrize("caffe_axis,axes", [(1, (1, 2, 3)), (2, (1, 2)), (3, (2,))])
def test_reduction(op, caffe_axis, axes):
    x = rand(2, 3, 4, 5, seed=28)
    expected = ref.reduction(x, op, caffe_axis, coeff=-0.5)
    y = run(L.Reduction(op.lower(), axes, coeff=-0.5), nhwc(x))
    if caffe_axis == 3:  # (N, C, H) in Caffe, (N, H, C) here
        y = np.moveaxis(y, -1, 1)
    np.testing.assert_allclose(y, expected, **TOL)
    with pytest.raises(ValueError, match="batch axis"):
        L.Reduction("sum", (0, 1)).compute_output_shape((None, 3, 4))


# --------------------------------------------------------------------------
# slicing / tiling / embedding
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "caffe_axis,nhwc_axis,points", [(1, -1, [2, 3]), (2, 1, [1]), (3, 2, [2, 4])]
)
def test_slice(caffe_axis, nhwc_axis, points):
    x = rand(2, 5, 4, 6, seed=29)
    parts = ref.slice(x, caffe_axis, points)
    bounds = [0] + points + [x.shape[caffe_axis]]
    for i, part in enumerate(parts):
        size = bounds[i + 1] - bounds[i] if i < len(parts) - 1 else -1
        y = run(L.SliceAxis(nhwc_axis, bounds[i], size), nhwc(x))
        np.testing.assert_array_equal(nchw(y), part)


def test_crop_as_static_slice():
    x = rand(2, 5, 9, 8, seed=30)
    # Caffe crop from axis 2 (spatial) with offsets (2, 1), and from axis 1 with (1, 3, 0)
    out = ref.crop(x, (2, 5, 6, 4), axis=2, offset=[2, 1])
    y = run(L.StaticSlice(begin=(2, 1, 0), size=(6, 4, -1)), nhwc(x))
    np.testing.assert_array_equal(nchw(y), out)
    out = ref.crop(x, (2, 3, 5, 8), axis=1, offset=[1, 3, 0])
    y = run(L.StaticSlice(begin=(3, 0, 1), size=(5, 8, 3)), nhwc(x))
    np.testing.assert_array_equal(nchw(y), out)
    with pytest.raises(ValueError, match="does not fit"):
        L.StaticSlice((0, 0, 0), (10, 1, 1)).compute_output_shape((None, 9, 8, 5))


@pytest.mark.parametrize("caffe_axis,nhwc_axis", [(1, 3), (2, 1), (3, -2)])
def test_tile(caffe_axis, nhwc_axis):
    x = rand(2, 3, 4, 2, seed=31)
    y = run(L.CaffeTile(nhwc_axis, 3), nhwc(x))
    np.testing.assert_array_equal(nchw(y), ref.tile(x, caffe_axis, 3))


@pytest.mark.parametrize("use_bias", [True, False])
def test_embed(use_bias):
    idx = np.array([[0.0, 2.7, 4.0], [1.2, 4.99, 3.0]], np.float32)  # truncated like int()
    w = rand(5, 6, seed=32)
    b = rand(6, seed=33) if use_bias else None
    layer = L.Embed(5, 6, use_bias)
    y = run(layer, idx, weights=[w] + ([b] if use_bias else []))
    np.testing.assert_allclose(y, ref.embed(idx, w, b), **TOL)


# --------------------------------------------------------------------------
# serialisation
# --------------------------------------------------------------------------


def test_save_load_roundtrip(tmp_path):
    x_in = keras.Input((6, 7, 4), name="x")
    i_in = keras.Input((3,), name="idx")
    a_in = keras.Input((1, 1, 4), name="a")
    x = x_in
    outs = [
        L.CaffePooling2D("max", 3, 2, 1, name="pmax")(x),
        L.CaffePooling2D("ave", 3, 2, 1, name="pave")(x),
        L.LRN(3, 0.5, 0.75, 2.0, "across_channels", name="lrn_a")(x),
        L.LRN(3, 0.5, 0.75, 2.0, "within_channel", name="lrn_w")(x),
        L.MVN(True, False, 1e-3, name="mvn")(x),
        L.ChannelAffine((4,), name="affine")(x),
        L.ChannelAffine((6, 7, 1), scale=False, name="bias_hw")(x),
        L.WeightedSum([0.5, -1.0], name="wsum")([x, x]),
        L.ShuffleChannel(2, name="shuffle")(x),
        L.Axpy(name="axpy")([a_in, x, x]),
        L.Power(2.0, 0.5, 1.0, name="power")(x),
        L.CaffeExp(2.0, 0.5, 0.1, name="exp")(x),
        L.CaffeLog(10.0, 1.0, 20.0, name="log")(x),
        L.BNLL(name="bnll")(x),
        L.Threshold(0.2, name="threshold")(x),
        L.AbsVal(name="abs")(x),
        L.Clip(-0.5, 0.5, name="clip")(x),
        L.Swish(1.5, name="swish")(x),
        L.CaffeDeconv2D(6, 3, 2, 1, 2, groups=2, name="deconv")(x),
        L.ArgMax(2, True, -1, name="argmax")(x),
        L.Reduction("sumsq", (1, 2), 0.5, name="reduction")(x),
        L.SliceAxis(-1, 1, 2, name="slice")(x),
        L.StaticSlice((1, 2, 0), (4, 4, -1), name="crop")(x),
        L.CaffeTile(1, 2, name="tile")(x),
        L.Embed(5, 3, name="embed")(i_in),
    ]
    model = keras.Model([x_in, i_in, a_in], outs)
    rng = np.random.default_rng(34)
    model.set_weights([rng.standard_normal(w.shape).astype(np.float32) for w in model.weights])
    feeds = [
        rand(2, 6, 7, 4, seed=35),
        np.array([[0, 1, 4], [3, 2, 1]], np.float32),
        rand(2, 1, 1, 4, seed=36),
    ]
    before = model.predict(feeds, verbose=0)
    path = tmp_path / "layers.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    after = loaded.predict(feeds, verbose=0)
    for layer, b, a in zip(outs, before, after):
        np.testing.assert_array_equal(a, b, err_msg=str(layer))
    for layer in model.layers:
        assert type(loaded.get_layer(layer.name)) is type(layer)
        if layer.name not in ("x", "idx", "a"):
            assert loaded.get_layer(layer.name).get_config() == layer.get_config()

    # Files saved before runtime/layers.py became a package record the module
    # "cocotune.runtime.layers" for every class; Keras resolves cocotune>Name by its registered
    # name, so such a file loads to the same classes and outputs.
    pre_split = tmp_path / "pre_split.keras"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(pre_split, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "config.json":
                data, count = re.subn(
                    rb'"module": "cocotune\.runtime\.layers\.[a-z_]+"',
                    b'"module": "cocotune.runtime.layers"',
                    data,
                )
                assert count == len(outs)  # one entry per cocotune layer
            dst.writestr(item, data)
    old = keras.saving.load_model(pre_split)
    for layer, b, a in zip(outs, before, old.predict(feeds, verbose=0)):
        np.testing.assert_array_equal(a, b, err_msg=str(layer))
    assert [type(layer) for layer in old.layers] == [type(layer) for layer in model.layers]


@pytest.mark.parametrize("name", [n for n in L.__all__ if n[0].isupper()])
def test_registered(name):
    cls = getattr(L, name)
    assert keras.saving.get_registered_name(cls) == f"cocotune>{name}"
    assert cls.__doc__ and "Input shape:" in cls.__doc__ and "Output shape:" in cls.__doc__


def test_package_exports_every_layer():
    """Generated code reaches layers as ``caffe.Name``: every public class of every family
    module is re-exported by the package (and so registered by ``import cocotune``)."""
    defined = set()
    for info in pkgutil.iter_modules(L.__path__):
        module = importlib.import_module(f"{L.__name__}.{info.name}")
        defined |= {
            name
            for name, obj in vars(module).items()
            if inspect.isclass(obj) and obj.__module__ == module.__name__ and name[0] != "_"
        }
    assert defined == {n for n in L.__all__ if n[0].isupper()}
    assert all(getattr(L, n).__module__.startswith(f"{L.__name__}.") for n in L.__all__)
