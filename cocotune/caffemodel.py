"""Caffe's binary weights (``.caffemodel``): which blobs a layer stores, reading and writing them.

A caffemodel is a serialised ``NetParameter`` whose layers carry their learnable blobs
(``LayerParameter.blobs``, or ``V1LayerParameter.blobs`` in files from 2014-2015, or the V0
``layers { layer { blobs } }`` form before that). Caffe matches them to the net *by layer name*
(``Net::CopyTrainedLayersFrom``) and checks every blob's shape (``Blob::ShapeEquals``); this
module does the same, with messages that name the layer, the blob and both shapes instead of a
``CHECK`` failure.

Arrays are float32 in Caffe's own layout (convolution weights ``(out, in/group, kh, kw)``,
inner-product weights ``(num_output, K)``, BatchNorm's *un-normalised* running sums and scale
factor). Converting them to another framework's layout is the job of the converter, not of
this module.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from google.protobuf.message import DecodeError

from cocotune._proto import caffe_pb2
from cocotune.errors import WeightsError, read_user_bytes
from cocotune.files import write_bytes_atomic
from cocotune.frontend.upgrade import V0_TYPE_NAMES, V1_TYPE_NAMES
from cocotune.ir.catalogue import CATALOGUE, BlobSpec, field_value, pruning_role
from cocotune.ir.net import Layer, Net, Shape
from cocotune.ir.shapes import fmt_shape

__all__ = [
    "BlobSpec",
    "CaffemodelWeights",
    "expected_blob_shapes",
    "expected_blobs",
    "random_weights",
    "read_caffemodel",
    "write_caffemodel",
]

#: How many names an error lists before it says "and N more".
_LIST_LIMIT = 8


# ---------------------------------------------------------------------------------------------
# Which blobs a layer stores
# ---------------------------------------------------------------------------------------------


def expected_blobs(layer: Layer) -> list[BlobSpec]:
    """The learnable blobs Caffe stores for ``layer``, in Caffe's order and layout.

    The shapes are those each layer's ``LayerSetUp`` allocates, computed from the layer's
    parameters and its input shapes (so the net must have gone through shape inference).
    Types without learnable parameters give ``[]``.

    Note:
        A channel-shared PReLU slope and a Scale with ``num_axes: 0`` are 0-axis blobs
        (shape ``()``, one value), exactly as Caffe allocates them (``Blob(vector<int>(0))``).

    Raises:
        WeightsError: the layer's input shapes are unknown.
    """
    entry = CATALOGUE.get(layer.type)
    if entry is None or entry.blobs is None:
        return []
    shapes = [b.shape for b in layer.inputs]
    known = [s for s in shapes if s is not None]
    if not shapes or len(known) < len(shapes):
        raise WeightsError(
            f"layer '{layer.name}' ({layer.type}): its input shapes are unknown, so its weight "
            "shapes cannot be computed (load the net with shape inference)"
        )
    return entry.blobs(layer, [tuple(s) for s in known])


def expected_blob_shapes(layer: Layer) -> list[Shape]:
    """Shapes of :func:`expected_blobs` (what ``Net::CopyTrainedLayersFrom`` checks against)."""
    return [spec.shape for spec in expected_blobs(layer)]


def _parameterised_layers(net: Net) -> list[tuple[Layer, list[BlobSpec]]]:
    out = []
    for layer in net.layers:
        specs = expected_blobs(layer)
        if specs:
            out.append((layer, specs))
    return out


def _listing(names: Sequence[str], limit: int = _LIST_LIMIT) -> str:
    """``a, b, c`` or ``a, b, c, ... (12 in all)``: long lists stay one readable line."""
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f", ... ({len(names)} in all)"


def _blob_label(layer_name: str, layer_type: str, index: int, spec: BlobSpec) -> str:
    return f"layer '{layer_name}' ({layer_type}) blob {index} ({spec.name})"


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


class CaffemodelWeights(dict):
    """The weights read from a caffemodel: ``{layer name: [float32 arrays in Caffe layout]}``.

    It is a plain ``dict`` so that callers can index it directly; the extra attributes say
    what was noticed but not fatal, because Caffe itself silently ignores those things.

    Attributes:
        warnings: one sentence per ignored oddity (layers the net does not have, duplicates).
        file_net_name: the ``name`` the caffemodel's NetParameter carries ("" if none).
    """

    def __init__(self, weights=(), warnings=(), file_net_name: str = "") -> None:
        super().__init__(weights)
        self.warnings: list[str] = list(warnings)
        self.file_net_name = file_net_name

    @property
    def weights(self) -> dict[str, list[np.ndarray]]:
        """The weights as a plain dict (a copy of the mapping, sharing the arrays)."""
        return dict(self)


class _FileLayer(NamedTuple):
    name: str
    type: str
    blobs: list[caffe_pb2.BlobProto]


def read_caffemodel(path: str | Path, net: Net) -> CaffemodelWeights:
    """Read the weights of ``net``'s parameterised layers from a binary caffemodel.

    Layers are matched by name, as Caffe does. Every layer of ``net`` that has learnable blobs
    must be in the file with blobs of the expected shapes; layers of the file that the net does
    not have are ignored and reported in ``.warnings``. Blobs written with the legacy 4-D
    num/channels/height/width fields are reshaped by Caffe's rule (``(1, 1, 1, N)`` is an
    ``(N,)`` bias, ``(1, 1, N, K)`` an ``(N, K)`` matrix), and ``double_data`` is accepted.

    Parameters:
        path: the ``.caffemodel`` file.
        net: the net, with shapes inferred (``load_net``), whose weights to read.

    Returns:
        A :class:`CaffemodelWeights` (a dict ``{layer name: [np.float32 arrays]}``).

    Raises:
        WeightsError: unreadable or corrupt file, a text file, the caffemodel of another net,
            missing layers, or a blob whose shape or size does not match the net.
    """
    shown = str(path)
    model = _parse_net_parameter(path)
    file_layers = _file_layers(model)
    if not file_layers:
        raise WeightsError(
            f"'{shown}' is not a caffemodel: it parses but holds no layers "
            "(is it another kind of protobuf file?)"
        )
    warnings: list[str] = []
    by_name: dict[str, _FileLayer] = {}
    duplicates: list[str] = []
    for fl in file_layers:
        if fl.name in by_name and (fl.blobs or by_name[fl.name].blobs):
            duplicates.append(fl.name)
        if fl.blobs or fl.name not in by_name:
            by_name[fl.name] = fl
    if duplicates:
        warnings.append(
            f"caffemodel '{shown}' has several layers named {_listing(sorted(set(duplicates)))}; "
            "the last one with weights is used (as Caffe does)"
        )

    wanted = _parameterised_layers(net)
    net_names = {layer.name for layer in net.layers}
    present = [layer for layer, _ in wanted if layer.name in by_name and by_name[layer.name].blobs]
    if wanted and not present:
        with_blobs = [fl.name for fl in file_layers if fl.blobs]
        has = (
            f"it has: {_listing(with_blobs, 5)}" if with_blobs else "it has no layers with weights"
        )
        notes = []
        if model.name and model.name != net.name:
            notes.append(f"the caffemodel's net is named '{model.name}'; this net is '{net.name}'")
        raise WeightsError(
            f"caffemodel '{shown}' holds none of this net's layers ({has})", notes=notes
        )
    missing = [layer.name for layer, _ in wanted if layer.name not in by_name]
    if missing:
        raise WeightsError(
            f"caffemodel '{shown}' has no weights for {len(missing)} of the net's "
            f"{len(wanted)} layers with weights: {_listing(missing)}",
            notes=["layers are matched by name; was the net renamed since it was trained?"],
        )

    weights: dict[str, list[np.ndarray]] = {}
    problems: list[tuple[str, WeightsError]] = []
    for layer, specs in wanted:
        try:
            weights[layer.name] = _read_layer(layer, specs, by_name[layer.name])
        except WeightsError as exc:
            problems.append((layer.name, exc))
    # A file layer with weights whose net layer stores none: Caffe refuses ("Incompatible
    # number of blobs"), and so do we, because it means the two nets differ.
    for layer in net.layers:
        stored = by_name.get(layer.name)
        if (
            stored is not None
            and stored.blobs
            and layer.name not in weights
            and not _has_specs(layer)
        ):
            message = (
                f"layer '{layer.name}' ({layer.type}) stores no weights, but the caffemodel "
                f"has {len(stored.blobs)} blob(s) for it (there it is a {stored.type or 'layer'})"
            )
            problems.append((layer.name, WeightsError(message)))
    if problems:
        first = problems[0][1]
        if len(problems) > 1:
            first.notes.append(
                f"{len(problems) - 1} more layer(s) do not match either: "
                + _listing([name for name, _ in problems[1:]])
            )
        raise first

    extra = [fl.name for fl in file_layers if fl.blobs and fl.name not in net_names]
    if extra:
        warnings.append(
            f"caffemodel '{shown}' has weights for {len(extra)} layer(s) this net does not "
            f"have, ignored: {_listing(extra)}"
        )
    return CaffemodelWeights(weights, warnings, model.name)


def _has_specs(layer: Layer) -> bool:
    return bool(expected_blobs(layer))


def _parse_net_parameter(path: str | Path) -> caffe_pb2.NetParameter:
    """Read and parse the file, turning each way it can fail into one clear sentence."""
    shown = str(path)
    data = read_user_bytes(path, "caffemodel", WeightsError)
    if not data:
        raise WeightsError(f"caffemodel '{shown}' is empty")
    if _looks_like_text(data):
        hint = (
            " (it looks like a prototxt: give the net as the prototxt and the binary "
            ".caffemodel as the weights)"
            if b"layer" in data or b"name:" in data
            else ""
        )
        raise WeightsError(f"'{shown}' is a text file, not a binary caffemodel{hint}")
    model = caffe_pb2.NetParameter()
    try:
        model.ParseFromString(data)
    except DecodeError:
        raise WeightsError(
            f"'{shown}' is not a caffemodel, or it is truncated or corrupt "
            f"({len(data)} bytes that do not parse as a Caffe NetParameter)"
        ) from None
    return model


def _looks_like_text(data: bytes) -> bool:
    """True when the start of the file is printable UTF-8 text.

    Why a heuristic is safe here: a binary caffemodel has length prefixes and float data
    within its first few hundred bytes, which are never all printable characters.
    """
    sample = data[:4096]
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if len(data) > len(sample) and exc.start >= len(sample) - 3:
            text = sample[: exc.start].decode("utf-8", errors="replace")  # a cut character
        else:
            return False
    return bool(text.strip()) and all(ch.isprintable() or ch in "\t\n\r\f\v" for ch in text)


def _file_layers(model: caffe_pb2.NetParameter) -> list[_FileLayer]:
    """Every layer of the file as (name, type, blobs), whatever the format version."""
    out = [_FileLayer(layer.name, layer.type, list(layer.blobs)) for layer in model.layer]
    for v1 in model.layers:
        if v1.HasField("layer"):  # V0: parameters and blobs live in the nested message
            v0 = v1.layer
            out.append(
                _FileLayer(
                    v0.name or v1.name,
                    V0_TYPE_NAMES.get(v0.type, v0.type),
                    list(v0.blobs) or list(v1.blobs),
                )
            )
        else:
            enum_name = caffe_pb2.V1LayerParameter.LayerType.Name(v1.type)
            out.append(_FileLayer(v1.name, V1_TYPE_NAMES.get(enum_name, enum_name), list(v1.blobs)))
    return out


def _read_layer(layer: Layer, specs: list[BlobSpec], fl: _FileLayer) -> list[np.ndarray]:
    if len(fl.blobs) != len(specs):
        names = ", ".join(f"{s.name} {fmt_shape(s.shape)}" for s in specs)
        other = f" (there it is a {fl.type})" if fl.type and fl.type != layer.type else ""
        raise WeightsError(
            f"layer '{layer.name}' ({layer.type}): the caffemodel has {len(fl.blobs)} blob(s) "
            f"but the net expects {len(specs)} ({names}){other}",
            notes=_count_hints(layer, len(fl.blobs), len(specs)),
        )
    return [_read_blob(layer, i, spec, blob) for i, (spec, blob) in enumerate(zip(specs, fl.blobs))]


def _count_hints(layer: Layer, found: int, expected: int) -> list[str]:
    """Why the number of blobs may differ: almost always a ``bias_term`` setting."""
    entry = CATALOGUE.get(layer.type)
    field = entry.bias_field if entry else None
    if field and abs(found - expected) == 1:
        value = field_value(layer.param, field)
        return [f"the prototxt has {field}: {str(bool(value)).lower()}; the caffemodel disagrees"]
    return []


def _proto_shape(blob: caffe_pb2.BlobProto) -> tuple[Shape, bool]:
    """The blob's shape as Caffe's ``Blob::FromProto`` reads it, and whether it is legacy 4-D."""
    if any(blob.HasField(f) for f in ("num", "channels", "height", "width")):
        return (blob.num, blob.channels, blob.height, blob.width), True
    return tuple(int(d) for d in blob.shape.dim), False


def _legacy_matches(expected: Shape, legacy: Shape) -> bool:
    """Caffe's ``ShapeEquals`` for legacy blobs: the shape, padded with leading 1s to 4 axes."""
    return len(expected) <= 4 and (1,) * (4 - len(expected)) + tuple(expected) == tuple(legacy)


