"""Caffe-exact shape inference, parameter counts and multiply-accumulates, one rule per type.

``LAYER_RULES`` maps a Caffe type to a :class:`LayerRule`: a pure function from the layer and
its input shapes to its output shapes, plus how many parameters it stores and how many MACs it
performs per image. The formulas are Caffe's own (``*_layer.cpp`` Reshape/LayerSetUp), e.g.
pooling rounds up by default and drops a last window that would start in the padding.
Each type is described once, by a :func:`cocotune.ir.catalogue.register` call after its rule:
the catalogue entry also holds its blobs, pruning role and emitter name. ``LAYER_RULES`` and
``KNOWN_UNSUPPORTED`` are views of that catalogue.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from cocotune.errors import ShapeError
from cocotune.ir import random_init
from cocotune.ir.catalogue import (
    CHANNELWISE,
    PRODUCER,
    BlobSpec,
    LayerType,
    PruningRole,
    known_unsupported,
    register,
    shape_rules,
)
from cocotune.ir.net import Layer, Net, Shape


class _LayerShapeError(Exception):
    """Raised inside rules; turned into a positioned ShapeError naming the layer."""

    def __init__(self, message: str, field_path: str = "", index: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.field_path = field_path
        self.index = index


def fail(message: str, field_path: str = "", index: int = 0) -> _LayerShapeError:
    """An error in a rule; ``field_path``/``index`` say which written value to point at."""
    return _LayerShapeError(message, field_path, index)


@dataclass(frozen=True)
class Cost:
    params: int = 0
    macs: int = 0  # per image (batch axis divided out)


ShapeFn = Callable[[Layer, list[Shape]], list[Shape]]
CostFn = Callable[[Layer, list[Shape], list[Shape]], Cost]

#: The name this module's entries had before the catalogue; kept for callers.
LayerRule = LayerType
#: Caffe type -> its catalogue entry, for the types that have a shape rule.
LAYER_RULES = shape_rules()
#: Types cocotune recognises but does not support -> why (reported all at once).
KNOWN_UNSUPPORTED = known_unsupported()
#: The pruning role of a layer whose output channel c reads only input channel c.
_CW = PruningRole(CHANNELWISE)


def prod(values) -> int:
    return math.prod(int(v) for v in values)


def per_image(shape: Shape) -> int:
    """Elements of one image of a blob (the batch axis divided out)."""
    return prod(shape[1:]) if len(shape) > 1 else 1


def canonical_axis(axis: int, ndim: int, what: str = "axis") -> int:
    if not -ndim <= axis < ndim:
        raise fail(f"{what} {axis} is out of range for a {ndim}-axis blob", what)
    return axis % ndim


# ---------------------------------------------------------------------------------------------
# Data and inputs
# ---------------------------------------------------------------------------------------------


def _input(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    shapes = layer.param.input_param.shape
    n_tops = len(layer.param.top)
    if len(shapes) not in (1, n_tops):
        raise fail(f"input_param has {len(shapes)} shapes for {n_tops} tops", "input_param")
    return [tuple(shapes[0 if len(shapes) == 1 else i].dim) for i in range(n_tops)]


register("Input", shape=_input, bottoms=(0, 0), tops=(1, None), description="network input",
         emitter="InputEmitter")  # fmt: skip


class NeedsInputShape(Exception):
    """A data layer whose shape (or part of it) lives in a database: ask for --input-shape.

    ``message`` says what the file did determine and what is still unknown.
    """

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


def _with_label(layer: Layer, data: Shape) -> list[Shape]:
    out = [data]
    if len(layer.param.top) > 1:
        out.append((data[0],))
    return out


def _line(layer: Layer, path: str, default: object = None) -> str:
    """'line N' where the field at ``path`` is written, or 'default ...' when it is not."""
    fallback = "default" if default is None else f"default {default}"
    tree = layer.positions
    parts = path.split(".")
    for k, part in enumerate(parts):
        occurrences = tree.fields.get(part) if tree is not None else None
        if not occurrences:
            return fallback
        if k == len(parts) - 1:
            return f"line {occurrences[0].value.line}"
        tree = occurrences[0].children
    return fallback  # pragma: no cover - the loop returns


def _data_shape(layer: Layer, dims: list[tuple[int | None, str]], unknown_hint: str) -> Shape:
    """N,C,H,W of a data layer from what its fields say; each dim comes with where it came from.

    All known: the shape, and ``layer.shape_from`` tells the user it was inferred (and from
    what). Some unknown: NeedsInputShape naming what is known, what is missing and why.
    """
    names = "NCHW"
    known = [(n, v, why) for n, (v, why) in zip(names, dims) if v]
    missing = [n for n, (v, _) in zip(names, dims) if not v]
    top = layer.tops[0]
    groups: list[tuple[str, list, str]] = []  # dims that share a source are said once
    for n, v, why in known:
        if groups and groups[-1][2] == why:
            groups[-1] = (groups[-1][0] + n, groups[-1][1] + [v], why)
        else:
            groups.append((n, [v], why))
    said = "; ".join(
        f"{','.join(ns)}={','.join(str(v) for v in vs)} from {why}" for ns, vs, why in groups
    )
    if missing:
        spec = ",".join(str(v) if v else n for n, (v, _) in zip(names, dims))
        raise NeedsInputShape(
            f"the file determines {said or 'none of it'}; {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} unknown ({unknown_hint}): "
            f"give --input-shape {top}={spec}"
        )
    shape = tuple(int(v) for v, _ in dims)
    layer.shape_from = f"'{top}' {fmt_shape(shape)} inferred from the file: {said}"
    return shape


def _transform_dims(layer: Layer) -> tuple[tuple[int | None, str], tuple[int | None, str]]:
    """(H, W) from transform_param.crop_size: Caffe crops every image to crop_size."""
    crop = layer.param.transform_param.crop_size
    if crop:
        why = f"transform_param.crop_size ({_line(layer, 'transform_param.crop_size')})"
        return (crop, why), (crop, why)
    return (None, ""), (None, "")


def _mean_value_channels(layer: Layer) -> tuple[int | None, str]:
    """Channels as far as the transform says them (Caffe's DataTransformer checks these)."""
    t = layer.param.transform_param
    if len(t.mean_value) > 1:  # Caffe requires one mean_value, or one per channel
        return len(t.mean_value), (
            f"{len(t.mean_value)} mean_value ({_line(layer, 'transform_param.mean_value')})"
        )
    encoded = "decoding encoded images"
    if t.force_color:
        return (
            3,
            f"transform_param.force_color ({_line(layer, 'transform_param.force_color')}, {encoded})",
        )
    if t.force_gray:
        return (
            1,
            f"transform_param.force_gray ({_line(layer, 'transform_param.force_gray')}, {encoded})",
        )
    if layer.param.type == "Data" and layer.param.data_param.force_encoded_color:
        return 3, (
            f"data_param.force_encoded_color ({_line(layer, 'data_param.force_encoded_color')}, "
            f"{encoded})"
        )
    return None, ""


def _database_data(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    p = layer.param
    if p.type == "WindowData":
        w = p.window_data_param
        n = (
            w.batch_size or None,
            f"window_data_param.batch_size ({_line(layer, 'window_data_param.batch_size')})",
        )
        c = (3, "WindowData (always reads colour images)")
        if w.crop_size:
            why = f"window_data_param.crop_size ({_line(layer, 'window_data_param.crop_size')})"
            h = wd = (w.crop_size, why)
        else:
            h, wd = _transform_dims(layer)
        hint = "give window_data_param.crop_size"
    elif p.type == "HDF5Data":
        n = (p.hdf5_data_param.batch_size or None,
             f"hdf5_data_param.batch_size ({_line(layer, 'hdf5_data_param.batch_size')})")  # fmt: skip
        c = h = wd = (None, "")
        hint = "they are the shape of the datasets in the HDF5 files"
    else:
        n = (p.data_param.batch_size or None,
             f"data_param.batch_size ({_line(layer, 'data_param.batch_size')})")  # fmt: skip
        c = _mean_value_channels(layer)
        h, wd = _transform_dims(layer)
        hint = "they are stored with the images in the database"
        if not c[0]:
            hint += "; one mean_value per channel would tell C"
        if not h[0]:
            hint += "; transform_param.crop_size would tell H and W"
    return _with_label(layer, _data_shape(layer, [n, c, h, wd], hint))


register("Data", "HDF5Data", "WindowData", shape=_database_data, bottoms=(0, 0), tops=(1, 2),
         description="data reader", emitter="InputEmitter")  # fmt: skip


def _image_data(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    p = layer.param.image_data_param
    n = (
        p.batch_size,
        f"image_data_param.batch_size ({_line(layer, 'image_data_param.batch_size', 1)})",
    )
    c = (
        3 if p.is_color else 1,
        f"image_data_param.is_color ({_line(layer, 'image_data_param.is_color', 'true')})",
    )
    h, w = _transform_dims(layer)
    if not h[0] and p.new_height and p.new_width:
        h = (
            p.new_height,
            f"image_data_param.new_height ({_line(layer, 'image_data_param.new_height')})",
        )
        w = (
            p.new_width,
            f"image_data_param.new_width ({_line(layer, 'image_data_param.new_width')})",
        )
    hint = "images keep their own size without crop_size or new_height/new_width"
    return _with_label(layer, _data_shape(layer, [n, c, h, w], hint))


register("ImageData", shape=_image_data, bottoms=(0, 0), tops=(1, 2),
         description="image list reader", emitter="InputEmitter")  # fmt: skip


def _memory_data(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    p = layer.param.memory_data_param
    crop = layer.param.transform_param.crop_size
    h, w = (crop, crop) if crop else (p.height, p.width)
    return _with_label(layer, (p.batch_size, p.channels, h, w))


register("MemoryData", shape=_memory_data, bottoms=(0, 0), tops=(1, 2),
         description="in-memory data", emitter="InputEmitter")  # fmt: skip


def _dummy_data(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    p = layer.param.dummy_data_param
    n_tops = len(layer.param.top)
    if len(p.shape):
        shapes = [tuple(s.dim) for s in p.shape]
    else:
        shapes = [
            (p.num[i] if i < len(p.num) else p.num[0], p.channels[i] if i < len(p.channels) else p.channels[0],
             p.height[i] if i < len(p.height) else p.height[0], p.width[i] if i < len(p.width) else p.width[0])
            for i in range(max(len(p.num), 1))
        ] if len(p.num) else []  # fmt: skip
    if len(shapes) not in (1, n_tops):
        raise fail(f"dummy_data_param gives {len(shapes)} shapes for {n_tops} tops")
    return [shapes[0 if len(shapes) == 1 else i] for i in range(n_tops)]


register("DummyData", shape=_dummy_data, bottoms=(0, 0), tops=(1, None),
         description="constant data", emitter="InputEmitter")  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Convolution family
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConvGeometry:
    """Kernel, stride, pad and dilation per spatial axis, as Caffe's BaseConvolutionLayer reads them."""

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
            return (getattr(p, h_name) if p.HasField(h_name) else default,
                    getattr(p, w_name) if p.HasField(w_name) else default)  # fmt: skip
        if len(values) == 0:
            if name == "kernel_size":
                raise fail("convolution_param needs kernel_size (or kernel_h and kernel_w)",
                           "convolution_param")  # fmt: skip
            return (default,) * n_sp
        if len(values) not in (1, n_sp):
            raise fail(f"{name} has {len(values)} values for {n_sp} spatial axes",
                       f"convolution_param.{name}")  # fmt: skip
        return tuple(values) * n_sp if len(values) == 1 else tuple(values)

    kernel = per_axis("kernel_size", p.kernel_size, "kernel_h", "kernel_w", 0)
    stride = per_axis("stride", p.stride, "stride_h", "stride_w", 1)
    pad = per_axis("pad", p.pad, "pad_h", "pad_w", 0)
    if len(p.dilation) not in (0, 1, n_sp):
        raise fail(f"dilation has {len(p.dilation)} values for {n_sp} spatial axes",
                   "convolution_param.dilation")  # fmt: skip
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


def fmt_shape(shape: Shape) -> str:
    return "x".join(str(d) for d in shape) if shape else "scalar"


def _conv_common(layer: Layer, in_shape: Shape, depthwise: bool) -> tuple[ConvGeometry, int, int]:
    p = layer.param.convolution_param
    g = conv_geometry(layer, in_shape)
    channels = in_shape[g.axis]
    if depthwise:
        group = channels
        if p.num_output != channels:
            raise fail(f"a depthwise convolution needs num_output == input channels "
                       f"({p.num_output} != {channels})", "convolution_param.num_output")  # fmt: skip
    else:
        group = p.group
    if p.num_output <= 0:
        raise fail("num_output must be positive", "convolution_param.num_output")
    if group <= 0 or channels % group:
        raise fail(f"input channels ({channels}) are not divisible by group ({group})",
                   "convolution_param.group")  # fmt: skip
    if p.num_output % group:
        raise fail(f"num_output ({p.num_output}) is not divisible by group ({group})",
                   "convolution_param.num_output")  # fmt: skip
    return g, channels, group


def _conv_shape(layer: Layer, bottoms: list[Shape], depthwise: bool = False) -> list[Shape]:
    out = []
    for in_shape in bottoms:
        g, _, _ = _conv_common(layer, in_shape, depthwise)
        spatial = []
        for i, (size, k, s, pd, d) in enumerate(
            zip(in_shape[g.axis + 1 :], g.kernel, g.stride, g.pad, g.dilation)
        ):
            extent = d * (k - 1) + 1
            if size + 2 * pd < extent:
                raise fail(
                    f"kernel {fmt_shape(g.kernel)} (extent {extent} with dilation {d}) is larger "
                    f"than the padded input {size}+2*{pd} along spatial axis {i} "
                    f"(input {fmt_shape(in_shape)})",
                    "convolution_param.kernel_size",
                )
            spatial.append((size + 2 * pd - extent) // s + 1)
        out.append(
            tuple(in_shape[: g.axis]) + (layer.param.convolution_param.num_output,) + tuple(spatial)
        )
    return out


def _conv_cost(layer: Layer, bottoms: list[Shape], tops: list[Shape], depthwise=False) -> Cost:
    p = layer.param.convolution_param
    g, channels, group = _conv_common(layer, bottoms[0], depthwise)
    weights = p.num_output * (channels // group) * prod(g.kernel)
    params = weights + (p.num_output if p.bias_term else 0)
    macs = sum(per_image(t) for t in tops) * (channels // group) * prod(g.kernel)
    return Cost(params, macs)


def _with_bias(weights: BlobSpec, param) -> list[BlobSpec]:
    return [weights] + ([BlobSpec("bias", (param.num_output,))] if param.bias_term else [])


def _conv_blobs(layer: Layer, bottoms: list[Shape]) -> list[BlobSpec]:
    p = layer.param.convolution_param
    g = conv_geometry(layer, bottoms[0])
    channels = bottoms[0][g.axis]
    return _with_bias(BlobSpec("weights", (p.num_output, channels // p.group) + g.kernel), p)


def _depthwise_blobs(layer: Layer, bottoms: list[Shape]) -> list[BlobSpec]:
    """The depthwise fork allocates (C, 1, kh, kw) whatever group says."""
    p = layer.param.convolution_param
    g = conv_geometry(layer, bottoms[0])
    return _with_bias(BlobSpec("weights", (bottoms[0][g.axis], 1) + g.kernel), p)


def _deconv_blobs(layer: Layer, bottoms: list[Shape]) -> list[BlobSpec]:
    p = layer.param.convolution_param
    g = conv_geometry(layer, bottoms[0])
    channels = bottoms[0][g.axis]
    return _with_bias(BlobSpec("weights", (channels, p.num_output // p.group) + g.kernel), p)


_conv_init = random_init.he_normal(lambda layer, w: prod(w[1:]))

register(
    "Convolution",
    shape=_conv_shape,
    cost=_conv_cost,
    blobs=_conv_blobs,
    init=_conv_init,
    bias_field="convolution_param.bias_term",
    bottoms=(1, None),
    tops=(1, None),
    description="convolution",
    pruning=PruningRole(
        PRODUCER,
        axis="convolution_param.axis",
        filters="convolution_param.num_output",
        group="convolution_param.group",
        several_bottoms="reads several bottoms",
    ),
    emitter="ConvolutionEmitter",
)
register(
    "ConvolutionDepthwise",
    shape=lambda layer, b: _conv_shape(layer, b, depthwise=True),
    cost=lambda layer, b, t: _conv_cost(layer, b, t, depthwise=True),
    blobs=_depthwise_blobs,
    init=_conv_init,
    bias_field="convolution_param.bias_term",
    bottoms=(1, None),
    tops=(1, None),
    fork="depthwise-convolution fork (MobileNet/ShuffleNet)",
    description="depthwise convolution",
    # The fork ignores convolution_param.group (it is always one filter per channel).
    pruning=PruningRole(
        CHANNELWISE,
        axis="convolution_param.axis",
        filters="convolution_param.num_output",
        several_bottoms="reads several bottoms",
    ),
    emitter="ConvolutionEmitter",
)


def _deconv_shape(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    out = []
    for in_shape in bottoms:
        g, _, _ = _conv_common(layer, in_shape, False)
        spatial = []
        for size, k, s, pd, d in zip(in_shape[g.axis + 1 :], g.kernel, g.stride, g.pad, g.dilation):
            size_out = s * (size - 1) + d * (k - 1) + 1 - 2 * pd
            if size_out <= 0:
                raise fail(f"output size {size_out} is not positive (input {fmt_shape(in_shape)})",
                           "convolution_param.pad")  # fmt: skip
            spatial.append(size_out)
        out.append(
            tuple(in_shape[: g.axis]) + (layer.param.convolution_param.num_output,) + tuple(spatial)
        )
    return out


def _deconv_cost(layer: Layer, bottoms: list[Shape], tops: list[Shape]) -> Cost:
    p = layer.param.convolution_param
    g, channels, group = _conv_common(layer, bottoms[0], False)
    params = channels * (p.num_output // group) * prod(g.kernel) + (
        p.num_output if p.bias_term else 0
    )
    macs = sum(per_image(b) for b in bottoms) * (p.num_output // group) * prod(g.kernel)
    return Cost(params, macs)


register(
    "Deconvolution",
    shape=_deconv_shape,
    cost=_deconv_cost,
    blobs=_deconv_blobs,
    init=_conv_init,
    bias_field="convolution_param.bias_term",
    bottoms=(1, None),
    tops=(1, None),
    description="transposed convolution",
    emitter="DeconvolutionEmitter",
)


# ---------------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------------


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
            raise fail("global_pooling takes its kernel from the input; remove kernel_size",
                       "pooling_param.kernel_size")  # fmt: skip
        kernel = (in_shape[2], in_shape[3])
    elif p.HasField("kernel_size"):
        if p.HasField("kernel_h") or p.HasField("kernel_w"):
            raise fail("give either kernel_size or kernel_h/kernel_w", "pooling_param.kernel_h")
        kernel = (p.kernel_size, p.kernel_size)
    elif p.HasField("kernel_h") and p.HasField("kernel_w"):
        kernel = (p.kernel_h, p.kernel_w)
    else:
        raise fail("pooling_param needs kernel_size (or kernel_h and kernel_w, or global_pooling)",
                   "pooling_param")  # fmt: skip
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
        raise fail(f"pad {fmt_shape(pad)} must be smaller than the kernel {fmt_shape(kernel)}",
                   "pooling_param.pad")  # fmt: skip
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


def pooled_size(size: int, k: int, s: int, pd: int, ceil: bool) -> int:
    """Caffe's PoolingLayer::Reshape for one axis: round, then drop a window starting in the pad."""
    span = size + 2 * pd - k
    if span < 0:
        raise fail(f"kernel {k} is larger than the padded input {size}+2*{pd}",
                   "pooling_param.kernel_size")  # fmt: skip
    out = (-(-span // s) if ceil else span // s) + 1
    if pd and (out - 1) * s >= size + pd:
        out -= 1
    return out


def _pooling(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    g = pool_geometry(layer, bottoms[0])
    n, c, h, w = bottoms[0]
    if g.global_pooling:
        out = (n, c, 1, 1)
    else:
        out = (n, c, pooled_size(h, g.kernel[0], g.stride[0], g.pad[0], g.ceil),
               pooled_size(w, g.kernel[1], g.stride[1], g.pad[1], g.ceil))  # fmt: skip
    return [out] * len(layer.param.top)


def _pool_cost(layer: Layer, bottoms: list[Shape], tops: list[Shape]) -> Cost:
    g = pool_geometry(layer, bottoms[0])
    return Cost(0, per_image(tops[0]) * prod(g.kernel))


register("Pooling", shape=_pooling, cost=_pool_cost, tops=(1, 2), pruning=_CW,
         description="pooling", emitter="PoolingEmitter")  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Fully connected, embedding
# ---------------------------------------------------------------------------------------------


def _ip_shape(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    p = layer.param.inner_product_param
    if p.num_output <= 0:
        raise fail("num_output must be positive", "inner_product_param.num_output")
    axis = canonical_axis(p.axis, len(bottoms[0]), "inner_product_param.axis")
    return [tuple(bottoms[0][:axis]) + (p.num_output,)]


def _ip_cost(layer: Layer, bottoms: list[Shape], tops: list[Shape]) -> Cost:
    p = layer.param.inner_product_param
    axis = canonical_axis(p.axis, len(bottoms[0]), "inner_product_param.axis")
    k = prod(bottoms[0][axis:])
    params = k * p.num_output + (p.num_output if p.bias_term else 0)
    rows = prod(bottoms[0][:axis]) // max(bottoms[0][0], 1) if axis > 0 else 1
    return Cost(params, rows * k * p.num_output)


def _ip_blobs(layer: Layer, bottoms: list[Shape]) -> list[BlobSpec]:
    p = layer.param.inner_product_param
    x = bottoms[0]
    k = prod(x[canonical_axis(p.axis, len(x)) :])
    return _with_bias(
        BlobSpec("weights", (k, p.num_output) if p.transpose else (p.num_output, k)), p
    )


register(
    "InnerProduct",
    shape=_ip_shape,
    cost=_ip_cost,
    blobs=_ip_blobs,
    init=random_init.he_normal(
        lambda layer, w: w[0] if layer.param.inner_product_param.transpose else w[1]
    ),
    bias_field="inner_product_param.bias_term",
    description="fully connected",
    pruning=PruningRole(
        PRODUCER,
        axis="inner_product_param.axis",
        filters="inner_product_param.num_output",
        off_axis="flattens from a non-channel axis",
    ),
    emitter="InnerProductEmitter",
)


def _embed_shape(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    p = layer.param.embed_param
    if p.num_output <= 0 or p.input_dim <= 0:
        raise fail("embed_param needs positive num_output and input_dim", "embed_param")
    return [tuple(bottoms[0]) + (p.num_output,)]


register(
    "Embed",
    shape=_embed_shape,
    blobs=lambda layer, b: _with_bias(
        BlobSpec(
            "weights", (layer.param.embed_param.input_dim, layer.param.embed_param.num_output)
        ),
        layer.param.embed_param,
    ),
    # Rows are looked up, not summed: keep entries O(1/sqrt(dim)).
    init=random_init.he_normal(lambda layer, w: w[1]),
    bias_field="embed_param.bias_term",
    cost=lambda layer, b, t: Cost(
        layer.param.embed_param.input_dim * layer.param.embed_param.num_output
        + (layer.param.embed_param.num_output if layer.param.embed_param.bias_term else 0),
        0,
    ),
    description="embedding lookup",
    emitter="EmbedEmitter",
)


# ---------------------------------------------------------------------------------------------
# Normalisation and per-channel affine
# ---------------------------------------------------------------------------------------------


def _same_shape(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    return [bottoms[0]] * max(len(layer.param.top), 1)


def _lrn_shape(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    p = layer.param.lrn_param
    if p.local_size % 2 == 0:
        raise fail(f"LRN local_size must be odd, got {p.local_size}", "lrn_param.local_size")
    if len(bottoms[0]) != 4:
        raise fail(f"LRN needs a 4-axis input, got {fmt_shape(bottoms[0])}")
    return [bottoms[0]]


def _lrn_mixes_channels(layer: Layer) -> str | None:
    """ACROSS_CHANNELS divides each channel by a sum over its neighbouring channels: removing
    a channel changes the neighbours' normalisation, so the kept channels would no longer
    compute what the full model computed. WITHIN_CHANNEL only looks inside one channel."""
    if layer.param.lrn_param.norm_region == layer.param.lrn_param.ACROSS_CHANNELS:
        return "normalises across channels (removing one changes its neighbours)"
    return None


register(
    "LRN",
    shape=_lrn_shape,
    cost=lambda layer, b, t: Cost(0, per_image(b[0]) * layer.param.lrn_param.local_size),
    pruning=PruningRole(CHANNELWISE, exit_when=_lrn_mixes_channels),
    description="local response normalisation",
    emitter="LRNEmitter",
)


def _channels(shape: Shape) -> int:
    return shape[1] if len(shape) > 1 else 1


# Parameters: mean and variance per channel. Caffe's third blob (the moving-average scale
# factor) is bookkeeping, not a parameter: the converted model has no counterpart for it.
register(
    "BatchNorm",
    shape=_same_shape,
    blobs=lambda layer, b: [
        BlobSpec("mean", (_channels(b[0]),)),
        BlobSpec("variance", (_channels(b[0]),)),
        BlobSpec("scale factor", (1,)),
    ],
    init=random_init.batch_norm,
    cost=lambda layer, b, t: Cost(2 * _channels(b[0]), per_image(b[0])),
    pruning=_CW,
    description="batch normalisation (mean, variance; stored scaled by a factor)",
    emitter="BatchNormEmitter",
)


def _scale_param_shape(layer: Layer, bottoms: list[Shape], param_name: str) -> Shape:
    p = getattr(layer.param, param_name)
    x = bottoms[0]
    axis = canonical_axis(p.axis, len(x), f"{param_name}.axis") if len(x) else 0
    if len(bottoms) > 1:
        s = bottoms[1]
        if tuple(x[axis : axis + len(s)]) != tuple(s):
            raise fail(
                f"second bottom {fmt_shape(s)} does not match input {fmt_shape(x)} from axis {axis}",
                f"{param_name}.axis",
            )
        return s
    num_axes = p.num_axes
    if num_axes < -1:
        raise fail("num_axes must be -1 or non-negative", f"{param_name}.num_axes")
    end = len(x) if num_axes == -1 else axis + num_axes
    if end > len(x):
        raise fail(f"axis {axis} + num_axes {num_axes} exceeds the input's {len(x)} axes",
                   f"{param_name}.num_axes")  # fmt: skip
    return tuple(x[axis:end])


def _scale_shape(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _scale_param_shape(layer, bottoms, "scale_param")
    return [bottoms[0]]


def _scale_blobs(layer: Layer, bottoms: list[Shape]) -> list[BlobSpec]:
    """Gamma (unless a second bottom gives it), then beta with bias_term."""
    shape = tuple(_scale_param_shape(layer, bottoms, "scale_param"))
    out = [] if len(bottoms) > 1 else [BlobSpec("scale", shape)]
    if layer.param.scale_param.bias_term:
        out.append(BlobSpec("bias", shape))
    return out


def _scale_cost(layer: Layer, bottoms: list[Shape], tops: list[Shape]) -> Cost:
    shape = _scale_param_shape(layer, bottoms, "scale_param")
    n = prod(shape)
    params = (n if len(bottoms) == 1 else 0) + (n if layer.param.scale_param.bias_term else 0)
    return Cost(params, per_image(bottoms[0]))


# With a second bottom the per-channel factors come from another blob, which would have to lose
# the same channels: not something one module's pruning rate controls.
_SECOND_BOTTOM = "takes its factors from a second bottom"

register(
    "Scale",
    shape=_scale_shape,
    cost=_scale_cost,
    blobs=_scale_blobs,
    init=random_init.scale,
    bias_field="scale_param.bias_term",
    bottoms=(1, 2),
    pruning=PruningRole(CHANNELWISE, axis="scale_param.axis", several_bottoms=_SECOND_BOTTOM),
    description="per-channel scale (and bias)",
    emitter="ScaleEmitter",
)


def _bias_shape(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    _scale_param_shape(layer, bottoms, "bias_param")
    return [bottoms[0]]


register(
    "Bias",
    shape=_bias_shape,
    blobs=lambda layer, b: (
        [] if len(b) > 1 else [BlobSpec("bias", tuple(_scale_param_shape(layer, b, "bias_param")))]
    ),
    init=random_init.bias,
    cost=lambda layer, b, t: Cost(
        prod(_scale_param_shape(layer, b, "bias_param")) if len(b) == 1 else 0, 0
    ),
    bottoms=(1, 2),
    pruning=PruningRole(CHANNELWISE, axis="bias_param.axis", several_bottoms=_SECOND_BOTTOM),
    description="per-channel bias",
    emitter="ScaleEmitter",
)


def _mvn_shape(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    return [bottoms[0]]


register("MVN", shape=_mvn_shape, description="mean-variance normalisation", emitter="MVNEmitter")


# ---------------------------------------------------------------------------------------------
# Element-wise activations (same shape, no parameters)
# ---------------------------------------------------------------------------------------------

register("ReLU", shape=_same_shape, pruning=_CW, description="rectifier (negative_slope)",
         emitter="ReLUEmitter")  # fmt: skip
for _type, _desc in {
    "ELU": "exponential linear unit",
    "Sigmoid": "logistic sigmoid",
    "TanH": "hyperbolic tangent",
    "Power": "(shift + scale*x)^power",
    "AbsVal": "absolute value",
    "BNLL": "log(1 + exp(x))",
    "Exp": "base^(shift + scale*x)",
    "Log": "log_base(shift + scale*x)",
    "Threshold": "x > threshold",
    "Clip": "clip to [min, max]",
    "Swish": "x * sigmoid(beta*x)",
    "Dropout": "dropout (identity at test time)",
}.items():
    register(_type, shape=_same_shape, pruning=_CW, description=_desc, emitter="SimpleEmitter")


def _prelu_shape(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    if len(bottoms[0]) < 2:
        raise fail(f"PReLU needs an input with a channel axis, got {fmt_shape(bottoms[0])}")
    return [bottoms[0]]


register(
    "PReLU",
    shape=_prelu_shape,
    # A channel-shared slope is a 0-axis blob, exactly as Caffe allocates it.
    blobs=lambda layer, b: [
        BlobSpec("slope", () if layer.param.prelu_param.channel_shared else (b[0][1],))
    ],
    init=random_init.prelu,
    cost=lambda layer, b, t: Cost(1 if layer.param.prelu_param.channel_shared else _channels(b[0])),
    pruning=_CW,
    description="parametric rectifier",
    emitter="PReLUEmitter",
)


def _shuffle_shape(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    group = layer.param.shuffle_channel_param.group
    c = _channels(bottoms[0])
    if group <= 0 or c % group:
        raise fail(f"channels ({c}) are not divisible by group ({group})",
                   "shuffle_channel_param.group")  # fmt: skip
    return [bottoms[0]]


register("ShuffleChannel", shape=_shuffle_shape, fork="ShuffleNet fork",
         description="channel shuffle", emitter="ShuffleChannelEmitter")  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Combining and splitting blobs
# ---------------------------------------------------------------------------------------------


def _eltwise(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    p = layer.param.eltwise_param
    first = bottoms[0]
    for i, b in enumerate(bottoms[1:], start=1):
        if tuple(b) != tuple(first):
            raise fail(
                f"inputs have different shapes: '{layer.param.bottom[0]}' is {fmt_shape(first)} "
                f"but '{layer.param.bottom[i]}' is {fmt_shape(b)}",
                "bottom",
                i,
            )
    if len(p.coeff) and len(p.coeff) != len(bottoms):
        raise fail(f"{len(p.coeff)} coefficients for {len(bottoms)} inputs", "eltwise_param.coeff")
    if len(p.coeff) and p.operation != p.SUM:
        raise fail("coefficients are only allowed with operation SUM", "eltwise_param.coeff")
    return [first]


register(
    "Eltwise",
    shape=_eltwise,
    cost=lambda layer, b, t: Cost(0, per_image(b[0]) * (len(b) - 1)),
    bottoms=(2, None),
    description="element-wise sum/product/max",
    emitter="EltwiseEmitter",
)


def _axpy(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    a, x, y = bottoms
    if tuple(x) != tuple(y):
        raise fail(f"x {fmt_shape(x)} and y {fmt_shape(y)} differ", "bottom")
    if len(a) < 2 or tuple(a[:2]) != tuple(x[:2]) or any(d != 1 for d in a[2:]):
        raise fail(f"scale {fmt_shape(a)} must be N x C x 1 x 1 for input {fmt_shape(x)}", "bottom")
    return [x]


register(
    "Axpy",
    shape=_axpy,
    cost=lambda layer, b, t: Cost(0, per_image(b[1])),
    bottoms=(3, 3),
    fork="SENet fork",
    description="a*x + y (squeeze-excitation)",
    emitter="AxpyEmitter",
)


def _concat(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    p = layer.param.concat_param
    first = bottoms[0]
    axis = p.concat_dim if p.HasField("concat_dim") else p.axis
    axis = canonical_axis(axis, len(first), "concat_param.axis")
    total = 0
    for i, b in enumerate(bottoms):
        if len(b) != len(first) or any(b[k] != first[k] for k in range(len(first)) if k != axis):
            raise fail(
                f"inputs disagree outside the concatenation axis {axis}: "
                f"'{layer.param.bottom[0]}' is {fmt_shape(first)} but "
                f"'{layer.param.bottom[i]}' is {fmt_shape(b)}",
                "bottom",
                i,
            )
        total += b[axis]
    return [tuple(first[:axis]) + (total,) + tuple(first[axis + 1 :])]


register("Concat", shape=_concat, bottoms=(1, None), description="concatenation",
         emitter="ConcatEmitter")  # fmt: skip


def _slice(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    p = layer.param.slice_param
    x = bottoms[0]
    axis = p.slice_dim if p.HasField("slice_dim") else p.axis
    axis = canonical_axis(axis, len(x), "slice_param.axis")
    n_tops = len(layer.param.top)
    size = x[axis]
    if len(p.slice_point):
        if len(p.slice_point) != n_tops - 1:
            raise fail(f"{len(p.slice_point)} slice points for {n_tops} tops (need {n_tops - 1})",
                       "slice_param.slice_point")  # fmt: skip
        points = [0, *p.slice_point, size]
        if any(b <= a for a, b in zip(points, points[1:])):
            raise fail(f"slice points {list(p.slice_point)} must increase within 1..{size - 1}",
                       "slice_param.slice_point")  # fmt: skip
        sizes = [b - a for a, b in zip(points, points[1:])]
    else:
        if size % n_tops:
            raise fail(f"axis {axis} of size {size} does not split into {n_tops} equal parts")
        sizes = [size // n_tops] * n_tops
    return [tuple(x[:axis]) + (s,) + tuple(x[axis + 1 :]) for s in sizes]


register("Slice", shape=_slice, tops=(1, None), description="slice along an axis",
         emitter="SliceEmitter")  # fmt: skip
register("Split", shape=lambda layer, b: [b[0]] * len(layer.param.top), tops=(1, None),
         pruning=_CW, description="copies a blob", emitter="SplitEmitter")  # fmt: skip


def _crop(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    p = layer.param.crop_param
    x, ref = bottoms
    axis = canonical_axis(p.axis, len(x), "crop_param.axis")
    if len(ref) != len(x):
        raise fail(f"reference {fmt_shape(ref)} and input {fmt_shape(x)} differ in rank")
    n = len(x) - axis
    if len(p.offset) not in (0, 1, n):
        raise fail(f"{len(p.offset)} offsets for {n} cropped axes", "crop_param.offset")
    out = list(x)
    for i in range(axis, len(x)):
        off = (
            0 if not len(p.offset) else (p.offset[0] if len(p.offset) == 1 else p.offset[i - axis])
        )
        if off + ref[i] > x[i]:
            raise fail(f"crop of {ref[i]} at offset {off} exceeds axis {i} of size {x[i]}",
                       "crop_param.offset")  # fmt: skip
        out[i] = ref[i]
    return [tuple(out)]


register("Crop", shape=_crop, bottoms=(2, 2), description="crop to a reference",
         emitter="CropEmitter")  # fmt: skip


def _flatten(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    p = layer.param.flatten_param
    x = bottoms[0]
    start = canonical_axis(p.axis, len(x), "flatten_param.axis")
    end = canonical_axis(p.end_axis, len(x), "flatten_param.end_axis")
    if end < start:
        raise fail(f"end_axis {p.end_axis} comes before axis {p.axis}", "flatten_param.end_axis")
    return [tuple(x[:start]) + (prod(x[start : end + 1]),) + tuple(x[end + 1 :])]


register("Flatten", shape=_flatten, description="flatten axes", emitter="FlattenEmitter")


def _reshape(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    p = layer.param.reshape_param
    x = bottoms[0]
    dims = list(p.shape.dim)
    start = p.axis if p.axis >= 0 else len(x) + p.axis + 1
    if not 0 <= start <= len(x):
        raise fail(f"axis {p.axis} is out of range for input {fmt_shape(x)}", "reshape_param.axis")
    if p.num_axes < -1:
        raise fail("num_axes must be -1 or non-negative", "reshape_param.num_axes")
    end = len(x) if p.num_axes == -1 else start + p.num_axes
    if end > len(x):
        raise fail(f"axis + num_axes exceed input {fmt_shape(x)}", "reshape_param.num_axes")
    if sum(1 for d in dims if d == -1) > 1:
        raise fail("at most one dimension may be -1", "reshape_param.shape")
    replaced = list(x[start:end])
    new: list[int] = []
    for i, d in enumerate(dims):
        if d == 0:
            if start + i >= len(x):
                raise fail(f"dim {i} is 0 (copy) but input {fmt_shape(x)} has no axis {start + i}",
                           "reshape_param.shape")  # fmt: skip
            new.append(x[start + i])
        elif d < -1:
            raise fail(f"invalid dimension {d}", "reshape_param.shape")
        else:
            new.append(d)
    total = prod(replaced)
    if -1 in new:
        known = prod(v for v in new if v != -1)
        if known == 0 or total % known:
            raise fail(f"cannot infer -1: {total} elements do not divide by {known}",
                       "reshape_param.shape")  # fmt: skip
        new[new.index(-1)] = total // known
    if prod(new) != total:
        raise fail(f"reshape of {fmt_shape(x)} to {fmt_shape(tuple(new))} changes the element count",
                   "reshape_param.shape")  # fmt: skip
    return [tuple(x[:start]) + tuple(new) + tuple(x[end:])]


register("Reshape", shape=_reshape, description="reshape (0 copies, -1 infers)",
         emitter="ReshapeEmitter")  # fmt: skip


def _tile(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    p = layer.param.tile_param
    x = list(bottoms[0])
    axis = canonical_axis(p.axis, len(x), "tile_param.axis")
    if p.tiles <= 0:
        raise fail("tile_param.tiles must be positive", "tile_param.tiles")
    x[axis] *= p.tiles
    return [tuple(x)]


register("Tile", shape=_tile, description="repeat along an axis", emitter="TileEmitter")


# ---------------------------------------------------------------------------------------------
# Outputs: softmax, argmax, reductions, losses, metrics
# ---------------------------------------------------------------------------------------------


def _softmax(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    canonical_axis(layer.param.softmax_param.axis, len(bottoms[0]), "softmax_param.axis")
    return [bottoms[0]]


register("Softmax", shape=_softmax, description="softmax", emitter="SoftmaxEmitter")


def _argmax(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    p = layer.param.argmax_param
    x = bottoms[0]
    if p.HasField("axis"):
        axis = canonical_axis(p.axis, len(x), "argmax_param.axis")
        if p.top_k > x[axis]:
            raise fail(f"top_k {p.top_k} exceeds axis size {x[axis]}", "argmax_param.top_k")
        out = list(x)
        out[axis] = p.top_k
        return [tuple(out)]
    if p.top_k > per_image(x):
        raise fail(f"top_k {p.top_k} exceeds {per_image(x)} values per image", "argmax_param.top_k")
    out = [1] * max(3, len(x))
    out[0] = x[0]
    out[1] = 2 if p.out_max_val else 1
    out[2] = p.top_k
    return [tuple(out)]


register("ArgMax", shape=_argmax, description="indices of the largest values",
         emitter="ArgMaxEmitter")  # fmt: skip


def _reduction(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    axis = canonical_axis(layer.param.reduction_param.axis, len(bottoms[0]), "reduction_param.axis")
    return [tuple(bottoms[0][:axis])]


register("Reduction", shape=_reduction, description="sum/mean/... over trailing axes",
         emitter="ReductionEmitter")  # fmt: skip


def _loss(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    out: list[Shape] = [()]
    if len(layer.param.top) > 1:
        out.append(bottoms[0])  # SoftmaxWithLoss exposes the probabilities as a second top
    return out


register("SoftmaxWithLoss", "EuclideanLoss", "SigmoidCrossEntropyLoss", "ContrastiveLoss",
         "HingeLoss", "InfogainLoss", "MultinomialLogisticLoss", shape=_loss, bottoms=(2, 3),
         tops=(0, 2), description="training loss", emitter="TrainingOnlyEmitter")  # fmt: skip


def _accuracy(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    p = layer.param.accuracy_param
    x = bottoms[0]
    axis = canonical_axis(p.axis, len(x), "accuracy_param.axis")
    if p.top_k > x[axis]:
        raise fail(f"top_k {p.top_k} exceeds the {x[axis]} classes", "accuracy_param.top_k")
    out: list[Shape] = [()]
    if len(layer.param.top) > 1:
        out.append((x[axis],))
    return out


register("Accuracy", shape=_accuracy, bottoms=(2, 2), tops=(1, 2),
         description="classification accuracy", emitter="TrainingOnlyEmitter")  # fmt: skip
register("Silence", shape=lambda layer, b: [], bottoms=(1, None), tops=(0, 0),
         description="consumes blobs", emitter="TrainingOnlyEmitter")  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Types cocotune knows but does not support, and why (reported all at once)
# ---------------------------------------------------------------------------------------------

for _type, _why in {
    "AnnotatedData": "SSD fork (weiliu89/caffe): reads images with boxes, samples and distorts them",
    "VideoData": "SSD fork (weiliu89/caffe): reads frames from a video or webcam",
    "PriorBox": "SSD fork (weiliu89/caffe): generates the default (prior) boxes",
    "Permute": "SSD fork (weiliu89/caffe): axis permutation of box predictions",
    "Normalize": "SSD fork (weiliu89/caffe): L2 normalisation with a learned scale",
    "MultiBoxLoss": "SSD fork (weiliu89/caffe): box matching, hard negative mining, SSD loss",
    "DetectionOutput": "SSD fork (weiliu89/caffe): box decoding and non-maximum suppression",
    "DetectionEvaluate": "SSD fork (weiliu89/caffe): detection mAP metric",
    "ROIPooling": "Faster R-CNN fork (rbgirshick/caffe-fast-rcnn): region-of-interest pooling",
    "SmoothL1Loss": "Faster R-CNN fork (rbgirshick/caffe-fast-rcnn): box regression loss",
    "Proposal": "Faster R-CNN C++ forks: region proposals with NMS",
    "PSROIPooling": "R-FCN fork (daijifeng001/caffe-rfcn): position-sensitive ROI pooling",
    "Python": "Python layer: runs user code that cocotune cannot see",
    "Interp": "DeepLab/PSPNet forks: bilinear interpolation",
    "Upsample": "SegNet fork (alexgkendall/caffe-segnet): unpooling",
    "Reorg": "YOLO forks: space-to-depth reorganisation",
    "Region": "YOLO forks: region (box) output",
    "HDF5Output": "writes blobs to disk (no forward result)",
    "Im2col": "im2col (internal helper layer)",
    "SPP": "spatial pyramid pooling",
    "Recurrent": "recurrent layer",
    "RNN": "recurrent layer",
    "LSTM": "recurrent layer",
    "LSTMUnit": "recurrent layer",
    "BatchReindex": "batch reindexing",
    "Filter": "batch filtering",
    "Parameter": "parameter blob layer",
}.items():
    register(_type, unsupported=_why)


# ---------------------------------------------------------------------------------------------
# Running the rules over a net
# ---------------------------------------------------------------------------------------------


def infer_shapes(net: Net, input_shapes: dict[str, Shape] | None = None) -> None:
    """Fill ``blob.shape``, ``layer.params`` and ``layer.macs`` for every layer, in order.

    ``input_shapes`` overrides (or supplies) the shape of blobs produced by data layers.

    Raises:
        ShapeError: naming the layer, the shapes involved and pointing at the field.
    """
    given = dict(input_shapes or {})
    for layer in net.layers:
        spec = LAYER_RULES[layer.type]
        in_shapes = [b.shape for b in layer.inputs]
        _check_counts(net, layer, spec)
        try:
            if not layer.inputs and any(t in given for t in layer.tops):
                out = _given_shapes(layer, spec, given)
            else:
                out = spec.shape(layer, in_shapes)
            cost = spec.cost(layer, in_shapes, out) if spec.cost else Cost()
        except NeedsInputShape as exc:
            detail = exc.message or f"give it with --input-shape {layer.tops[0]}=N,C,H,W"
            raise net.source.error_at(
                ShapeError,
                f"layer '{layer.name}' ({layer.type}) reads its data shape from its source; "
                + detail,
                layer.pos("type"),
            ) from None
        except _LayerShapeError as exc:
            inputs = (
                ", ".join(f"'{b.name}' {fmt_shape(b.shape)}" for b in layer.inputs) or "no inputs"
            )
            raise net.source.error_at(
                ShapeError,
                f"layer '{layer.name}' ({layer.type}): {exc.message} [inputs: {inputs}]",
                layer.pos(exc.field_path, exc.index),
            ) from None
        for blob, shape in zip(layer.outputs, out):
            if any(d < 0 for d in shape):
                raise net.source.error_at(
                    ShapeError,
                    f"layer '{layer.name}' ({layer.type}): negative dimension in {shape}",
                    layer.pos(),
                )
            blob.shape = tuple(int(d) for d in shape)
        layer.params, layer.macs = cost.params, cost.macs
        if layer.shape_from:
            note = f"layer '{layer.name}' ({layer.type}): {layer.shape_from}"
            if note not in net.notes:
                net.notes.append(note)


def _given_shapes(layer: Layer, spec: LayerRule, given: dict[str, Shape]) -> list[Shape]:
    """Shapes of a data layer's tops when the user supplied some of them (--input-shape)."""
    try:
        default: list[Shape] | None = spec.shape(layer, [])
    except (NeedsInputShape, _LayerShapeError):
        default = None
    layer.shape_from = None  # the user's --input-shape wins over what the file says
    out: list[Shape] = []
    for i, top in enumerate(layer.tops):
        if top in given:
            out.append(tuple(given[top]))
        elif default is not None:
            out.append(default[i])
        elif i == 1 and out and out[0]:
            out.append((out[0][0],))  # the label blob of a data layer: one label per image
        else:
            raise NeedsInputShape()
    return out


def _check_counts(net: Net, layer: Layer, spec: LayerRule) -> None:
    for what, count, (lo, hi) in (
        ("inputs (bottom)", len(layer.inputs), spec.bottoms),
        ("outputs (top)", len(layer.outputs), spec.tops),
    ):
        if count < lo or (hi is not None and count > hi):
            want = f"{lo}" if lo == hi else (f"at least {lo}" if hi is None else f"{lo} to {hi}")
            raise net.source.error_at(
                ShapeError,
                f"layer '{layer.name}' ({layer.type}) has {count} {what}; it takes {want}",
                layer.pos("bottom" if "bottom" in what else "top"),
            )
