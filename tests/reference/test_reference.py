"""Tests of the numpy Caffe reference itself, against hand-computed values and
independent formulas (scipy).  These never touch cocotune code except the
optional caffe_pb2 used by the run_net tests."""

import numpy as np
import pytest
from scipy.signal import correlate2d

from . import caffe_layers as R

RNG = np.random.default_rng(1234)


def grid(h, w, start=1.0):
    return (np.arange(h * w, dtype=np.float64) + start).reshape(1, 1, h, w)


# --------------------------------------------------------------------------
# pooling
# --------------------------------------------------------------------------


def test_pool_max_ceil_3x3_k2_s2():
    x = grid(3, 3)  # [[1,2,3],[4,5,6],[7,8,9]]
    y = R.pooling(x, "MAX", kernel=2, stride=2)
    # ceil((3-2)/2)+1 = 2: the second window hangs over the edge and is clipped
    np.testing.assert_array_equal(y[0, 0], [[5, 6], [8, 9]])


def test_pool_ave_ceil_3x3_k2_s2_divisor_clipped_without_pad():
    y = R.pooling(grid(3, 3), "AVE", kernel=2, stride=2)
    # no padding -> divisor is the window clipped to the image
    np.testing.assert_allclose(y[0, 0], [[12 / 4, 9 / 2], [15 / 2, 9 / 1]])


def test_pool_floor_mode_and_fork_ceil_mode_flag():
    x = grid(3, 3)
    for kw in (dict(round_mode="FLOOR"), dict(round_mode=1), dict(ceil_mode=False)):
        np.testing.assert_array_equal(R.pooling(x, "MAX", kernel=2, stride=2, **kw), [[[[5]]]])
        np.testing.assert_array_equal(R.pooling(x, "AVE", kernel=2, stride=2, **kw), [[[[3]]]])
    # fork flag overrides round_mode
    assert R.pooling(x, "MAX", kernel=2, stride=2, round_mode="FLOOR", ceil_mode=True).shape == (
        1,
        1,
        2,
        2,
    )


def test_pool_ave_divisor_3x3_pad1_is_full_kernel():
    # k=3, s=2, p=1 on 3x3: every window's padded extent is 3x3 -> divisor 9
    y = R.pooling(grid(3, 3), "AVE", kernel=3, stride=2, pad=1)
    np.testing.assert_allclose(y[0, 0], np.array([[12, 16], [24, 28]]) / 9.0)


def test_pool_ave_divisor_near_padded_border_4x4():
    # H=W=4, k=3, s=2, p=1: out = ceil(3/2)+1 = 3.  Last window starts at 3,
    # its end is clipped to H+p=5 (not 6) -> extent 2 per axis -> divisor 4
    # although only x[3,3] is inside the image.
    x = grid(4, 4)
    y = R.pooling(x, "AVE", kernel=3, stride=2, pad=1)
    assert y.shape == (1, 1, 3, 3)
    assert y[0, 0, 2, 2] == pytest.approx(16 / 4)  # not 16/9, not 16/1
    assert y[0, 0, 0, 0] == pytest.approx((1 + 2 + 5 + 6) / 9)
    assert y[0, 0, 2, 0] == pytest.approx((13 + 14) / 6)  # 2 x 3 padded extent
    assert y[0, 0, 0, 2] == pytest.approx((4 + 8) / 6)  # 3 x 2 padded extent
    m = R.pooling(x, "MAX", kernel=3, stride=2, pad=1)
    np.testing.assert_array_equal(m[0, 0], [[6, 8, 8], [14, 16, 16], [14, 16, 16]])


def test_pool_last_window_must_start_inside_image():
    # H=3, k=2, s=2, p=1: ceil((3+2-2)/2)+1 = 3 but (3-1)*2 = 4 >= H+p = 4 -> 2
    x = grid(3, 3)
    y = R.pooling(x, "MAX", kernel=2, stride=2, pad=1)
    assert y.shape == (1, 1, 2, 2)
    np.testing.assert_array_equal(y[0, 0], [[1, 3], [7, 9]])
    a = R.pooling(x, "AVE", kernel=2, stride=2, pad=1)
    np.testing.assert_allclose(a[0, 0], [[1 / 4, (2 + 3) / 4], [(4 + 7) / 4, (5 + 6 + 8 + 9) / 4]])