def _read_blob(layer: Layer, index: int, spec: BlobSpec, blob: caffe_pb2.BlobProto) -> np.ndarray:
    found, legacy = _proto_shape(blob)
    label = _blob_label(layer.name, layer.type, index, spec)
    ok = found == spec.shape or (legacy and _legacy_matches(spec.shape, found))
    # Tools other than Caffe write a single value as (1,) where Caffe allocates a 0-axis blob.
    ok = ok or (spec.shape == () and math.prod(found) == 1)
    if not ok:
        raise WeightsError(
            f"{label}: the net expects shape {fmt_shape(spec.shape)} but the caffemodel has "
            f"{fmt_shape(found)}" + (" (legacy num x channels x height x width)" if legacy else ""),
            notes=_shape_hints(layer, spec, found),
        )
    count = math.prod(spec.shape)
    if len(blob.double_data):
        values = np.array(blob.double_data, dtype=np.float64)
    else:
        values = np.array(blob.data, dtype=np.float32)
    if values.size != count:
        raise WeightsError(
            f"{label}: shape {fmt_shape(spec.shape)} needs {count} values but the caffemodel "
            f"stores {values.size}" + (" (it has no data)" if values.size == 0 else "")
        )
    return values.astype(np.float32, copy=False).reshape(spec.shape)


