"""The net as cocotune reasons about it: layers in order, blobs with producer and consumers.

Caffe lets a layer write its output over its input ("in-place", top == bottom at the same
index). The IR keeps Caffe's blob *names* for users, and gives every write its own
:class:`Blob` *version* so that graph questions ("who consumes conv1's output?") have one answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cocotune.errors import NetError, Position

if TYPE_CHECKING:  # annotations only: the IR must not import the parser (and Lark) to exist
    from cocotune._proto.caffe_pb2 import LayerParameter, NetParameter
    from cocotune.frontend.source import Source
    from cocotune.frontend.to_proto import PositionTree
    from cocotune.frontend.upgrade import LayerRecord

Shape = tuple[int, ...]


@dataclass(eq=False)
class Blob:
    """One value of a named Caffe blob: written by ``producer``, read by ``consumers``."""

    name: str
    version: int
    producer: Layer | None
    consumers: list[Layer] = field(default_factory=list)
    shape: Shape | None = None

    def __repr__(self) -> str:
        return f"Blob({self.name!r}#{self.version}, shape={self.shape})"

    @property
    def inferred_shape(self) -> Shape:
        """``shape`` where shape inference has run; a net loaded with ``infer=False`` has none."""
        if self.shape is None:
            raise ValueError(f"blob '{self.name}' has no shape: shapes were not inferred")
        return self.shape


@dataclass(eq=False)
class Layer:
    """A Caffe layer with its parameters (``param``) and place."""

    index: int
    param: LayerParameter
    positions: PositionTree
    module: str | None
    inputs: list[Blob] = field(default_factory=list)
    outputs: list[Blob] = field(default_factory=list)
    params: int = 0
    macs: int = 0
    fork: str | None = None  # set when the layer uses a Caffe-fork extension
    shape_from: str | None = None  # a data layer's shape inferred from its fields: from which

    @property
    def name(self) -> str:
        return self.param.name

    @property
    def type(self) -> str:
        return self.param.type

    @property
    def bottoms(self) -> list[str]:
        return list(self.param.bottom)

    @property
    def tops(self) -> list[str]:
        return list(self.param.top)

    @property
    def in_place(self) -> bool:
        return any(
            i < len(self.param.bottom) and self.param.bottom[i] == t
            for i, t in enumerate(self.param.top)
        )

    def pos(self, path: str = "", index: int = 0) -> Position | None:
        """Where ``path`` (e.g. 'convolution_param.kernel_size') was written in this layer."""
        if path:
            found = self.positions.find(path, index)
            if found is not None:
                return found
        return self.positions.find("name") or self.positions.find("type")

    def __repr__(self) -> str:
        return f"Layer({self.name!r}, {self.type!r})"


@dataclass
class Module:
    """A group of consecutive layers that is pruned with one rate (docs/design.md §2)."""

    name: str
    position: Position
    layers: list[Layer]


@dataclass
class Net:
    """A parsed, upgraded, phase-filtered Caffe net with (after inference) shapes."""

    name: str
    source: Source
    layers: list[Layer]
    modules: list[Module]
    blobs: list[Blob]
    phase: str = "TEST"
    # What the user should know that is not an error: input shapes inferred from data-layer
    # fields, unsupported parts of layers the phase leaves out (printed by ``check``).
    notes: list[str] = field(default_factory=list)

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def module(self, name: str) -> Module:
        for mod in self.modules:
            if mod.name == name:
                return mod
        raise KeyError(name)

    @property
    def module_names(self) -> list[str]:
        return [m.name for m in self.modules]

    def final_blobs(self) -> dict[str, Blob]:
        """The last version of every blob name."""
        out: dict[str, Blob] = {}
        for blob in self.blobs:
            out[blob.name] = blob
        return out

    def output_blobs(self) -> list[Blob]:
        """Blobs no layer reads (Caffe's net outputs), in order of production."""
        return [b for b in self.blobs if not b.consumers and b.producer is not None]

    def to_net_parameter(self) -> NetParameter:
        """The (upgraded, phase-filtered) net as a caffe_pb2.NetParameter, rules dropped."""
        from cocotune._proto import caffe_pb2

        out = caffe_pb2.NetParameter(name=self.name)
        for layer in self.layers:
            copy = out.layer.add()
            copy.CopyFrom(layer.param)
            del copy.include[:]
            del copy.exclude[:]
        return out


def build_net(
    name: str,
    source: Source,
    records: Sequence[LayerRecord],
    module_positions: dict[str, Position],
    phase: str,
    excluded: Sequence[LayerRecord] = (),
) -> Net:
    """Connect layers through their blobs, checking what Caffe's Net::Init checks (and more).

    Raises:
        NetError: duplicate layer names, undefined bottoms, a top produced twice.
    """
    layers: list[Layer] = []
    blobs: list[Blob] = []
    current: dict[str, Blob] = {}
    produced_by: dict[str, Layer] = {}
    seen_names: dict[str, Layer] = {}
    for rec in records:
        layer = Layer(len(layers), rec.param, rec.positions, rec.module)
        if not layer.name:
            raise source.error_at(
                NetError, f"a {layer.type or 'layer'} layer has no name", layer.pos("type")
            )
        if layer.name in seen_names:
            first = seen_names[layer.name].pos()
            raise source.error_at(
                NetError,
                f"duplicate layer name '{layer.name}'"
                + (f" (first at line {first.line})" if first else ""),
                layer.pos("name"),
            )
        if not layer.type:
            raise source.error_at(NetError, f"layer '{layer.name}' has no type", layer.pos())
        seen_names[layer.name] = layer
        for i, bottom in enumerate(layer.param.bottom):
            blob = current.get(bottom)
            if blob is None:
                close = _closest(bottom, list(current))
                filtered = [r.param.name for r in excluded if bottom in r.param.top]
                if filtered:
                    hint = (
                        f" (layer '{filtered[0]}' produces it but its include/exclude rules "
                        f"leave it out of the {phase} phase; try --phase or --stage)"
                    )
                else:
                    hint = f" (did you mean '{close}'?)" if close else ""
                raise source.error_at(
                    NetError,
                    f"layer '{layer.name}' ({layer.type}) reads blob '{bottom}', which no "
                    f"earlier layer produces" + hint,
                    layer.pos("bottom", i),
                )
            layer.inputs.append(blob)
            blob.consumers.append(layer)
        for i, top in enumerate(layer.param.top):
            in_place = i < len(layer.param.bottom) and layer.param.bottom[i] == top
            if top in produced_by and not in_place:
                other = produced_by[top]
                raise source.error_at(
                    NetError,
                    f"blob '{top}' is produced twice: by layer '{other.name}' and by layer "
                    f"'{layer.name}' (only in-place layers, with top == bottom, may rewrite a blob)",
                    layer.pos("top", i),
                )
            version = current[top].version + 1 if top in current else 0
            blob = Blob(top, version, layer)
            blobs.append(blob)
            layer.outputs.append(blob)
            current[top] = blob
            produced_by.setdefault(top, layer)
        layers.append(layer)
    modules: dict[str, Module] = {}
    for layer in layers:
        if layer.module is not None:
            mod = modules.get(layer.module)
            if mod is None:
                mod = Module(layer.module, module_positions[layer.module], [])
                modules[layer.module] = mod
            mod.layers.append(layer)
    return Net(name, source, layers, list(modules.values()), blobs, phase)


def _closest(word: str, options: list[str]) -> str | None:
    import difflib

    match = difflib.get_close_matches(word, options, n=1, cutoff=0.7)
    return match[0] if match else None
