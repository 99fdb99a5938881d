"""Independent numpy reference of Caffe's TEST-phase layer semantics.

Every function here is written from the behaviour of upstream BVLC Caffe's C++
``Forward_cpu`` implementations (file names are given per function and in
``README.md``).  Data layout is Caffe's: NCHW blobs, weights in the shapes
Caffe stores them.  Computation is done in float64; results are returned in
the floating dtype of the main input (float32 in -> float32 out), or float64
when the input is not floating.

This module must never import cocotune code (the only exception is the
generated ``cocotune._proto.caffe_pb2`` which ``run_net`` receives as an
already-parsed NetParameter and never imports itself).

Clarity beats speed: loops are naive and obvious; only the innermost work is
vectorised with numpy.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

__all__ = [
    "convolution",
    "deconvolution",
    "convolution_depthwise",
    "pooling",
    "lrn",
    "batch_norm",
    "scale",
    "bias",
    "eltwise",
    "inner_product",
    "softmax",
    "concat",
    "slice",
    "crop",
    "reshape",
    "flatten",
    "relu",
    "prelu",
    "elu",
    "sigmoid",
    "tanh",
    "power",
    "absval",
    "bnll",
    "exp",
    "log",
    "threshold",
    "argmax",
    "reduction",
    "tile",
    "clip",
    "swish",
    "embed",
    "dropout",
    "mvn",
    "split",
    "shuffle_channel",
    "axpy",
    "run_net",
]

FLT_MAX = float(np.finfo(np.float32).max)
_sl = slice  # the builtin; this module defines its own ``slice`` layer below


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def _out_dtype(x):
    x = np.asarray(x)
    return x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype(np.float64)


def _f64(x):
    return np.asarray(x, dtype=np.float64)


def _ret(y, like):
    return np.asarray(y).astype(_out_dtype(like), copy=False)


def _tuple(v, n, name):
    """Broadcast an int or a sequence of length 1 / n to an n-tuple."""
    if np.isscalar(v):
        return (int(v),) * n
    v = tuple(int(a) for a in v)
    if len(v) == 1:
        return v * n
    if len(v) != n:
        raise ValueError(f"{name} must have 1 or {n} entries, got {v}")
    return v


def _canonical_axis(axis, ndim):
    """Caffe's Blob::CanonicalAxisIndex: negative axes count from the end."""
    axis = int(axis)
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} out of range for {ndim}-D blob")
    return axis + ndim if axis < 0 else axis


def _count(shape, start=0, end=None):
    return int(np.prod(shape[start:end], dtype=np.int64))


# --------------------------------------------------------------------------
# convolution family (base_conv_layer.cpp, conv_layer.cpp, deconv_layer.cpp)
# --------------------------------------------------------------------------


def convolution(x, w, b=None, stride=1, pad=0, dilation=1, group=1):
    """Caffe Convolution (conv_layer.cpp / base_conv_layer.cpp / im2col).

    x: (N, C, *spatial); w: (O, C/group, *kernel)  (OIHW); b: (O,) or None.
    out_dim = (in + 2*pad - (dilation*(k-1)+1)) // stride + 1  (zero padding).
    Output channel o of group g sees input channels of group g only.
    Works for any number of spatial axes (Caffe's N-D convolution).
    """
    xd, wd = _f64(x), _f64(w)
    n, c = xd.shape[:2]
    sp_in = xd.shape[2:]
    nsp = len(sp_in)
    o = wd.shape[0]
    ksz = wd.shape[2:]
    if len(ksz) != nsp:
        raise ValueError("weight spatial rank does not match input")
    s = _tuple(stride, nsp, "stride")
    p = _tuple(pad, nsp, "pad")
    d = _tuple(dilation, nsp, "dilation")
    group = int(group)
    if c % group or o % group:
        raise ValueError("channels and num_output must be divisible by group")
    cg, og = c // group, o // group
    if wd.shape[1] != cg:
        raise ValueError(
            f"weight shape {wd.shape} expects {wd.shape[1]} " f"input channels per group, got {cg}"
        )
    sp_out = tuple(
        (sp_in[i] + 2 * p[i] - (d[i] * (ksz[i] - 1) + 1)) // s[i] + 1 for i in range(nsp)
    )
    if min(sp_out) <= 0:
        raise ValueError(f"non-positive output size {sp_out}")
    xp = np.pad(xd, [(0, 0), (0, 0)] + [(p[i], p[i]) for i in range(nsp)])
    y = np.zeros((n, o) + sp_out)
    for tap in itertools.product(*[range(k) for k in ksz]):
        # input samples hit by this kernel tap for every output position
        sl = tuple(
            _sl(tap[i] * d[i], tap[i] * d[i] + s[i] * (sp_out[i] - 1) + 1, s[i]) for i in range(nsp)
        )
        patch = xp[(_sl(None), _sl(None)) + sl]  # (N, C, *sp_out)
        for g in range(group):
            wt = wd[(_sl(g * og, (g + 1) * og), _sl(None)) + tap]  # (og, cg)
            y[:, g * og : (g + 1) * og] += np.tensordot(
                wt, patch[:, g * cg : (g + 1) * cg], axes=([1], [1])
            ).swapaxes(0, 1)
    if b is not None:
        y += _f64(b).reshape((1, o) + (1,) * nsp)
    return _ret(y, x)


