"""Types that combine, split or rearrange blobs: ShuffleChannel, Eltwise, Axpy, Concat, Slice,
Split, Crop, Flatten, Reshape, Tile.

No learned blobs; their rules are shape bookkeeping (axes, slice points, offsets, ``0``/``-1``
reshape dims) checked the way Caffe's ``Reshape`` methods check them.
"""

from __future__ import annotations

from cocotune.ir.catalogue import register
from cocotune.ir.net import Layer, Shape
from cocotune.ir.rule_base import Cost, canonical_axis, fail, fmt_shape, per_image, prod
from cocotune.ir.rules._common import _CW, _channels


def _shuffle_shape(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    group = layer.param.shuffle_channel_param.group
    c = _channels(bottoms[0])
    if group <= 0 or c % group:
        raise fail(
            f"channels ({c}) are not divisible by group ({group})", "shuffle_channel_param.group"
        )
    return [bottoms[0]]


register(
    "ShuffleChannel",
    shape=_shuffle_shape,
    fork="ShuffleNet fork",
    description="channel shuffle",
    emitter="ShuffleChannelEmitter",
)


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


register(
    "Concat", shape=_concat, bottoms=(1, None), description="concatenation", emitter="ConcatEmitter"
)


def _slice(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    p = layer.param.slice_param
    x = bottoms[0]
    axis = p.slice_dim if p.HasField("slice_dim") else p.axis
    axis = canonical_axis(axis, len(x), "slice_param.axis")
    n_tops = len(layer.param.top)
    size = x[axis]
    if len(p.slice_point):
        if len(p.slice_point) != n_tops - 1:
            raise fail(
                f"{len(p.slice_point)} slice points for {n_tops} tops (need {n_tops - 1})",
                "slice_param.slice_point",
            )
        points = [0, *p.slice_point, size]
        if any(b <= a for a, b in zip(points, points[1:])):
            raise fail(
                f"slice points {list(p.slice_point)} must increase within 1..{size - 1}",
                "slice_param.slice_point",
            )
        sizes = [b - a for a, b in zip(points, points[1:])]
    else:
        if size % n_tops:
            raise fail(f"axis {axis} of size {size} does not split into {n_tops} equal parts")
        sizes = [size // n_tops] * n_tops
    return [tuple(x[:axis]) + (s,) + tuple(x[axis + 1 :]) for s in sizes]


register(
    "Slice", shape=_slice, tops=(1, None), description="slice along an axis", emitter="SliceEmitter"
)
register(
    "Split",
    shape=lambda layer, b: [b[0]] * len(layer.param.top),
    tops=(1, None),
    pruning=_CW,
    description="copies a blob",
    emitter="SplitEmitter",
)


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
            raise fail(
                f"crop of {ref[i]} at offset {off} exceeds axis {i} of size {x[i]}",
                "crop_param.offset",
            )
        out[i] = ref[i]
    return [tuple(out)]


register(
    "Crop", shape=_crop, bottoms=(2, 2), description="crop to a reference", emitter="CropEmitter"
)


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
                raise fail(
                    f"dim {i} is 0 (copy) but input {fmt_shape(x)} has no axis {start + i}",
                    "reshape_param.shape",
                )
            new.append(x[start + i])
        elif d < -1:
            raise fail(f"invalid dimension {d}", "reshape_param.shape")
        else:
            new.append(d)
    total = prod(replaced)
    if -1 in new:
        known = prod(v for v in new if v != -1)
        if known == 0 or total % known:
            raise fail(
                f"cannot infer -1: {total} elements do not divide by {known}", "reshape_param.shape"
            )
        new[new.index(-1)] = total // known
    if prod(new) != total:
        raise fail(
            f"reshape of {fmt_shape(x)} to {fmt_shape(tuple(new))} changes the element count",
            "reshape_param.shape",
        )
    return [tuple(x[:start]) + tuple(new) + tuple(x[end:])]


register(
    "Reshape", shape=_reshape, description="reshape (0 copies, -1 infers)", emitter="ReshapeEmitter"
)


def _tile(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    p = layer.param.tile_param
    x = list(bottoms[0])
    axis = canonical_axis(p.axis, len(x), "tile_param.axis")
    if p.tiles <= 0:
        raise fail("tile_param.tiles must be positive", "tile_param.tiles")
    x[axis] *= p.tiles
    return [tuple(x)]


register("Tile", shape=_tile, description="repeat along an axis", emitter="TileEmitter")