def _shape_hints(layer: Layer, spec: BlobSpec, found: Shape) -> list[str]:
    n = len(spec.shape)
    if len(found) == 4 and n < 4 and all(d == 1 for d in found[: 4 - n]):
        found = found[4 - n :]  # compare a legacy blob by its trailing axes, as Caffe does
    if layer.type == "InnerProduct" and spec.name == "weights" and found == spec.shape[::-1]:
        return ["the caffemodel's matrix is transposed: check inner_product_param.transpose"]
    group = pruning_role(layer).group  # the catalogue's path of a group count, if any
    if group and spec.name == "weights" and len(found) == len(spec.shape):
        if found[0] == spec.shape[0] and found[1] != spec.shape[1] and found[2:] == spec.shape[2:]:
            return [f"input channels per group differ: check {group} and the layer's input"]
    return []


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def write_caffemodel(
    path: str | Path, net: Net, weights: Mapping[str, Sequence[np.ndarray]]
) -> None:
    """Write ``weights`` for ``net`` as a binary caffemodel that BVLC Caffe can load.

    Every layer of the net is written (as ``Net::ToProto`` does, parameters included), with
    its blobs as float32 and their ``shape`` set (never the legacy 4-D fields). The file is
    written next to ``path`` and renamed over it, so a crash never leaves half a caffemodel
    where a good one was.

    Raises:
        WeightsError: weights missing for a parameterised layer, given for a layer the net
            does not have (or that stores none), or of the wrong number or shape.
    """
    checked = _check_weights(net, weights)
    model = caffe_pb2.NetParameter()
    model.name = net.name
    for layer in net.layers:
        entry = model.layer.add()
        entry.CopyFrom(layer.param)
        del entry.blobs[:]
        for array in checked.get(layer.name, []):
            blob = entry.blobs.add()
            blob.shape.dim.extend(array.shape)
            blob.data.extend(array.ravel().tolist())  # a list is ~4x faster than ndarray here
    _atomic_write(Path(path), model.SerializeToString())