def deconvolution(x, w, b=None, stride=1, pad=0, dilation=1, group=1):
    """Caffe Deconvolution (deconv_layer.cpp): the adjoint of convolution.

    x: (N, C_in, *spatial); w: (C_in, C_out/group, *kernel) -- Caffe stores
    deconvolution weights with the *input* channels first (reverse_dimensions).
    out_dim = stride*(in-1) + dilation*(k-1)+1 - 2*pad.
    Forward = backward_cpu_gemm (W^T x per group) followed by col2im, i.e.
    scatter-add every input sample through every tap, then crop the padding.
    """
    xd, wd = _f64(x), _f64(w)
    n, c = xd.shape[:2]
    sp_in = xd.shape[2:]
    nsp = len(sp_in)
    ksz = wd.shape[2:]
    group = int(group)
    if wd.shape[0] != c:
        raise ValueError(f"deconv weight must be (C_in={c}, C_out/group, ...), got {wd.shape}")
    if c % group:
        raise ValueError("channels must be divisible by group")
    cg = c // group
    og = wd.shape[1]
    o = og * group
    s = _tuple(stride, nsp, "stride")
    p = _tuple(pad, nsp, "pad")
    d = _tuple(dilation, nsp, "dilation")
    full = tuple(s[i] * (sp_in[i] - 1) + d[i] * (ksz[i] - 1) + 1 for i in range(nsp))
    sp_out = tuple(full[i] - 2 * p[i] for i in range(nsp))
    if min(sp_out) <= 0:
        raise ValueError(f"non-positive output size {sp_out}")
    yfull = np.zeros((n, o) + full)
    for tap in itertools.product(*[range(k) for k in ksz]):
        sl = tuple(
            _sl(tap[i] * d[i], tap[i] * d[i] + s[i] * (sp_in[i] - 1) + 1, s[i]) for i in range(nsp)
        )
        for g in range(group):
            wt = wd[(_sl(g * cg, (g + 1) * cg), _sl(None)) + tap]  # (cg, og)
            contrib = np.tensordot(wt, xd[:, g * cg : (g + 1) * cg], axes=([0], [1])).swapaxes(
                0, 1
            )  # (N, og, *sp_in)
            yfull[(_sl(None), _sl(g * og, (g + 1) * og)) + sl] += contrib
    crop_sl = tuple(_sl(p[i], p[i] + sp_out[i]) for i in range(nsp))
    y = yfull[(_sl(None), _sl(None)) + crop_sl]
    if b is not None:
        y = y + _f64(b).reshape((1, o) + (1,) * nsp)
    return _ret(y, x)


def convolution_depthwise(x, w, b=None, stride=1, pad=0, dilation=1):
    """Fork layer ConvolutionDepthwise / DepthwiseConvolution: grouped
    convolution with group = number of input channels.  w: (O, 1, kh, kw)."""
    return convolution(
        x, w, b, stride=stride, pad=pad, dilation=dilation, group=np.asarray(x).shape[1]
    )


# --------------------------------------------------------------------------
# pooling (pooling_layer.cpp; STOCHASTIC test-phase from pooling_layer.cu)
# --------------------------------------------------------------------------


def _pool_out_size(size, k, s, p, ceil_mode):
    r = float(size + 2 * p - k) / s
    out = (math.ceil(r) if ceil_mode else math.floor(r)) + 1
    return out


def pooling(
    x,
    method="MAX",
    kernel=None,
    stride=1,
    pad=0,
    global_pooling=False,
    round_mode="CEIL",
    ceil_mode=None,
):
    """Caffe Pooling (pooling_layer.cpp), 4-D NCHW only, like Caffe.

    Output size: ceil((H + 2p - k) / s) + 1 (round_mode CEIL, the default) or
    floor(...) + 1 (round_mode FLOOR).  ``ceil_mode`` is the fork flag
    (``ceil_mode=False`` means floor); when given it overrides round_mode.
    If any padding is set: if (out-1)*s >= H + p then out -= 1 (the last
    window must start inside the image or the left/top padding).
    MAX: max over the window clipped to the image (padding never wins).
    AVE: divisor = window clipped to the *padded* image, i.e. computed from
         hend = min(hstart + k, H + p) before clipping to the image; the sum
         is over the window clipped to the image.
    STOCHASTIC (TEST phase, GPU only in Caffe): sum(x^2)/sum(x) over the
         window clipped to the image (0 if sum <= 0); no padding allowed.
    method may be "MAX"/"AVE"/"STOCHASTIC" or the enum 0/1/2.
    """
    if isinstance(method, (int, np.integer)):
        method = ("MAX", "AVE", "STOCHASTIC")[int(method)]
    method = method.upper()
    if isinstance(round_mode, (int, np.integer)):
        round_mode = ("CEIL", "FLOOR")[int(round_mode)]
    use_ceil = round_mode.upper() == "CEIL"
    if ceil_mode is not None:
        use_ceil = bool(ceil_mode)
    xd = _f64(x)
    if xd.ndim != 4:
        raise ValueError("Caffe pooling requires a 4-D (N, C, H, W) input")
    n, c, h, w = xd.shape
    if global_pooling:
        kh, kw = h, w
        sh = sw = 1
        ph = pw = 0
    else:
        kh, kw = _tuple(kernel, 2, "kernel")
        sh, sw = _tuple(stride, 2, "stride")
        ph, pw = _tuple(pad, 2, "pad")
    if ph or pw:
        if method not in ("MAX", "AVE"):
            raise ValueError("Padding implemented only for average and max pooling")
        if not (ph < kh and pw < kw):
            raise ValueError("pad must be smaller than kernel")
    oh = _pool_out_size(h, kh, sh, ph, use_ceil)
    ow = _pool_out_size(w, kw, sw, pw, use_ceil)
    if ph or pw:
        if (oh - 1) * sh >= h + ph:
            oh -= 1
        if (ow - 1) * sw >= w + pw:
            ow -= 1
    y = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            if method == "MAX":
                hs, ws = i * sh - ph, j * sw - pw
                he, we = min(hs + kh, h), min(ws + kw, w)
                hs, ws = max(hs, 0), max(ws, 0)
                if he > hs and we > ws:
                    win = xd[:, :, hs:he, ws:we].reshape(n, c, -1)
                    y[:, :, i, j] = np.maximum(win.max(axis=2), -FLT_MAX)
                else:  # empty window: Caffe leaves the -FLT_MAX initial value
                    y[:, :, i, j] = -FLT_MAX
            elif method == "AVE":
                hs, ws = i * sh - ph, j * sw - pw
                he, we = min(hs + kh, h + ph), min(ws + kw, w + pw)
                pool_size = (he - hs) * (we - ws)
                hs, ws = max(hs, 0), max(ws, 0)
                he, we = min(he, h), min(we, w)
                total = np.zeros((n, c))
                if he > hs and we > ws:
                    total = xd[:, :, hs:he, ws:we].sum(axis=(2, 3))
                y[:, :, i, j] = total / pool_size
            elif method == "STOCHASTIC":
                hs, ws = i * sh, j * sw
                he, we = min(hs + kh, h), min(ws + kw, w)
                win = xd[:, :, hs:he, ws:we]
                s1 = win.sum(axis=(2, 3))
                s2 = (win * win).sum(axis=(2, 3))
                with np.errstate(divide="ignore", invalid="ignore"):
                    y[:, :, i, j] = np.where(s1 > 0, s2 / np.where(s1 > 0, s1, 1), 0.0)
            else:
                raise ValueError(f"unknown pooling method {method}")
    return _ret(y, x)


# --------------------------------------------------------------------------
# LRN (lrn_layer.cpp)
# --------------------------------------------------------------------------


