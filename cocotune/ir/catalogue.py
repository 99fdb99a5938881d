"""The layer catalogue: everything cocotune knows about one Caffe type, in one entry.

Why one table: before it, a type such as PReLU was described in a dozen places (a shape rule
here, a blob list there, a random initialiser, a pruning ``if``...), and adding a type meant
finding them all. Like TVM's Caffe frontend, which keeps one table of operators, each Caffe
type is now described once, by one call to :func:`register`, next to its shape rule in the
module of its family in :mod:`cocotune.ir.rules` (types cocotune refuses:
:mod:`cocotune.ir.unsupported`):

* its shape rule and cost (parameters, MACs), and how many bottoms and tops it takes;
* the learnable blobs Caffe stores for it, their random initialisation and the field that
  switches its bias on (read by :mod:`cocotune.caffemodel`; pruning runs the blob rule on
  pruned shapes to find which axis of which blob follows the channels);
* its role in filter pruning (read by :mod:`cocotune.tuning.pruning`), which also says whether
  it is a depthwise convolution (:func:`depthwise`, read by the converter too);
* the name of the emitter that converts it (:mod:`cocotune.convert.registry` builds its table
  from these names; this package must not import it: it sits below the converter);
* or, for a type cocotune recognises but cannot handle, why.

``tests/ir/test_catalogue.py`` checks that every entry is complete (a shape rule, an emitter
or a reason, a numpy reference and a conversion case), that its field paths name real fields,
and that the modules which ask the catalogue spell out no type names of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from cocotune.ir.net import Layer, Shape

if TYPE_CHECKING:  # numpy is only needed by the initialisers themselves
    import numpy as np

    from cocotune.ir.shapes import Cost

__all__ = [
    "CATALOGUE",
    "CHANNELWISE",
    "EXIT",
    "PRODUCER",
    "BlobSpec",
    "LayerType",
    "PruningRole",
    "depthwise",
    "field_value",
    "known_unsupported",
    "pruning_role",
    "register",
    "shape_rules",
]


class BlobSpec(NamedTuple):
    """One learnable blob of a layer: a human name (for messages) and Caffe's shape."""

    name: str
    shape: Shape


ShapeFn = Callable[[Layer, list[Shape]], list[Shape]]
CostFn = Callable[[Layer, list[Shape], list[Shape]], "Cost"]
#: (layer, input shapes) -> the blobs Caffe's LayerSetUp allocates, in Caffe's order
BlobsFn = Callable[[Layer, list[Shape]], list[BlobSpec]]
#: (layer, its blob specs, generator, BatchNorm scale factor or None) -> float arrays
InitFn = Callable[[Layer, list[BlobSpec], "np.random.Generator", "float | None"], list]

# How a layer treats the channels it reads, for filter pruning (see cocotune.tuning.pruning).
PRODUCER = "prunable producer"  # its filters can go; it also reads channels as a consumer
CHANNELWISE = "channel-wise"  # output channel c depends only on input channel c
EXIT = "exit"  # mixes or reshapes channels: whatever reaches it keeps all its channels


@dataclass(frozen=True)
class PruningRole:
    """A type's role in filter pruning, and the fields that can take the role away.

    Attributes:
        kind: :data:`PRODUCER`, :data:`CHANNELWISE` or :data:`EXIT`.
        axis: field path of the axis the layer works on; unless it is the channel axis the
            layer is an exit.
        filters: field path of the output-channel count (num_output) pruning rewrites. A
            channel-wise role with ``filters`` is a depthwise convolution whatever its group
            says (the fork's ConvolutionDepthwise); see :func:`depthwise`.
        group: field path of a group count; groups other than 1 keep whole groups (exit),
            except a depthwise convolution (group == channels == filters), which is
            channel-wise.
        several_bottoms: why the layer is an exit when it reads several bottoms.
        off_axis: why the layer is an exit when ``axis`` is not the channel axis.
        exit_when: a layer-specific reason the layer is an exit after all (None: it is not).
    """

    kind: str = EXIT
    axis: str | None = None
    filters: str | None = None
    group: str | None = None
    several_bottoms: str = "mixes or reshapes channels"
    off_axis: str = "works on a non-channel axis"
    exit_when: Callable[[Layer], str | None] | None = None


