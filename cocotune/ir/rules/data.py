"""Data and input layers: Input, Data/HDF5Data/WindowData, ImageData, MemoryData, DummyData.

Their shapes come from the file when it says them (batch_size, crop_size, mean_value...);
what lives only in a database raises :class:`~cocotune.ir.rule_base.NeedsInputShape`, whose
message says what the file determined and asks for the rest with ``--input-shape``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cocotune.ir.catalogue import register
from cocotune.ir.net import Layer, Shape
from cocotune.ir.rule_base import NeedsInputShape, fail, fmt_shape

if TYPE_CHECKING:  # annotations only: the IR must not import the parser (and Lark) to exist
    from cocotune.frontend.to_proto import PositionTree

#: One dimension of a data layer as its fields say it: (value or None when unknown, from where).
Dim = tuple[int | None, str]


def _input(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    shapes = layer.param.input_param.shape
    n_tops = len(layer.param.top)
    if len(shapes) not in (1, n_tops):
        raise fail(f"input_param has {len(shapes)} shapes for {n_tops} tops", "input_param")
    return [tuple(shapes[0 if len(shapes) == 1 else i].dim) for i in range(n_tops)]


register(
    "Input",
    shape=_input,
    bottoms=(0, 0),
    tops=(1, None),
    description="network input",
    emitter="InputEmitter",
)


def _with_label(layer: Layer, data: Shape) -> list[Shape]:
    out = [data]
    if len(layer.param.top) > 1:
        out.append((data[0],))
    return out


def _line(layer: Layer, path: str, default: object = None) -> str:
    """'line N' where the field at ``path`` is written, or 'default ...' when it is not."""
    fallback = "default" if default is None else f"default {default}"
    tree: PositionTree | None = layer.positions
    parts = path.split(".")
    for k, part in enumerate(parts):
        occurrences = tree.fields.get(part) if tree is not None else None
        if not occurrences:
            return fallback
        if k == len(parts) - 1:
            return f"line {occurrences[0].value.line}"
        tree = occurrences[0].children
    return fallback  # pragma: no cover - the loop returns


def _data_shape(layer: Layer, dims: list[Dim], unknown_hint: str) -> Shape:
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
    shape = tuple(int(v) for _, v, _ in known)  # nothing missing: every dim, in order
    layer.shape_from = f"'{top}' {fmt_shape(shape)} inferred from the file: {said}"
    return shape


def _transform_dims(layer: Layer) -> tuple[Dim, Dim]:
    """(H, W) from transform_param.crop_size: Caffe crops every image to crop_size."""
    crop = layer.param.transform_param.crop_size
    if crop:
        why = f"transform_param.crop_size ({_line(layer, 'transform_param.crop_size')})"
        return (crop, why), (crop, why)
    return (None, ""), (None, "")


def _mean_value_channels(layer: Layer) -> Dim:
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
    n: Dim
    c: Dim
    h: Dim
    wd: Dim
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
        n = (
            p.hdf5_data_param.batch_size or None,
            f"hdf5_data_param.batch_size ({_line(layer, 'hdf5_data_param.batch_size')})",
        )
        c = h = wd = (None, "")
        hint = "they are the shape of the datasets in the HDF5 files"
    else:
        n = (
            p.data_param.batch_size or None,
            f"data_param.batch_size ({_line(layer, 'data_param.batch_size')})",
        )
        c = _mean_value_channels(layer)
        h, wd = _transform_dims(layer)
        hint = "they are stored with the images in the database"
        if not c[0]:
            hint += "; one mean_value per channel would tell C"
        if not h[0]:
            hint += "; transform_param.crop_size would tell H and W"
    return _with_label(layer, _data_shape(layer, [n, c, h, wd], hint))


register(
    "Data",
    "HDF5Data",
    "WindowData",
    shape=_database_data,
    bottoms=(0, 0),
    tops=(1, 2),
    description="data reader",
    emitter="InputEmitter",
)


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


register(
    "ImageData",
    shape=_image_data,
    bottoms=(0, 0),
    tops=(1, 2),
    description="image list reader",
    emitter="InputEmitter",
)


def _memory_data(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    p = layer.param.memory_data_param
    crop = layer.param.transform_param.crop_size
    h, w = (crop, crop) if crop else (p.height, p.width)
    return _with_label(layer, (p.batch_size, p.channels, h, w))


register(
    "MemoryData",
    shape=_memory_data,
    bottoms=(0, 0),
    tops=(1, 2),
    description="in-memory data",
    emitter="InputEmitter",
)


def _dummy_data(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    p = layer.param.dummy_data_param
    n_tops = len(layer.param.top)
    if len(p.shape):
        shapes = [tuple(s.dim) for s in p.shape]
    else:
        shapes = (
            [
                (
                    p.num[i] if i < len(p.num) else p.num[0],
                    p.channels[i] if i < len(p.channels) else p.channels[0],
                    p.height[i] if i < len(p.height) else p.height[0],
                    p.width[i] if i < len(p.width) else p.width[0],
                )
                for i in range(max(len(p.num), 1))
            ]
            if len(p.num)
            else []
        )
    if len(shapes) not in (1, n_tops):
        raise fail(f"dummy_data_param gives {len(shapes)} shapes for {n_tops} tops")
    return [shapes[0 if len(shapes) == 1 else i] for i in range(n_tops)]


register(
    "DummyData",
    shape=_dummy_data,
    bottoms=(0, 0),
    tops=(1, None),
    description="constant data",
    emitter="InputEmitter",
)