def lrn(x, local_size=5, alpha=1.0, beta=0.75, k=1.0, norm_region="ACROSS_CHANNELS"):
    """Caffe LRN (lrn_layer.cpp), engine CAFFE.

    ACROSS_CHANNELS: scale_c = k + alpha/n * sum_{c'=c-(n-1)/2}^{c+(n-1)/2} x_{c'}^2
        (channels outside [0, C) contribute 0); y = x * scale^-beta.
    WITHIN_CHANNEL: built from sub-layers: Power(x, power=2) -> Pooling(AVE,
        kernel n, pad (n-1)/2, stride 1) -> Power(power=-beta, scale=alpha,
        shift=1) -> Eltwise PROD with x:
        y = x * (1 + alpha * avepool(x^2))^-beta.   ``k`` is NOT used.
        With stride 1 and pad (n-1)/2 every AVE window's padded extent is the
        full n x n, so the divisor is always n^2 (zeros outside the image).
    norm_region may be a string or the enum (ACROSS_CHANNELS=0, WITHIN_CHANNEL=1).
    """
    if isinstance(norm_region, (int, np.integer)):
        norm_region = ("ACROSS_CHANNELS", "WITHIN_CHANNEL")[int(norm_region)]
    n_ = int(local_size)
    if n_ % 2 != 1:
        raise ValueError("LRN only supports odd values for local_size")
    pre_pad = (n_ - 1) // 2
    xd = _f64(x)
    if xd.ndim != 4:
        raise ValueError("LRN requires a 4-D input")
    if norm_region.upper() == "ACROSS_CHANNELS":
        c = xd.shape[1]
        sq = xd * xd
        scale_ = np.full_like(xd, float(k))
        for ch in range(c):
            lo, hi = max(ch - pre_pad, 0), min(ch + pre_pad, c - 1)
            scale_[:, ch] += alpha / n_ * sq[:, lo : hi + 1].sum(axis=1)
        y = xd * np.power(scale_, -float(beta))
    elif norm_region.upper() == "WITHIN_CHANNEL":
        sq = power(xd, power=2.0)
        pooled = pooling(sq, "AVE", kernel=n_, stride=1, pad=pre_pad)
        denom = power(pooled, power=-float(beta), scale=float(alpha), shift=1.0)
        y = xd * denom
    else:
        raise ValueError(f"unknown norm_region {norm_region}")
    return _ret(y, x)


# --------------------------------------------------------------------------
# normalisation / affine (batch_norm_layer.cpp, scale_layer.cpp, bias_layer.cpp)
# --------------------------------------------------------------------------


def batch_norm(x, mean=None, var=None, scale_factor=1.0, eps=1e-5, use_global_stats=True):
    """Caffe BatchNorm (batch_norm_layer.cpp); no affine part (that's Scale).

    Global stats (TEST default): f = 0 if blobs[2][0] == 0 else 1/blobs[2][0];
    mean = f * blobs[0], var = f * blobs[1]; y = (x - mean)/sqrt(var + eps),
    broadcast along axis 1.
    use_global_stats=False: mean/var (biased, E[(x-Ex)^2]) over all axes but 1.
    """
    xd = _f64(x)
    c = 1 if xd.ndim == 1 else xd.shape[1]
    bshape = (1, c) + (1,) * max(xd.ndim - 2, 0) if xd.ndim > 1 else (c,)
    if use_global_stats:
        sf = float(np.asarray(scale_factor, dtype=np.float64).reshape(-1)[0])
        f = 0.0 if sf == 0 else 1.0 / sf
        m = f * _f64(mean).reshape(-1)
        v = f * _f64(var).reshape(-1)
    else:
        axes = tuple(i for i in range(xd.ndim) if i != 1) if xd.ndim > 1 else (0,)
        m = xd.mean(axis=axes).reshape(-1)
        v = ((xd - m.reshape(bshape)) ** 2).mean(axis=axes).reshape(-1)
    y = (xd - m.reshape(bshape)) / np.sqrt(v.reshape(bshape) + float(eps))
    return _ret(y, x)


def _axis_broadcast(x_shape, p, axis, num_axes):
    """Shape p so that it broadcasts against x starting at ``axis``, covering
    p's own axes (Caffe's Reshape uses the parameter blob's shape).  If p is
    given flat but num_axes says otherwise, it is reshaped to
    x_shape[axis:axis+num_axes] when the sizes agree."""
    p = _f64(p)
    ndim = len(x_shape)
    if p.ndim == 0 or (num_axes == 0 and p.size == 1):
        return p.reshape(())
    axis = _canonical_axis(axis, ndim)
    if num_axes is not None:
        end = ndim if num_axes == -1 else axis + int(num_axes)
        want = tuple(x_shape[axis:end])
        if p.shape != want and p.size == _count(want):
            p = p.reshape(want)
    if tuple(x_shape[axis : axis + p.ndim]) != p.shape:
        raise ValueError(
            f"param shape {p.shape} does not match x shape " f"{tuple(x_shape)} from axis {axis}"
        )
    return p.reshape((1,) * axis + p.shape + (1,) * (ndim - axis - p.ndim))


def scale(x, s, b=None, axis=1, num_axes=1):
    """Caffe Scale (scale_layer.cpp): y = x * s (+ b), s covering
    x.shape[axis : axis + s.ndim] (scalar s: any axis).  For the two-bottom
    form pass the second bottom as ``s`` (num_axes is then s.ndim)."""
    xd = _f64(x)
    y = xd * _axis_broadcast(xd.shape, s, axis, num_axes)
    if b is not None:
        y = y + _axis_broadcast(xd.shape, b, axis, num_axes)
    return _ret(y, x)


def bias(x, b, axis=1, num_axes=1):
    """Caffe Bias (bias_layer.cpp): y = x + b, b covering
    x.shape[axis : axis + b.ndim]; two-bottom form: pass bottom[1] as b."""
    xd = _f64(x)
    return _ret(xd + _axis_broadcast(xd.shape, b, axis, num_axes), x)


def mvn(x, normalize_variance=True, across_channels=False, eps=1e-9):
    """Caffe MVN (mvn_layer.cpp): per (n, c) (or per n if across_channels)
    y = (x - mean) / (sqrt(E[(x-mean)^2]) + eps)  -- eps added to the std."""
    xd = _f64(x)
    num = xd.shape[0] if across_channels else xd.shape[0] * xd.shape[1]
    flat = xd.reshape(num, -1)
    y = flat - flat.mean(axis=1, keepdims=True)
    if normalize_variance:
        std = np.sqrt((y * y).mean(axis=1, keepdims=True))
        y = y / (std + eps)
    return _ret(y.reshape(xd.shape), x)