@dataclass(frozen=True)
class LayerType:
    """Everything cocotune knows about one Caffe type (see the module docstring).

    ``shape`` None means the type is recognised but not supported; ``unsupported`` says why.
    """

    name: str
    shape: ShapeFn | None = None
    cost: CostFn | None = None
    bottoms: tuple[int, int | None] = (1, 1)  # (min, max); None = unbounded
    tops: tuple[int, int | None] = (1, 1)
    description: str = ""
    fork: str | None = None  # which Caffe fork defines the type, if not BVLC
    blobs: BlobsFn | None = None
    init: InitFn | None = None
    bias_field: str | None = None  # "convolution_param.bias_term": adds the last blob
    pruning: PruningRole = PruningRole()
    emitter: str | None = None  # class name of its emitter in cocotune.convert.emitters
    unsupported: str | None = None

    @property
    def channelwise(self) -> bool:
        """Output channel c depends only on input channel c (pruning follows it through)."""
        return self.pruning.kind == CHANNELWISE


#: Caffe type -> its entry, in registration order.
CATALOGUE: dict[str, LayerType] = {}


def register(*names: str, **fields) -> None:
    """Describe one or more Caffe types (they share every field but the name).

    Raises:
        ValueError: a type described twice, or a description that is half a description
            (neither a shape rule nor a reason; blobs without an initialiser; ...).
    """
    probe = LayerType(name="", **fields)
    if probe.shape is None and not probe.unsupported:
        raise ValueError(f"{names}: give a shape rule, or say why the type is unsupported")
    if (probe.blobs is None) != (probe.init is None):
        raise ValueError(f"{names}: blobs and their initialiser come together")
    if probe.unsupported and probe.emitter:
        raise ValueError(f"{names}: an unsupported type has no emitter")
    for name in names:
        if name in CATALOGUE:
            raise ValueError(f"Caffe type '{name}' is described twice")
        CATALOGUE[name] = LayerType(name=name, **fields)


class _View(Mapping):
    """A read-only, always current view of part of the catalogue (one source, no copies)."""

    def __init__(self, keep: Callable[[LayerType], bool], value: Callable[[LayerType], object]):
        self._keep = keep
        self._value = value

    def __getitem__(self, name: str):
        entry = CATALOGUE.get(name)
        if entry is None or not self._keep(entry):
            raise KeyError(name)
        return self._value(entry)

    def __iter__(self) -> Iterator[str]:
        return (name for name, entry in CATALOGUE.items() if self._keep(entry))

    def __len__(self) -> int:
        return sum(1 for entry in CATALOGUE.values() if self._keep(entry))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict(self)!r})"


def shape_rules() -> Mapping[str, LayerType]:
    """Types with a shape rule (what ``cocotune.ir.shapes.LAYER_RULES`` shows)."""
    return _View(lambda e: e.shape is not None, lambda e: e)


def known_unsupported() -> Mapping[str, str]:
    """Types cocotune recognises but cannot handle -> why (``KNOWN_UNSUPPORTED``)."""
    return _View(lambda e: e.shape is None, lambda e: e.unsupported)


def field_value(param, path: str):
    """The value of a dotted field path such as ``"convolution_param.axis"`` in a message."""
    value = param
    for part in path.split("."):
        value = getattr(value, part)
    return value


_EXIT = PruningRole()


def pruning_role(layer: Layer) -> PruningRole:
    """The pruning role of ``layer``'s type; a type the catalogue does not know is an exit."""
    entry = CATALOGUE.get(layer.type)
    return entry.pruning if entry is not None else _EXIT


def depthwise(layer: Layer, channels: int | None = None, multiplier: bool = False) -> bool:
    """A convolution whose output channels each read one input channel (one filter set each).

    Read off the type's pruning role, so no caller names a type: a channel-wise role with
    ``filters`` (the fork's ConvolutionDepthwise, which ignores its group) always is; a role
    with a ``group`` field is when group == input ``channels`` (default: the first bottom's
    axis 1) > 1 and, unless ``multiplier`` allows num_output = k x channels (what Keras'
    DepthwiseConv2D computes, but whose filters do not follow single channels when pruning),
    num_output == channels.
    """
    role = pruning_role(layer)
    if role.filters is None:
        return False
    if role.kind == CHANNELWISE:
        return True
    if role.group is None or len(layer.inputs) != 1:
        return False
    if channels is None:
        shape = layer.inputs[0].shape
        channels = shape[1] if shape and len(shape) > 1 else 1
    group = field_value(layer.param, role.group)
    if group != channels or channels <= 1:
        return False
    return multiplier or field_value(layer.param, role.filters) == channels
