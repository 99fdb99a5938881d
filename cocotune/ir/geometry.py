"""Caffe's convolution and pooling geometry: kernel, stride, pad, dilation and output sizes.

Read from a layer's parameters exactly as Caffe's ``BaseConvolutionLayer`` and
``PoolingLayer`` read them (``kernel_h``/``kernel_w`` versus ``kernel_size``, defaults,
global pooling, ``round_mode`` and the fork field ``ceil_mode``). Shared by the shape rules
and by the emitters, which must build the same windows the shapes were computed with.
"""

from __future__ import annotations

from dataclasses import dataclass

from cocotune.ir.net import Layer, Shape
from cocotune.ir.rule_base import canonical_axis, fail, fmt_shape


@dataclass(frozen=True)
class ConvGeometry:
    """Kernel, stride, pad, dilation per spatial axis, as Caffe's BaseConvolutionLayer reads them."""

    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    pad: tuple[int, ...]
    dilation: tuple[int, ...]
    axis: int


def conv_geometry(layer: Layer, in_shape: Shape) -> ConvGeometry:
    p = layer.param.convolution_param
    axis = canonical_axis(p.axis, len(in_shape), "convolution_param.axis")
    n_sp = len(in_shape) - axis - 1
    if n_sp < 1:
        raise fail(f"input {fmt_shape(in_shape)} has no spatial axes after axis {axis}")

    def per_axis(name: str, values, h_name: str, w_name: str, default: int) -> tuple[int, ...]:
        has_hw = p.HasField(h_name) or p.HasField(w_name)
        if has_hw:
            if n_sp != 2:
                raise fail(f"{h_name}/{w_name} need 2 spatial axes", f"convolution_param.{h_name}")
            if len(values):
                raise fail(f"give either {name} or {h_name}/{w_name}", f"convolution_param.{name}")
            if name == "kernel_size" and not (p.HasField(h_name) and p.HasField(w_name)):
                raise fail(
                    "kernel_h and kernel_w must be given together", f"convolution_param.{h_name}"
                )
            return (
                getattr(p, h_name) if p.HasField(h_name) else default,
                getattr(p, w_name) if p.HasField(w_name) else default,
            )
        if len(values) == 0:
            if name == "kernel_size":
                raise fail(
                    "convolution_param needs kernel_size (or kernel_h and kernel_w)",
                    "convolution_param",
                )
            return (default,) * n_sp
        if len(values) not in (1, n_sp):
            raise fail(
                f"{name} has {len(values)} values for {n_sp} spatial axes",
                f"convolution_param.{name}",
            )
        return tuple(values) * n_sp if len(values) == 1 else tuple(values)

    kernel = per_axis("kernel_size", p.kernel_size, "kernel_h", "kernel_w", 0)
    stride = per_axis("stride", p.stride, "stride_h", "stride_w", 1)
    pad = per_axis("pad", p.pad, "pad_h", "pad_w", 0)
    if len(p.dilation) not in (0, 1, n_sp):
        raise fail(
            f"dilation has {len(p.dilation)} values for {n_sp} spatial axes",
            "convolution_param.dilation",
        )
    dilation = (tuple(p.dilation) * n_sp if len(p.dilation) == 1 else tuple(p.dilation)) or (
        1,
    ) * n_sp
    if any(k <= 0 for k in kernel):
        raise fail("kernel size must be positive", "convolution_param.kernel_size")
    if any(s <= 0 for s in stride):
        raise fail("stride must be positive", "convolution_param.stride")
    if any(d <= 0 for d in dilation):
        raise fail("dilation must be positive", "convolution_param.dilation")
    return ConvGeometry(kernel, stride, pad, dilation, axis)


@dataclass(frozen=True)
class PoolGeometry:
    kernel: tuple[int, int]
    stride: tuple[int, int]
    pad: tuple[int, int]
    global_pooling: bool
    ceil: bool