# --------------------------------------------------------------------------
# element-wise multi-input (eltwise_layer.cpp)
# --------------------------------------------------------------------------


def eltwise(xs, op="SUM", coeffs=None):
    """Caffe Eltwise: PROD (=0), SUM (=1, optional per-bottom coeffs), MAX (=2)."""
    if isinstance(op, (int, np.integer)):
        op = ("PROD", "SUM", "MAX")[int(op)]
    op = op.upper()
    arrs = [_f64(a) for a in xs]
    if any(a.shape != arrs[0].shape for a in arrs):
        raise ValueError("Eltwise bottoms must have equal shapes")
    if coeffs is not None and len(coeffs) and op != "SUM":
        raise ValueError("Eltwise layer only takes coefficients for summation")
    if op == "PROD":
        y = arrs[0].copy()
        for a in arrs[1:]:
            y = y * a
    elif op == "SUM":
        cs = [1.0] * len(arrs) if coeffs is None or not len(coeffs) else [float(v) for v in coeffs]
        if len(cs) != len(arrs):
            raise ValueError("Eltwise takes one coefficient per bottom blob")
        y = np.zeros_like(arrs[0])
        for cf, a in zip(cs, arrs):
            y = y + cf * a
    elif op == "MAX":
        y = arrs[0].copy()
        for a in arrs[1:]:
            y = np.maximum(y, a)
    else:
        raise ValueError(f"unknown eltwise op {op}")
    return _ret(y, xs[0])


def axpy(a, x, y):
    """SENet-fork Axpy: a (N, C[,1,1]) is a per-(n, c) scalar; out = a * x + y."""
    ad, xd, yd = _f64(a), _f64(x), _f64(y)
    n, c = xd.shape[:2]
    if ad.size != n * c:
        raise ValueError("axpy scale must have N*C elements")
    out = ad.reshape((n, c) + (1,) * (xd.ndim - 2)) * xd + yd
    return _ret(out, x)


# --------------------------------------------------------------------------
# dense (inner_product_layer.cpp, embed_layer.cpp)
# --------------------------------------------------------------------------


def inner_product(x, w, b=None, axis=1, transpose=False):
    """Caffe InnerProduct: flatten x from ``axis`` (row-major NCHW order) to
    (M, K); y = X W^T (+ b) with w (N_out, K), or X W with w (K, N_out) if
    transpose.  Output shape: x.shape[:axis] + (N_out,)."""
    xd, wd = _f64(x), _f64(w)
    axis = _canonical_axis(axis, xd.ndim)
    m, k = _count(xd.shape, 0, axis), _count(xd.shape, axis)
    x2 = xd.reshape(m, k)
    if transpose:
        wd = wd.reshape(k, -1)
        y = x2 @ wd
    else:
        wd = wd.reshape(-1, k)
        y = x2 @ wd.T
    if b is not None:
        y = y + _f64(b).reshape(1, -1)
    return _ret(y.reshape(xd.shape[:axis] + (y.shape[1],)), x)


def embed(idx, w, b=None):
    """Caffe Embed: out[..., :] = w[int(idx)] (+ b); w is (input_dim, num_output).
    Indices are truncated like static_cast<int>."""
    ia = np.asarray(idx)
    wd = _f64(w)
    ii = np.trunc(ia.astype(np.float64)).astype(np.int64)
    if ii.size and (ii.min() < 0 or ii.max() >= wd.shape[0]):
        raise ValueError("embed index out of range")
    y = wd[ii.reshape(-1)]
    if b is not None:
        y = y + _f64(b).reshape(1, -1)
    y = y.reshape(ia.shape + (wd.shape[1],))
    return y.astype(
        wd.dtype if not np.issubdtype(np.asarray(w).dtype, np.floating) else np.asarray(w).dtype
    )


# --------------------------------------------------------------------------
# softmax / shape manipulation
# --------------------------------------------------------------------------


def softmax(x, axis=1):
    """Caffe Softmax: exp(x - max) / sum along ``axis``."""
    xd = _f64(x)
    axis = _canonical_axis(axis, xd.ndim)
    e = np.exp(xd - xd.max(axis=axis, keepdims=True))
    return _ret(e / e.sum(axis=axis, keepdims=True), x)


def concat(xs, axis=1):
    """Caffe Concat along ``axis`` (legacy concat_dim is the same, non-negative)."""
    axis = _canonical_axis(axis, np.asarray(xs[0]).ndim)
    return np.concatenate([np.asarray(a) for a in xs], axis=axis)


def slice(x, axis=1, slice_points=None, num_outputs=None):
    """Caffe Slice: split along ``axis`` at ``slice_points`` or, if none are
    given, into ``num_outputs`` equal parts."""
    xa = np.asarray(x)
    axis = _canonical_axis(axis, xa.ndim)
    dim = xa.shape[axis]
    if slice_points is not None and len(slice_points):
        pts = [int(v) for v in slice_points]
        if any(b_ <= a_ for a_, b_ in zip([0] + pts, pts + [dim])):
            raise ValueError("slice points must be strictly increasing inside the axis")
        bounds = [0] + pts + [dim]
    else:
        if not num_outputs:
            raise ValueError("need slice_points or num_outputs")
        if dim % num_outputs:
            raise ValueError("axis not divisible by number of outputs")
        step = dim // num_outputs
        bounds = [i * step for i in range(num_outputs + 1)]
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        idx = [np.s_[:]] * xa.ndim
        idx[axis] = np.s_[lo:hi]
        out.append(xa[tuple(idx)].copy())
    return out


def crop(x, ref, axis=2, offset=()):
    """Caffe Crop: for every axis i >= ``axis`` take ref.shape[i] elements
    starting at offset (one offset for all, or one per cropped axis, default 0)."""
    xa = np.asarray(x)
    ref_shape = ref.shape if hasattr(ref, "shape") else tuple(ref)
    start = _canonical_axis(axis, xa.ndim)
    offset = [int(v) for v in (offset if offset is not None else ())]
    if len(offset) > 1 and len(offset) != xa.ndim - start:
        raise ValueError("number of offsets must equal number of cropped axes")
    idx = []
    for i in range(xa.ndim):
        if i < start:
            idx.append(np.s_[:])
            continue
        off = offset[0] if len(offset) == 1 else (offset[i - start] if offset else 0)
        size = ref_shape[i]
        if off + size > xa.shape[i]:
            raise ValueError("crop out of bounds")
        idx.append(np.s_[off : off + size])
    return xa[tuple(idx)].copy()