def test_pool_stride_larger_than_kernel_empty_window():
    # No padding -> no decrement: H=5, k=1, s=3 gives ceil(4/3)+1 = 3 outputs,
    # the last window starts at 6 (outside).  Caffe leaves -FLT_MAX / 0 there.
    x = grid(5, 5)
    m = R.pooling(x, "MAX", kernel=1, stride=3)
    assert m.shape == (1, 1, 3, 3)
    assert m[0, 0, 0, 0] == 1 and m[0, 0, 1, 1] == 19
    assert m[0, 0, 2, 2] == -R.FLT_MAX
    a = R.pooling(x, "AVE", kernel=1, stride=3)
    assert a[0, 0, 2, 2] == 0


def test_pool_global():
    x = RNG.standard_normal((2, 3, 4, 5))
    np.testing.assert_allclose(
        R.pooling(x, "AVE", global_pooling=True)[..., 0, 0], x.mean(axis=(2, 3))
    )
    np.testing.assert_allclose(
        R.pooling(x, "MAX", global_pooling=True)[..., 0, 0], x.max(axis=(2, 3))
    )


def test_pool_max_ignores_padding_for_negative_inputs():
    x = -grid(2, 2)
    y = R.pooling(x, "MAX", kernel=2, stride=1, pad=1)
    assert y.shape == (1, 1, 3, 3)
    assert y.max() < 0  # the zero padding never wins
    assert y[0, 0, 0, 0] == -1 and y[0, 0, 2, 2] == -4


def test_pool_stochastic_test_phase():
    x = grid(2, 2)
    y = R.pooling(x, "STOCHASTIC", kernel=2, stride=2)
    assert y[0, 0, 0, 0] == pytest.approx((1 + 4 + 9 + 16) / 10)


def test_pool_dtype_preserved():
    assert R.pooling(grid(3, 3).astype(np.float32), "AVE", kernel=2).dtype == np.float32


# --------------------------------------------------------------------------
# LRN
# --------------------------------------------------------------------------


def test_lrn_across_channels_by_hand():
    x = np.array([1.0, 2.0, 3.0]).reshape(1, 3, 1, 1)
    # n=3, alpha=3 -> alpha/n = 1, beta=1, k=1
    y = R.lrn(x, local_size=3, alpha=3.0, beta=1.0, k=1.0)
    np.testing.assert_allclose(
        y.reshape(-1), [1 / (1 + 1 + 4), 2 / (1 + 1 + 4 + 9), 3 / (1 + 4 + 9)]
    )


def test_lrn_across_channels_general_formula():
    x = RNG.standard_normal((2, 7, 3, 2))
    n, a, b, k = 5, 1e-2, 0.75, 2.0
    y = R.lrn(x, n, a, b, k)
    ref = np.empty_like(x)
    for c in range(7):
        lo, hi = max(0, c - 2), min(6, c + 2)
        s = k + a / n * (x[:, lo : hi + 1] ** 2).sum(axis=1)
        ref[:, c] = x[:, c] * s**-b
    np.testing.assert_allclose(y, ref, rtol=1e-12)


def test_lrn_within_channel_by_hand_k_unused():
    x = np.ones((1, 1, 3, 3))
    # n=3, pad 1, AVE divisor always 9; alpha=9, beta=1:
    # centre: 9/9 -> 1/(1+9); edge: 6/9 -> 1/(1+6); corner: 4/9 -> 1/(1+4)
    expect = np.array([[1 / 5, 1 / 7, 1 / 5], [1 / 7, 1 / 10, 1 / 7], [1 / 5, 1 / 7, 1 / 5]])
    for k in (1.0, 5.0):
        y = R.lrn(x, local_size=3, alpha=9.0, beta=1.0, k=k, norm_region="WITHIN_CHANNEL")
        np.testing.assert_allclose(y[0, 0], expect)
    y = R.lrn(2 * x, 3, 9.0, 0.5, norm_region=1)
    assert y[0, 0, 1, 1] == pytest.approx(2 * (1 + 9 * 4) ** -0.5)