def pool_geometry(layer: Layer, in_shape: Shape) -> PoolGeometry:
    p = layer.param.pooling_param
    if len(in_shape) != 4:
        raise fail(f"pooling needs a 4-axis (N,C,H,W) input, got {fmt_shape(in_shape)}")
    if p.global_pooling:
        if p.HasField("kernel_size") or p.HasField("kernel_h") or p.HasField("kernel_w"):
            raise fail(
                "global_pooling takes its kernel from the input; remove kernel_size",
                "pooling_param.kernel_size",
            )
        kernel = (in_shape[2], in_shape[3])
    elif p.HasField("kernel_size"):
        if p.HasField("kernel_h") or p.HasField("kernel_w"):
            raise fail("give either kernel_size or kernel_h/kernel_w", "pooling_param.kernel_h")
        kernel = (p.kernel_size, p.kernel_size)
    elif p.HasField("kernel_h") and p.HasField("kernel_w"):
        kernel = (p.kernel_h, p.kernel_w)
    else:
        raise fail(
            "pooling_param needs kernel_size (or kernel_h and kernel_w, or global_pooling)",
            "pooling_param",
        )
    pad = (p.pad_h, p.pad_w) if (p.HasField("pad_h") or p.HasField("pad_w")) else (p.pad, p.pad)
    stride = (
        (p.stride_h, p.stride_w)
        if (p.HasField("stride_h") or p.HasField("stride_w"))
        else (p.stride, p.stride)
    )
    if min(kernel) <= 0:
        raise fail("kernel size must be positive", "pooling_param.kernel_size")
    if min(stride) <= 0:
        raise fail("stride must be positive", "pooling_param.stride")
    if p.global_pooling and (any(pad) or any(s != 1 for s in stride)):
        raise fail("global pooling needs pad 0 and stride 1", "pooling_param.global_pooling")
    if any(pad) and (pad[0] >= kernel[0] or pad[1] >= kernel[1]):
        raise fail(
            f"pad {fmt_shape(pad)} must be smaller than the kernel {fmt_shape(kernel)}",
            "pooling_param.pad",
        )
    ceil = True
    has_ceil_mode = p.HasField("ceil_mode")
    if p.HasField("round_mode"):
        ceil = p.round_mode == p.CEIL
        if has_ceil_mode and p.ceil_mode != ceil:
            raise fail(
                "round_mode and the fork field ceil_mode disagree", "pooling_param.ceil_mode"
            )
    if has_ceil_mode:
        ceil = p.ceil_mode
    return PoolGeometry(kernel, stride, pad, bool(p.global_pooling), ceil)


def caffe_pool_output_size(
    size: int, kernel: int, stride: int, pad: int, ceil_mode: bool = True
) -> int:
    """Caffe's pooling output size along one spatial axis (``pooling_layer.cpp``).

    ``ceil((size + 2*pad - kernel) / stride) + 1`` (``floor`` if not ``ceil_mode``); then, when
    there is padding, the last window is dropped if it would start at or beyond
    ``size + pad`` (inside the right/bottom padding).

    Args:
        size: Input size (H or W).
        kernel: Window size.
        stride: Window stride.
        pad: Padding on each side.
        ceil_mode: Round up (Caffe's default, ``round_mode: CEIL``) or down.

    Returns:
        The output size (may be <= 0 for an impossible configuration).
    """
    span = size + 2 * pad - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if pad > 0 and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def pooled_size(size: int, k: int, s: int, pd: int, ceil: bool) -> int:
    """:func:`caffe_pool_output_size`, refusing a window larger than the padded input (Caffe's
    PoolingLayer::Reshape would compute a size from it; the net is wrong)."""
    if size + 2 * pd - k < 0:
        raise fail(
            f"kernel {k} is larger than the padded input {size}+2*{pd}", "pooling_param.kernel_size"
        )
    return caffe_pool_output_size(size, k, s, pd, ceil)