def reshape(x, shape, axis=0, num_axes=-1):
    """Caffe Reshape: replace axes [axis, axis+num_axes) of x by ``shape``,
    where 0 copies the corresponding bottom dim (bottom axis axis+i) and -1 is
    inferred.  Negative ``axis`` counts as ndim + axis + 1 (so -1 = after the
    last axis), unlike most layers."""
    xa = np.asarray(x)
    ndim = xa.ndim
    start = axis if axis >= 0 else ndim + axis + 1
    end = ndim if num_axes == -1 else start + num_axes
    if not (0 <= start <= end <= ndim):
        raise ValueError("reshape axis/num_axes out of range")
    shape = [int(v) for v in shape]
    if shape.count(-1) > 1:
        raise ValueError("at most one -1 in reshape shape")
    top = list(xa.shape[:start]) + list(shape) + list(xa.shape[end:])
    for i, v in enumerate(shape):
        if v == 0:
            top[start + i] = xa.shape[start + i]
    if -1 in shape:
        i = shape.index(-1)
        known = _count(xa.shape, 0, start) * _count(xa.shape, end)
        for j in range(len(shape)):
            if j != i:
                known *= top[start + j]
        if xa.size % known:
            raise ValueError("cannot infer reshape dim")
        top[start + i] = xa.size // known
    if _count(top) != xa.size:
        raise ValueError(f"reshape count mismatch {xa.shape} -> {top}")
    return xa.reshape(top)


def flatten(x, axis=1, end_axis=-1):
    """Caffe Flatten: merge axes [axis, end_axis] (both inclusive, canonical)."""
    xa = np.asarray(x)
    a = _canonical_axis(axis, xa.ndim)
    e = _canonical_axis(end_axis, xa.ndim)
    return xa.reshape(xa.shape[:a] + (_count(xa.shape, a, e + 1),) + xa.shape[e + 1 :])


def tile(x, axis=1, tiles=1):
    """Caffe Tile: the block x[..., axis:] is repeated ``tiles`` times along
    ``axis`` (= concatenating ``tiles`` copies along axis)."""
    xa = np.asarray(x)
    axis = _canonical_axis(axis, xa.ndim)
    if int(tiles) <= 0:
        raise ValueError("Number of tiles must be positive")
    return np.concatenate([xa] * int(tiles), axis=axis)


def split(x, n=2):
    """Caffe Split: n identical copies."""
    return [np.array(x, copy=True) for _ in range(n)]