# --------------------------------------------------------------------------
# convolution family
# --------------------------------------------------------------------------


def conv_scipy(x, w, b, stride, pad, dilation, group):
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    og = o // group
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    kdh, kdw = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    out = []
    for ni in range(n):
        per_o = []
        for oi in range(o):
            g = oi // og
            acc = 0
            for ci in range(cg):
                kern = np.zeros((kdh, kdw))
                kern[:: dilation[0], :: dilation[1]] = w[oi, ci]
                acc = acc + correlate2d(xp[ni, g * cg + ci], kern, mode="valid")
            per_o.append(acc[:: stride[0], :: stride[1]] + (b[oi] if b is not None else 0))
        out.append(per_o)
    return np.array(out)


@pytest.mark.parametrize(
    "group,stride,pad,dilation",
    [
        (1, (1, 1), (0, 0), (1, 1)),
        (1, (2, 1), (1, 2), (1, 1)),
        (2, (1, 1), (1, 1), (2, 1)),
        (3, (2, 2), (2, 1), (2, 3)),
        (6, (1, 2), (1, 1), (1, 1)),  # depthwise
    ],
)
def test_convolution_matches_scipy(group, stride, pad, dilation):
    x = RNG.standard_normal((2, 6, 9, 8))
    w = RNG.standard_normal((12, 6 // group, 3, 2))
    b = RNG.standard_normal(12)
    y = R.convolution(x, w, b, stride=stride, pad=pad, dilation=dilation, group=group)
    ref = conv_scipy(x, w, b, stride, pad, dilation, group)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-10)


def test_convolution_output_size_floor():
    x = np.zeros((1, 1, 6, 6))
    w = np.zeros((1, 1, 3, 3))
    assert R.convolution(x, w, stride=2).shape == (1, 1, 2, 2)  # (6-3)//2+1
    assert R.convolution(x, w, stride=2, pad=1).shape == (1, 1, 3, 3)  # (8-3)//2+1


def test_convolution_depthwise_equals_grouped():
    x = RNG.standard_normal((1, 4, 5, 5))
    w = RNG.standard_normal((4, 1, 3, 3))
    np.testing.assert_allclose(
        R.convolution_depthwise(x, w, None, pad=1), R.convolution(x, w, None, pad=1, group=4)
    )


@pytest.mark.parametrize(
    "group,stride,pad,dilation,k",
    [
        (1, 1, 0, 1, 3),
        (1, 2, 1, 1, 4),
        (2, 2, 1, 2, 3),
        (4, 3, 0, 1, 3),
        (2, 1, 2, 2, 3),
    ],
)
def test_deconvolution_is_adjoint_of_convolution(group, stride, pad, dilation, k):
    c, o = 4, 8
    h = stride * 3 + dilation * (k - 1) + 1 - 2 * pad  # conv output exactly 4
    x = RNG.standard_normal((2, c, h, h))
    w = RNG.standard_normal((o, c // group, k, k))  # conv OIHW == deconv (C_in=o, C_out/g=c/g)
    y = RNG.standard_normal(R.convolution(x, w, None, stride, pad, dilation, group).shape)
    assert y.shape[2] == 4
    dy = R.deconvolution(y, w, None, stride, pad, dilation, group)
    assert dy.shape == x.shape  # (H-1)*s - 2p + d*(k-1)+1
    lhs = np.sum(R.convolution(x, w, None, stride, pad, dilation, group) * y)
    rhs = np.sum(x * dy)
    assert lhs == pytest.approx(rhs, rel=1e-10)


def test_deconvolution_by_hand_stride2():
    x = np.array([[1.0, 2.0]]).reshape(1, 1, 1, 2)
    w = np.array([[1.0, 10.0, 100.0]]).reshape(1, 1, 1, 3)
    y = R.deconvolution(x, w, np.array([0.5]), stride=2)
    # width (2-1)*2 + 3 = 5; scatter 1*[1,10,100] at 0 and 2*[1,10,100] at 2
    np.testing.assert_allclose(y[0, 0, 0], np.array([1, 10, 102, 20, 200]) + 0.5)
    yp = R.deconvolution(x, w, None, stride=2, pad=(0, 1))
    np.testing.assert_allclose(yp[0, 0, 0], [10, 102, 20])


def test_deconvolution_layout_channels():
    # w[c_in, c_out]: output channel j = sum_i w[i, j] * x_i for 1x1 kernels
    x = RNG.standard_normal((1, 2, 3, 3))
    w = RNG.standard_normal((2, 5, 1, 1))
    y = R.deconvolution(x, w)
    np.testing.assert_allclose(y[0], np.einsum("ij,ihw->jhw", w[:, :, 0, 0], x[0]))


# --------------------------------------------------------------------------
# normalisation / affine / elementwise
# --------------------------------------------------------------------------


def test_batch_norm_scale_factor():
    x = RNG.standard_normal((2, 3, 2, 2))
    mean, var = np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0])
    y = R.batch_norm(x, mean * 2, var * 2, [2.0], eps=1e-3)
    ref = (x - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-3)
    np.testing.assert_allclose(y, ref)
    # factor 0 -> Caffe uses 0 instead of 1/0: mean = var = 0
    np.testing.assert_allclose(R.batch_norm(x, mean, var, 0.0, eps=1e-5), x / np.sqrt(1e-5))


def test_batch_norm_batch_stats():
    x = RNG.standard_normal((4, 3, 2, 2))
    y = R.batch_norm(x, eps=0.0, use_global_stats=False)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, rtol=1e-10)