def _check_weights(
    net: Net, weights: Mapping[str, Sequence[np.ndarray]]
) -> dict[str, list[np.ndarray]]:
    wanted = _parameterised_layers(net)
    wanted_names = {layer.name for layer, _ in wanted}
    unknown = [name for name in weights if name not in wanted_names]
    if unknown:
        no_weights = [n for n in unknown if any(layer.name == n for layer in net.layers)]
        raise WeightsError(
            f"weights given for {len(unknown)} layer(s) that "
            + ("store no weights" if len(no_weights) == len(unknown) else "the net does not have")
            + f": {_listing(unknown)}"
        )
    missing = [layer.name for layer, _ in wanted if layer.name not in weights]
    if missing:
        raise WeightsError(
            f"no weights given for {len(missing)} of the net's {len(wanted)} layers with "
            f"weights: {_listing(missing)}"
        )
    out: dict[str, list[np.ndarray]] = {}
    for layer, specs in wanted:
        arrays = list(weights[layer.name])
        if len(arrays) != len(specs):
            names = ", ".join(f"{s.name} {fmt_shape(s.shape)}" for s in specs)
            raise WeightsError(
                f"layer '{layer.name}' ({layer.type}): {len(arrays)} array(s) given but the "
                f"layer stores {len(specs)} ({names})"
            )
        converted = []
        for i, (spec, array) in enumerate(zip(specs, arrays)):
            a = np.asarray(array, dtype=np.float32)
            if a.shape != spec.shape:
                raise WeightsError(
                    f"{_blob_label(layer.name, layer.type, i, spec)}: the net expects shape "
                    f"{fmt_shape(spec.shape)} but the array has {fmt_shape(a.shape)}"
                )
            if not np.all(np.isfinite(a)):
                raise WeightsError(
                    f"{_blob_label(layer.name, layer.type, i, spec)} has NaN or infinite values"
                )
            converted.append(a)
        out[layer.name] = converted
    return out


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` whole or not at all (cocotune.files), with a caffemodel's errors."""
    shown = str(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise WeightsError(f"cannot write caffemodel '{shown}': it is a directory")
    if not parent.is_dir():
        raise WeightsError(f"cannot write caffemodel '{shown}': no directory '{parent}'")
    try:
        write_bytes_atomic(path, data)
    except OSError as exc:
        raise WeightsError(f"cannot write caffemodel '{shown}': {exc.strerror or exc}") from None


# ---------------------------------------------------------------------------------------------
# Random weights (for tests, demos and pruning experiments without a trained model)
# ---------------------------------------------------------------------------------------------


def random_weights(
    net: Net, seed: int = 0, bn_scale_factor: float | None = 0.9
) -> dict[str, list[np.ndarray]]:
    """Plausible random float32 weights, in Caffe layout, for every parameterised layer.

    Plausible means activations neither explode nor vanish through a deep net: weights are
    He-normal (std ``sqrt(2 / fan_in)``), biases small, BatchNorm variances near 1 and Scale
    gammas near 1, so that conversions can be compared numerically on realistic values.

    Each layer draws from its own generator, seeded by ``seed`` and the layer's name: the
    result is deterministic, and a layer's weights do not change when other layers are added.

    Parameters:
        net: the net (with shapes inferred).
        seed: the random seed.
        bn_scale_factor: the value of BatchNorm's third blob. Caffe stores running *sums*
            (``mean * factor``, ``variance * factor``) and divides by this factor at test time;
            a value other than 1 checks that converters do too. ``None`` draws one per layer
            from U(0.5, 2).
    """
    out: dict[str, list[np.ndarray]] = {}
    for layer, specs in _parameterised_layers(net):
        rng = np.random.default_rng([seed, zlib.crc32(layer.name.encode("utf-8"))])
        out[layer.name] = [
            a.astype(np.float32) for a in _random_layer(layer, specs, rng, bn_scale_factor)
        ]
    return out


def _random_layer(
    layer: Layer, specs: list[BlobSpec], rng: np.random.Generator, bn_factor: float | None
) -> list[np.ndarray]:
    init = CATALOGUE[layer.type].init
    assert init is not None, f"{layer.type} has blobs, so its catalogue entry has an initialiser"
    return init(layer, specs, rng, bn_factor)