def shuffle_channel(x, group):
    """ShuffleNet-fork ShuffleChannel: view channels as a (group, C/group)
    matrix and transpose it: input channel i*(C/g)+j -> output channel j*g+i,
    i.e. reshape (N, g, C/g, ...) -> swap axes 1,2 -> (N, C, ...)."""
    xa = np.asarray(x)
    n, c = xa.shape[:2]
    g = int(group)
    if c % g:
        raise ValueError("Wrong group size")
    return xa.reshape((n, g, c // g) + xa.shape[2:]).swapaxes(1, 2).reshape(xa.shape).copy()


# --------------------------------------------------------------------------
# neuron layers
# --------------------------------------------------------------------------


def relu(x, negative_slope=0.0):
    """Caffe ReLU: max(x, 0) + negative_slope * min(x, 0)."""
    xd = _f64(x)
    return _ret(np.maximum(xd, 0) + float(negative_slope) * np.minimum(xd, 0), x)


def prelu(x, slope, channel_shared=False):
    """Caffe PReLU: max(x,0) + a_c * min(x,0); a_c per channel (axis 1) or a
    single shared slope."""
    xd = _f64(x)
    sd = _f64(slope).reshape(-1)
    if channel_shared:
        a = sd[0]
    else:
        if sd.size != xd.shape[1]:
            raise ValueError("PReLU slope must have C entries")
        a = sd.reshape((1, -1) + (1,) * (xd.ndim - 2))
    return _ret(np.maximum(xd, 0) + a * np.minimum(xd, 0), x)


def elu(x, alpha=1.0):
    """Caffe ELU: max(x,0) + alpha * (exp(min(x,0)) - 1)."""
    xd = _f64(x)
    return _ret(np.maximum(xd, 0) + float(alpha) * (np.exp(np.minimum(xd, 0)) - 1), x)


def sigmoid(x):
    """Caffe Sigmoid: 0.5 * tanh(0.5 x) + 0.5."""
    return _ret(0.5 * np.tanh(0.5 * _f64(x)) + 0.5, x)


def tanh(x):
    """Caffe TanH."""
    return _ret(np.tanh(_f64(x)), x)


def power(x, power=1.0, scale=1.0, shift=0.0):
    """Caffe Power: (shift + scale*x)^power.  Special case (power_layer.cpp):
    if power*scale == 0 the output is the constant 1 (power == 0) or
    shift^power."""
    xd = _f64(x)
    p, s, t = float(power), float(scale), float(shift)
    if p * s == 0:
        val = 1.0 if p == 0 else t**p
        return _ret(np.full_like(xd, val), x)
    with np.errstate(invalid="ignore", divide="ignore"):
        y = np.power(t + s * xd, p)
    return _ret(y, x)


def absval(x):
    """Caffe AbsVal."""
    return _ret(np.abs(_f64(x)), x)


def bnll(x):
    """Caffe BNLL: log(1 + exp(x)), computed as x + log(1+exp(-x)) for x > 0."""
    xd = _f64(x)
    y = np.where(xd > 0, xd + np.log1p(np.exp(-np.abs(xd))), np.log1p(np.exp(np.minimum(xd, 0))))
    return _ret(y, x)


def exp(x, base=-1.0, scale=1.0, shift=0.0):
    """Caffe Exp: base^(shift + scale*x); base -1 means e."""
    xd = _f64(x)
    base = float(base)
    log_base = 1.0 if base == -1 else math.log(base)
    inner = log_base * float(scale)
    outer = 1.0 if shift == 0 else (math.exp(shift) if base == -1 else base**shift)
    return _ret(np.exp(inner * xd) * outer, x)


def log(x, base=-1.0, scale=1.0, shift=0.0):
    """Caffe Log: log_base(shift + scale*x); base -1 means e."""
    xd = _f64(x)
    base = float(base)
    log_base = 1.0 if base == -1 else math.log(base)
    with np.errstate(invalid="ignore", divide="ignore"):
        y = np.log(float(shift) + float(scale) * xd) / log_base
    return _ret(y, x)


def threshold(x, threshold=0.0):
    """Caffe Threshold: 1 where x > threshold else 0 (strict)."""
    return _ret((_f64(x) > float(threshold)).astype(np.float64), x)


def clip(x, min, max):
    """Caffe Clip: max(min, min(x, max))."""
    return _ret(np.maximum(float(min), np.minimum(_f64(x), float(max))), x)


def swish(x, beta=1.0):
    """Caffe Swish: x * sigmoid(beta * x)."""
    xd = _f64(x)
    return _ret(xd * (0.5 * np.tanh(0.5 * float(beta) * xd) + 0.5), x)


def dropout(x, dropout_ratio=0.5):
    """Caffe Dropout at TEST: identity (Caffe scales at train time)."""
    return np.array(x, copy=True)


# --------------------------------------------------------------------------
# argmax / reduction
# --------------------------------------------------------------------------


def argmax(x, top_k=1, out_max_val=False, axis=None):
    """Caffe ArgMax (argmax_layer.cpp).

    Ranking is std::partial_sort of (value, index) pairs with greater<>, so
    ties go to the LARGER index first.
    axis None: per sample over count(1) values; output (N, 1 or 2, top_k)
      (at least 3 axes); with out_max_val row 0 = indices, row 1 = values.
    axis given: output = x.shape with shape[axis] = top_k; values if
      out_max_val else indices.
    """
    xd = _f64(x)
    k = int(top_k)
    if axis is None:
        n = xd.shape[0]
        flat = xd.reshape(n, -1)
        y = np.zeros((n, 2 if out_max_val else 1, k))
        for i in range(n):
            order = sorted(range(flat.shape[1]), key=lambda j: (flat[i, j], j), reverse=True)[:k]
            if out_max_val:
                y[i, 0] = order
                y[i, 1] = flat[i, order]
            else:
                y[i, 0] = order
        shape = [n, y.shape[1], k]
        while len(shape) < max(xd.ndim, 3):
            shape.append(1)
        # Caffe: shape = (N, 1|2, top_k, 1, ...) for >3-D inputs
        return _ret(y.reshape(shape), x)
    axis = _canonical_axis(axis, xd.ndim)
    moved = np.moveaxis(xd, axis, -1)
    flat = moved.reshape(-1, moved.shape[-1])
    res = np.zeros((flat.shape[0], k))
    for r in range(flat.shape[0]):
        order = sorted(range(flat.shape[1]), key=lambda j: (flat[r, j], j), reverse=True)[:k]
        res[r] = flat[r, order] if out_max_val else order
    res = res.reshape(moved.shape[:-1] + (k,))
    return _ret(np.moveaxis(res, -1, axis), x)


_REDUCTION_OPS = {1: "SUM", 2: "ASUM", 3: "SUMSQ", 4: "MEAN"}


def reduction(x, op="SUM", axis=0, coeff=1.0):
    """Caffe Reduction: reduce all axes from ``axis`` (default 0!) to the end;
    ops SUM(1), ASUM(2), SUMSQ(3), MEAN(4); result times coeff.
    Output shape x.shape[:axis] (a 0-D array for axis 0)."""
    if isinstance(op, (int, np.integer)):
        op = _REDUCTION_OPS[int(op)]
    op = op.upper()
    xd = _f64(x)
    axis = _canonical_axis(axis, xd.ndim)
    flat = xd.reshape(xd.shape[:axis] + (-1,))
    if op == "SUM":
        y = flat.sum(axis=-1)
    elif op == "MEAN":
        y = flat.sum(axis=-1) / flat.shape[-1]
    elif op == "ASUM":
        y = np.abs(flat).sum(axis=-1)
    elif op == "SUMSQ":
        y = (flat * flat).sum(axis=-1)
    else:
        raise ValueError(f"unknown reduction op {op}")
    return _ret(y * float(coeff), x)


# --------------------------------------------------------------------------
# net executor
# --------------------------------------------------------------------------

_TEST = 1  # caffe.Phase.TEST

_DATA_TYPES = {
    "Input",
    "Data",
    "ImageData",
    "HDF5Data",
    "MemoryData",
    "DummyData",
    "WindowData",
    "AnnotatedData",
    "VideoData",
}
_SKIP_TYPES = {
    "SoftmaxWithLoss",
    "Accuracy",
    "EuclideanLoss",
    "SigmoidCrossEntropyLoss",
    "HingeLoss",
    "InfogainLoss",
    "MultinomialLogisticLoss",
    "ContrastiveLoss",
    "Silence",
    "HDF5Output",
}


def _has(msg, field):
    """HasField that tolerates fields absent from this proto build."""
    if field not in msg.DESCRIPTOR.fields_by_name:
        return False
    return msg.HasField(field)


def _field(msg, field, default=None):
    if field not in msg.DESCRIPTOR.fields_by_name:
        return default
    return getattr(msg, field)


def _meets_rule(rule, phase, level, stages):
    if _has(rule, "phase") and rule.phase != phase:
        return False
    if _has(rule, "min_level") and level < rule.min_level:
        return False
    if _has(rule, "max_level") and level > rule.max_level:
        return False
    if any(s not in stages for s in rule.stage):
        return False
    if any(s in stages for s in rule.not_stage):
        return False
    return True


def _layer_included(layer, phase, level, stages):
    # Net::FilterNet
    included = len(layer.include) == 0
    for rule in layer.exclude:
        if _meets_rule(rule, phase, level, stages):
            included = False
    for rule in layer.include:
        if _meets_rule(rule, phase, level, stages):
            included = True
    return included


def _blobproto_to_array(bp):
    if len(bp.double_data):
        data = np.asarray(bp.double_data, dtype=np.float64)
    else:
        data = np.asarray(bp.data, dtype=np.float32)
    if _has(bp, "shape"):
        shape = tuple(int(d) for d in bp.shape.dim)
    else:
        shape = (bp.num, bp.channels, bp.height, bp.width)
    return data.reshape(shape) if data.size == _count(shape) else data


def _shaped(arr, want, what):
    arr = np.asarray(arr)
    want = tuple(int(v) for v in want)
    if arr.shape == want:
        return arr
    if arr.size != _count(want):
        raise ValueError(f"{what}: blob of shape {arr.shape} cannot be {want}")
    return arr.reshape(want)


def _conv_geometry(cp, nsp):
    """Kernel / stride / pad / dilation per base_conv_layer.cpp LayerSetUp."""
    if _has(cp, "kernel_h") or _has(cp, "kernel_w"):
        kernel = (cp.kernel_h, cp.kernel_w)
    else:
        ks = list(cp.kernel_size)
        kernel = tuple(ks[0] if len(ks) == 1 else ks[i] for i in range(nsp))
    if _has(cp, "stride_h") or _has(cp, "stride_w"):
        stride = (cp.stride_h, cp.stride_w)
    else:
        st = list(cp.stride)
        stride = tuple(1 if not st else (st[0] if len(st) == 1 else st[i]) for i in range(nsp))
    if _has(cp, "pad_h") or _has(cp, "pad_w"):
        pad = (cp.pad_h, cp.pad_w)
    else:
        pd = list(cp.pad)
        pad = tuple(0 if not pd else (pd[0] if len(pd) == 1 else pd[i]) for i in range(nsp))
    dl = list(cp.dilation)
    dilation = tuple(1 if not dl else (dl[0] if len(dl) == 1 else dl[i]) for i in range(nsp))
    return tuple(int(v) for v in kernel), stride, pad, dilation


def _pool_args(pp, x_shape):
    if pp.global_pooling:
        kernel = (x_shape[2], x_shape[3])
    elif _has(pp, "kernel_size"):
        kernel = (pp.kernel_size, pp.kernel_size)
    else:
        kernel = (pp.kernel_h, pp.kernel_w)
    pad = (pp.pad_h, pp.pad_w) if _has(pp, "pad_h") else (pp.pad, pp.pad)
    stride = (pp.stride_h, pp.stride_w) if _has(pp, "stride_h") else (pp.stride, pp.stride)
    ceil_mode = None
    if _has(pp, "ceil_mode"):  # fork field (e.g. PR #3057 forks)
        ceil_mode = bool(pp.ceil_mode)
    round_mode = int(_field(pp, "round_mode", 0) or 0)
    return dict(
        method=int(pp.pool),
        kernel=kernel,
        stride=stride,
        pad=pad,
        global_pooling=bool(pp.global_pooling),
        round_mode=round_mode,
        ceil_mode=ceil_mode,
    )


def run_net(
    net_param, weights=None, inputs=None, phase=_TEST, level=0, stages=(), dtype=np.float32
):
    """Execute a caffe NetParameter forward (TEST phase by default).

    weights: {layer_name: [np.ndarray, ...]} in Caffe blob order/layout; when a
      layer is missing from ``weights`` its embedded ``layer.blobs`` are used.
    inputs: {blob_name: np.ndarray} -- data layers are not executed, their
      tops must be supplied here (a missing label top is simply absent).
    Returns {blob_name: np.ndarray} with every blob's final value (in-place
      layers overwrite their blob, as in Caffe).
    All float data is cast to ``dtype`` (float32 mirrors Caffe's blobs).
    """
    weights = dict(weights or {})
    blobs = {k: np.asarray(v).astype(dtype) for k, v in (inputs or {}).items()}
    stages = set(stages)
    layers = list(net_param.layer)
    if not layers and len(_field(net_param, "layers", [])):
        raise NotImplementedError("V1 'layers' nets are not supported; upgrade first")

    for layer in layers:
        if not _layer_included(layer, phase, level, stages):
            continue
        ltype = layer.type
        name = layer.name
        bottoms = list(layer.bottom)
        tops = list(layer.top)
        if ltype in _DATA_TYPES:
            for t in tops:
                if t not in blobs and ltype == "Input":
                    raise KeyError(f"input blob '{t}' of layer '{name}' not supplied")
            continue
        if ltype in _SKIP_TYPES:
            continue
        missing = [b_ for b_ in bottoms if b_ not in blobs]
        if missing:
            raise KeyError(f"layer '{name}' ({ltype}): bottom blobs {missing} not available")
        xs = [blobs[b_] for b_ in bottoms]
        if name in weights:
            wts = [np.asarray(a) for a in weights[name]]
        else:
            wts = [_blobproto_to_array(bp) for bp in layer.blobs]
        wts = [a.astype(dtype) if np.issubdtype(a.dtype, np.floating) else a for a in wts]
        outs = _run_layer(layer, ltype, xs, wts)
        if len(outs) != len(tops):
            raise ValueError(f"layer '{name}' produced {len(outs)} outputs for {len(tops)} tops")
        for t, v in zip(tops, outs):
            v = np.asarray(v)
            blobs[t] = v.astype(dtype) if np.issubdtype(v.dtype, np.floating) else v
    return blobs


def _need(wts, n, layer):
    if len(wts) < n:
        raise KeyError(
            f"layer '{layer.name}' ({layer.type}) needs {n} weight blobs, " f"got {len(wts)}"
        )


def _run_layer(layer, ltype, xs, wts):
    x = xs[0] if xs else None
    ntop = len(layer.top)

    if ltype in ("Convolution", "Deconvolution", "ConvolutionDepthwise", "DepthwiseConvolution"):
        cp = layer.convolution_param
        if _field(cp, "axis", 1) not in (1, -(x.ndim - 1)):
            raise NotImplementedError("only channel axis 1 is supported")
        nsp = x.ndim - 2
        kernel, stride, pad, dilation = _conv_geometry(cp, nsp)
        c = x.shape[1]
        num_output = int(cp.num_output)
        group = int(cp.group)
        if ltype in ("ConvolutionDepthwise", "DepthwiseConvolution"):
            group = c
        bias_term = bool(cp.bias_term)
        _need(wts, 1 + bias_term, layer)
        if ltype == "Deconvolution":
            wshape = (c, num_output // group) + kernel
        else:
            wshape = (num_output, c // group) + kernel
        w = _shaped(wts[0], wshape, layer.name + " weight")
        b_ = _shaped(wts[1], (num_output,), layer.name + " bias") if bias_term else None
        fn = deconvolution if ltype == "Deconvolution" else convolution
        return [fn(xi, w, b_, stride=stride, pad=pad, dilation=dilation, group=group) for xi in xs]

    if ltype == "Pooling":
        args = _pool_args(layer.pooling_param, x.shape)
        return [pooling(x, **args)]

    if ltype == "LRN":
        lp = layer.lrn_param
        return [
            lrn(
                x,
                local_size=lp.local_size,
                alpha=lp.alpha,
                beta=lp.beta,
                k=lp.k,
                norm_region=int(lp.norm_region),
            )
        ]

    if ltype == "BatchNorm":
        bp = layer.batch_norm_param
        use_global = True if not _has(bp, "use_global_stats") else bool(bp.use_global_stats)
        if use_global:
            _need(wts, 3, layer)
            return [batch_norm(x, wts[0], wts[1], wts[2], eps=bp.eps)]
        return [batch_norm(x, eps=bp.eps, use_global_stats=False)]

    if ltype == "Scale":
        sp = layer.scale_param
        axis = _canonical_axis(sp.axis, x.ndim)
        if len(xs) > 1:
            s = xs[1]
            b_ = None
            if sp.bias_term:
                _need(wts, 1, layer)
                b_ = _shaped(wts[0], s.shape, layer.name + " bias")
            return [scale(x, s, b_, axis=axis, num_axes=s.ndim)]
        _need(wts, 1 + bool(sp.bias_term), layer)
        end = x.ndim if sp.num_axes == -1 else axis + sp.num_axes
        pshape = x.shape[axis:end]
        s = _shaped(wts[0], pshape, layer.name + " scale")
        b_ = _shaped(wts[1], pshape, layer.name + " bias") if sp.bias_term else None
        return [scale(x, s, b_, axis=axis, num_axes=sp.num_axes)]

    if ltype == "Bias":
        bp = layer.bias_param
        axis = _canonical_axis(bp.axis, x.ndim)
        if len(xs) > 1:
            return [bias(x, xs[1], axis=axis, num_axes=xs[1].ndim)]
        _need(wts, 1, layer)
        end = x.ndim if bp.num_axes == -1 else axis + bp.num_axes
        return [
            bias(
                x,
                _shaped(wts[0], x.shape[axis:end], layer.name + " bias"),
                axis=axis,
                num_axes=bp.num_axes,
            )
        ]

    if ltype == "Eltwise":
        ep = layer.eltwise_param
        return [eltwise(xs, op=int(ep.operation), coeffs=list(ep.coeff) or None)]

    if ltype == "InnerProduct":
        ip = layer.inner_product_param
        axis = _canonical_axis(ip.axis, x.ndim)
        k = _count(x.shape, axis)
        n_out = int(ip.num_output)
        _need(wts, 1 + bool(ip.bias_term), layer)
        wshape = (k, n_out) if ip.transpose else (n_out, k)
        w = _shaped(wts[0], wshape, layer.name + " weight")
        b_ = _shaped(wts[1], (n_out,), layer.name + " bias") if ip.bias_term else None
        return [inner_product(x, w, b_, axis=axis, transpose=bool(ip.transpose))]

    if ltype == "Embed":
        ep = layer.embed_param
        _need(wts, 1 + bool(ep.bias_term), layer)
        w = _shaped(wts[0], (ep.input_dim, ep.num_output), layer.name + " weight")
        b_ = _shaped(wts[1], (ep.num_output,), layer.name + " bias") if ep.bias_term else None
        return [embed(x, w, b_)]

    if ltype == "Softmax":
        return [softmax(x, axis=layer.softmax_param.axis)]

    if ltype == "Concat":
        cp = layer.concat_param
        axis = int(cp.concat_dim) if _has(cp, "concat_dim") else cp.axis
        return [concat(xs, axis=axis)]

    if ltype == "Slice":
        sp = layer.slice_param
        axis = int(sp.slice_dim) if _has(sp, "slice_dim") else sp.axis
        pts = list(sp.slice_point)
        return slice(x, axis=axis, slice_points=pts or None, num_outputs=ntop)

    if ltype == "Split":
        return split(x, ntop)

    if ltype == "Crop":
        cp = layer.crop_param
        return [crop(x, xs[1], axis=cp.axis, offset=list(cp.offset))]

    if ltype == "Reshape":
        rp = layer.reshape_param
        return [reshape(x, list(rp.shape.dim), axis=rp.axis, num_axes=rp.num_axes)]

    if ltype == "Flatten":
        fp = layer.flatten_param
        return [flatten(x, axis=fp.axis, end_axis=fp.end_axis)]

    if ltype == "ReLU":
        return [relu(x, layer.relu_param.negative_slope)]

    if ltype == "PReLU":
        _need(wts, 1, layer)
        return [prelu(x, wts[0], channel_shared=bool(layer.prelu_param.channel_shared))]

    if ltype == "ELU":
        return [elu(x, layer.elu_param.alpha)]

    if ltype == "Sigmoid":
        return [sigmoid(x)]

    if ltype == "TanH":
        return [tanh(x)]

    if ltype == "Power":
        pp = layer.power_param
        return [power(x, power=pp.power, scale=pp.scale, shift=pp.shift)]

    if ltype == "AbsVal":
        return [absval(x)]

    if ltype == "BNLL":
        return [bnll(x)]

    if ltype == "Exp":
        ep = layer.exp_param
        return [exp(x, base=ep.base, scale=ep.scale, shift=ep.shift)]

    if ltype == "Log":
        lp = layer.log_param
        return [log(x, base=lp.base, scale=lp.scale, shift=lp.shift)]

    if ltype == "Threshold":
        return [threshold(x, layer.threshold_param.threshold)]

    if ltype == "Clip":
        cp = layer.clip_param
        return [clip(x, cp.min, cp.max)]

    if ltype == "Swish":
        return [swish(x, layer.swish_param.beta)]

    if ltype == "Dropout":
        return [dropout(x)]

    if ltype == "ArgMax":
        ap = layer.argmax_param
        axis = ap.axis if _has(ap, "axis") else None
        return [argmax(x, top_k=ap.top_k, out_max_val=bool(ap.out_max_val), axis=axis)]

    if ltype == "Reduction":
        rp = layer.reduction_param
        return [reduction(x, op=int(rp.operation), axis=rp.axis, coeff=rp.coeff)]

    if ltype == "Tile":
        tp = layer.tile_param
        return [tile(x, axis=tp.axis, tiles=tp.tiles)]

    if ltype == "MVN":
        mp = layer.mvn_param
        return [
            mvn(
                x,
                normalize_variance=bool(mp.normalize_variance),
                across_channels=bool(mp.across_channels),
                eps=mp.eps,
            )
        ]

    if ltype == "ShuffleChannel":
        sp = _field(layer, "shuffle_channel_param")
        group = int(_field(sp, "group", 1)) if sp is not None else 1
        return [shuffle_channel(x, group)]

    if ltype == "Axpy":
        return [axpy(xs[0], xs[1], xs[2])]

    raise NotImplementedError(
        f"layer type '{ltype}' (layer '{layer.name}') " "is not covered by the reference"
    )