def test_scale_and_bias():
    x = RNG.standard_normal((2, 3, 4, 5))
    s, b = RNG.standard_normal(3), RNG.standard_normal(3)
    np.testing.assert_allclose(R.scale(x, s, b), x * s[:, None, None] + b[:, None, None])
    np.testing.assert_allclose(R.bias(x, b), x + b[:, None, None])
    s2 = RNG.standard_normal((4, 5))
    np.testing.assert_allclose(R.scale(x, s2, axis=2), x * s2)
    np.testing.assert_allclose(R.scale(x, s2.reshape(-1), axis=-2, num_axes=2), x * s2)
    # two-bottom form: second bottom (N, C) broadcast from axis 0
    s3 = RNG.standard_normal((2, 3))
    np.testing.assert_allclose(R.scale(x, s3, axis=0), x * s3[:, :, None, None])
    np.testing.assert_allclose(R.scale(x, 2.5), 2.5 * x)


def test_eltwise():
    a, b, c = (RNG.standard_normal((2, 3)) for _ in range(3))
    np.testing.assert_allclose(R.eltwise([a, b, c], "SUM"), a + b + c)
    np.testing.assert_allclose(R.eltwise([a, b], 1, coeffs=[1, -1]), a - b)
    np.testing.assert_allclose(R.eltwise([a, b, c], "PROD"), a * b * c)
    np.testing.assert_allclose(R.eltwise([a, b, c], 2), np.maximum(np.maximum(a, b), c))
    with pytest.raises(ValueError):
        R.eltwise([a, b], "PROD", coeffs=[1, 2])


def test_mvn():
    x = RNG.standard_normal((2, 3, 4, 4))
    y = R.mvn(x, eps=0.0)
    np.testing.assert_allclose(y.mean(axis=(2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.std(axis=(2, 3)), 1, rtol=1e-10)


# --------------------------------------------------------------------------
# dense, softmax, shapes
# --------------------------------------------------------------------------


def test_inner_product_flattens_nchw():
    x = RNG.standard_normal((2, 3, 2, 2))
    w = RNG.standard_normal((5, 12))
    b = RNG.standard_normal(5)
    np.testing.assert_allclose(R.inner_product(x, w, b), x.reshape(2, 12) @ w.T + b)
    np.testing.assert_allclose(
        R.inner_product(x, w.T, b, transpose=True), x.reshape(2, 12) @ w.T + b
    )
    w2 = RNG.standard_normal((7, 4))
    y = R.inner_product(x, w2, None, axis=2)
    assert y.shape == (2, 3, 7)
    np.testing.assert_allclose(y, x.reshape(2, 3, 4) @ w2.T)


def test_softmax_sums_to_one():
    x = RNG.standard_normal((2, 5, 3, 4)) * 50
    for ax in (1, -1, 0):
        y = R.softmax(x, axis=ax)
        np.testing.assert_allclose(y.sum(axis=ax), 1.0)
        assert (y >= 0).all()
    np.testing.assert_allclose(R.softmax(np.array([[0.0, np.log(3.0)]])), [[0.25, 0.75]])


def test_reshape_rules():
    x = np.arange(120).reshape(2, 3, 4, 5)
    assert R.reshape(x, [0, -1]).shape == (2, 60)
    assert R.reshape(x, [0, 0, -1]).shape == (2, 3, 20)
    assert R.reshape(x, [-1, 0], axis=1, num_axes=2).shape == (2, 3, 4, 5)
    assert R.reshape(x, [-1], axis=1, num_axes=2).shape == (2, 12, 5)
    assert R.reshape(x, [0, 6, -1]).shape == (2, 6, 10)
    # 0 copies the bottom axis at axis + i
    assert R.reshape(x, [0, 2, -1], axis=1, num_axes=2).shape == (2, 3, 2, 2, 5)
    # negative axis counts from ndim + 1: -1 appends after the last axis
    assert R.reshape(x, [1], axis=-1, num_axes=0).shape == (2, 3, 4, 5, 1)
    assert R.reshape(x, [1], axis=0, num_axes=0).shape == (1, 2, 3, 4, 5)
    np.testing.assert_array_equal(R.reshape(x, [0, -1]).reshape(-1), x.reshape(-1))
    with pytest.raises(ValueError):
        R.reshape(x, [7, -1])


def test_reshape_zero_copies_own_position():
    x = np.zeros((2, 3, 4))
    # shape [-1, 0] with axis 0: 0 copies bottom axis 1 (=3), inferred 8
    assert R.reshape(x, [-1, 0]).shape == (8, 3)


def test_flatten_concat_slice_crop_tile():
    x = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    assert R.flatten(x).shape == (2, 60)
    assert R.flatten(x, axis=1, end_axis=2).shape == (2, 12, 5)
    a, b = x[:, :1], x[:, 1:]
    np.testing.assert_array_equal(R.concat([a, b]), x)
    p = R.slice(x, axis=1, slice_points=[1])
    np.testing.assert_array_equal(p[0], a)
    np.testing.assert_array_equal(p[1], b)
    q = R.slice(x, axis=2, num_outputs=2)
    assert [t.shape for t in q] == [(2, 3, 2, 5)] * 2
    ref = np.zeros((1, 1, 2, 3))
    np.testing.assert_array_equal(R.crop(x, ref, axis=2, offset=[1, 2]), x[:, :, 1:3, 2:5])
    np.testing.assert_array_equal(R.crop(x, ref, axis=2, offset=[1]), x[:, :, 1:3, 1:4])
    np.testing.assert_array_equal(R.crop(x, np.zeros((1, 2, 2, 3)), axis=1), x[:, :2, :2, :3])
    t = R.tile(np.array([[1, 2], [3, 4]]), axis=1, tiles=2)
    np.testing.assert_array_equal(t, [[1, 2, 1, 2], [3, 4, 3, 4]])
    t0 = R.tile(np.array([[1, 2], [3, 4]]), axis=0, tiles=2)
    np.testing.assert_array_equal(t0, [[1, 2], [3, 4], [1, 2], [3, 4]])


def test_shuffle_channel():
    x = np.arange(6, dtype=float).reshape(1, 6, 1, 1)
    y = R.shuffle_channel(x, 2)
    # input channel i*(C/g)+j -> output channel j*g+i
    np.testing.assert_array_equal(y.reshape(-1), [0, 3, 1, 4, 2, 5])
    np.testing.assert_array_equal(R.shuffle_channel(x, 3).reshape(-1), [0, 2, 4, 1, 3, 5])


def test_axpy():
    a = RNG.standard_normal((2, 3, 1, 1))
    x, y = RNG.standard_normal((2, 3, 4, 4)), RNG.standard_normal((2, 3, 4, 4))
    np.testing.assert_allclose(R.axpy(a, x, y), a * x + y)


# --------------------------------------------------------------------------
# neurons
# --------------------------------------------------------------------------


def test_neurons():
    x = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    np.testing.assert_allclose(R.relu(x), [0, 0, 0, 0.5, 2])
    np.testing.assert_allclose(R.relu(x, 0.1), [-0.2, -0.05, 0, 0.5, 2])
    np.testing.assert_allclose(R.elu(x, 2.0), np.where(x > 0, x, 2 * (np.exp(x) - 1)))
    np.testing.assert_allclose(R.sigmoid(x), 1 / (1 + np.exp(-x)))
    np.testing.assert_allclose(R.tanh(x), np.tanh(x))
    np.testing.assert_allclose(R.absval(x), np.abs(x))
    np.testing.assert_allclose(R.bnll(x), np.log1p(np.exp(x)))
    assert np.isfinite(R.bnll(np.array([1000.0, -1000.0]))).all()
    np.testing.assert_array_equal(R.threshold(x, 0.5), [0, 0, 0, 0, 1])  # strict >
    np.testing.assert_allclose(R.clip(x, -1, 1), [-1, -0.5, 0, 0.5, 1])
    np.testing.assert_allclose(R.swish(x, 2.0), x / (1 + np.exp(-2 * x)))
    np.testing.assert_array_equal(R.dropout(x), x)


def test_power_exp_log():
    x = np.array([0.5, 1.0, 2.0])
    np.testing.assert_allclose(R.power(x, 2.0, 3.0, 1.0), (1 + 3 * x) ** 2)
    np.testing.assert_allclose(R.power(x, 0.0, 3.0, 1.0), [1, 1, 1])
    np.testing.assert_allclose(R.power(x, 2.0, 0.0, 3.0), [9, 9, 9])  # scale 0 -> shift^p
    np.testing.assert_allclose(R.exp(x), np.exp(x))
    np.testing.assert_allclose(R.exp(x, base=2.0, scale=3.0, shift=1.0), 2.0 ** (1 + 3 * x))
    np.testing.assert_allclose(R.log(x), np.log(x))
    np.testing.assert_allclose(R.log(x, base=10.0, scale=2.0, shift=1.0), np.log10(1 + 2 * x))


def test_prelu():
    x = np.array([-1.0, 2.0, -3.0, 4.0]).reshape(1, 2, 2, 1)
    y = R.prelu(x, np.array([0.5, 0.25]))
    np.testing.assert_allclose(y.reshape(-1), [-0.5, 2, -0.75, 4])
    y = R.prelu(x, np.array([0.1]), channel_shared=True)
    np.testing.assert_allclose(y.reshape(-1), [-0.1, 2, -0.3, 4])


def test_argmax_ties_and_shapes():
    x = np.array([[1.0, 3.0, 3.0, 2.0]])
    # (value, index) pairs sorted descending: ties -> larger index first
    np.testing.assert_array_equal(R.argmax(x).reshape(-1), [2])
    y = R.argmax(x, top_k=3, out_max_val=True)
    assert y.shape == (1, 2, 3)
    np.testing.assert_array_equal(y[0], [[2, 1, 3], [3, 3, 2]])
    x4 = RNG.standard_normal((2, 3, 4, 5))
    assert R.argmax(x4).shape == (2, 1, 1, 1)
    assert R.argmax(x4, top_k=2, out_max_val=True).shape == (2, 2, 2, 1)
    ya = R.argmax(x4, axis=1)
    assert ya.shape == (2, 1, 4, 5)
    np.testing.assert_array_equal(ya[:, 0], x4.argmax(axis=1))
    np.testing.assert_allclose(R.argmax(x4, axis=1, out_max_val=True)[:, 0], x4.max(axis=1))


def test_reduction():
    x = RNG.standard_normal((2, 3, 4))
    assert R.reduction(x).shape == ()
    assert R.reduction(x) == pytest.approx(x.sum())
    np.testing.assert_allclose(R.reduction(x, "MEAN", axis=1), x.reshape(2, -1).mean(axis=1))
    np.testing.assert_allclose(R.reduction(x, 2, axis=2, coeff=2.0), 2 * np.abs(x).sum(axis=2))
    np.testing.assert_allclose(R.reduction(x, "SUMSQ", axis=-1), (x**2).sum(axis=2))


def test_embed():
    w = RNG.standard_normal((5, 3))
    b = RNG.standard_normal(3)
    idx = np.array([[0.0, 4.0], [2.0, 2.0]])
    y = R.embed(idx, w, b)
    assert y.shape == (2, 2, 3)
    np.testing.assert_allclose(y[0, 1], w[4] + b)


# --------------------------------------------------------------------------
# run_net (needs the generated protobuf module)
# --------------------------------------------------------------------------


def _pb2():
    return pytest.importorskip("cocotune._proto.caffe_pb2")


def _net(text):
    from google.protobuf import text_format

    pb2 = _pb2()
    return text_format.Parse(text, pb2.NetParameter())


def test_run_net_small_cnn():
    net = _net("""
    name: "t"
    layer { name: "data" type: "Input" top: "data"
            input_param { shape { dim: 2 dim: 3 dim: 7 dim: 7 } } }
    layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
            convolution_param { num_output: 4 kernel_size: 3 pad: 1 stride: 2 group: 1 } }
    layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" }
    layer { name: "sc" type: "Scale" bottom: "conv" top: "conv" scale_param { bias_term: true } }
    layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
    layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
            pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
    layer { name: "lrn" type: "LRN" bottom: "pool" top: "lrn"
            lrn_param { local_size: 3 alpha: 0.1 beta: 0.75 } }
    layer { name: "fc" type: "InnerProduct" bottom: "lrn" top: "fc"
            inner_product_param { num_output: 5 } }
    layer { name: "drop" type: "Dropout" bottom: "fc" top: "fc" }
    layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
    layer { name: "train_only" type: "ReLU" bottom: "fc" top: "fc2"
            include { phase: TRAIN } }
    """)
    x = RNG.standard_normal((2, 3, 7, 7)).astype(np.float32)
    w = {
        "conv": [RNG.standard_normal((4, 3, 3, 3)), RNG.standard_normal(4)],
        "bn": [RNG.standard_normal(4), RNG.random(4) + 0.5, np.array([2.0])],
        "sc": [RNG.standard_normal(4), RNG.standard_normal(4)],
        "fc": [RNG.standard_normal((5, 4 * 3 * 3)), RNG.standard_normal(5)],
    }
    out = R.run_net(net, w, {"data": x}, dtype=np.float64)
    c = R.convolution(x.astype(np.float64), *w["conv"], stride=2, pad=1)
    c = R.batch_norm(c, *w["bn"])
    c = R.scale(c, *w["sc"])
    c = R.relu(c)
    p = R.pooling(c, "AVE", kernel=3, stride=2, pad=1)
    l_ = R.lrn(p, 3, 0.1, 0.75)
    f = R.inner_product(l_, *w["fc"])
    np.testing.assert_allclose(out["conv"], c)
    np.testing.assert_allclose(out["prob"], R.softmax(f))
    assert "loss" not in out and "fc2" not in out
    out32 = R.run_net(net, w, {"data": x})
    assert out32["prob"].dtype == np.float32
    np.testing.assert_allclose(out32["prob"], out["prob"], rtol=1e-4, atol=1e-6)


def test_run_net_multi_branch_layers():
    net = _net("""
    layer { name: "in" type: "Input" top: "x" top: "a" }
    layer { name: "sl" type: "Slice" bottom: "x" top: "x1" top: "x2" slice_param { axis: 1 } }
    layer { name: "cat" type: "Concat" bottom: "x2" bottom: "x1" top: "cat" }
    layer { name: "sum" type: "Eltwise" bottom: "cat" bottom: "x"  top: "sum"
            eltwise_param { operation: SUM coeff: 2 coeff: -1 } }
    layer { name: "sh" type: "ShuffleChannel" bottom: "sum" top: "sh"
            shuffle_channel_param { group: 2 } }
    layer { name: "ax" type: "Axpy" bottom: "a" bottom: "sh" bottom: "x" top: "ax" }
    layer { name: "dc" type: "Deconvolution" bottom: "ax" top: "dc"
            convolution_param { num_output: 2 kernel_size: 4 stride: 2 pad: 1 group: 2
                                bias_term: false } }
    layer { name: "cr" type: "Crop" bottom: "dc" bottom: "x" top: "cr"
            crop_param { axis: 2 offset: 1 } }
    layer { name: "rs" type: "Reshape" bottom: "cr" top: "rs"
            reshape_param { shape { dim: 0 dim: -1 } } }
    """)
    if "shuffle_channel_param" not in net.layer[0].DESCRIPTOR.fields_by_name:
        pytest.skip("caffe_pb2 has no ShuffleChannel fork field")
    x = RNG.standard_normal((1, 4, 3, 3))
    a = RNG.standard_normal((1, 4, 1, 1))
    wd = RNG.standard_normal((4, 1, 4, 4))
    out = R.run_net(net, {"dc": [wd]}, {"x": x, "a": a}, dtype=np.float64)
    x1, x2 = x[:, :2], x[:, 2:]
    s = 2 * np.concatenate([x2, x1], axis=1) - x
    sh = R.shuffle_channel(s, 2)
    ax = a * sh + x
    dc = R.deconvolution(ax, wd, None, stride=2, pad=1, group=2)
    np.testing.assert_allclose(out["dc"], dc)
    np.testing.assert_allclose(out["rs"], dc[:, :, 1:4, 1:4].reshape(1, -1))


def test_run_net_rounding_and_fork_fields():
    pb2 = _pb2()
    net = _net("""
    layer { name: "in" type: "Input" top: "x" }
    layer { name: "p" type: "Pooling" bottom: "x" top: "p"
            pooling_param { pool: MAX kernel_size: 2 stride: 2 round_mode: FLOOR } }
    layer { name: "q" type: "Pooling" bottom: "x" top: "q"
            pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
    """)
    out = R.run_net(net, {}, {"x": grid(3, 3)})
    assert out["p"].shape == (1, 1, 1, 1) and out["q"].shape == (1, 1, 2, 2)
    if "ceil_mode" in pb2.PoolingParameter.DESCRIPTOR.fields_by_name:
        net.layer[2].pooling_param.ceil_mode = False
        assert R.run_net(net, {}, {"x": grid(3, 3)})["q"].shape == (1, 1, 1, 1)


def test_run_net_embedded_legacy_blobs_and_rules():
    net = _net("""
    layer { name: "in" type: "Input" top: "x" }
    layer { name: "sc" type: "Scale" bottom: "x" top: "y" }
    layer { name: "pr" type: "PReLU" bottom: "y" top: "y" }
    layer { name: "ex" type: "ReLU" bottom: "y" top: "z" exclude { phase: TEST } }
    layer { name: "st" type: "ReLU" bottom: "y" top: "s" include { stage: "deploy" } }
    """)
    s = np.array([1.0, -2.0, 3.0])
    bp = net.layer[1].blobs.add()  # legacy 4-D BlobProto (1, 1, 1, C)
    bp.num, bp.channels, bp.height, bp.width = 1, 1, 1, 3
    bp.data.extend(s.tolist())
    bp = net.layer[2].blobs.add()
    bp.shape.dim.extend([3])
    bp.data.extend([0.1, 0.2, 0.3])
    x = RNG.standard_normal((2, 3, 2, 2))
    out = R.run_net(net, None, {"x": x}, dtype=np.float64)
    ref = R.prelu(x * s[:, None, None], np.array([0.1, 0.2, 0.3]))
    np.testing.assert_allclose(out["y"], ref, rtol=1e-6)
    assert "z" not in out and "s" not in out
    assert "s" in R.run_net(net, None, {"x": x}, stages=["deploy"])
