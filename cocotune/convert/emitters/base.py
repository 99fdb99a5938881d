"""What an emitter is: one object per Caffe type that knows its Keras code and its weights.

An emitter turns one Caffe layer (with its resolved :class:`LayerPlan`) into
:class:`Call` statements — "``out = layers.Conv2D(16, 3, name=...)(x)``" — and converts the
layer's Caffe blobs to the Keras layer's variables (and back, so that weights trained in
Keras can be pruned in Caffe layout). Templates only print; all decisions live here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cocotune.convert.layout import Layout, layout_for_shape
from cocotune.ir.names import py_string
from cocotune.ir.net import Layer

KerasWeights = dict[str, dict[str, np.ndarray]]  # keras layer name -> variable name -> array


@dataclass
class Call:
    """``out = ctor(*args, **kwargs, name=name)(inputs)`` — one Keras layer call.

    ``ctor`` None means a plain assignment ``out = inputs[0]`` (Split); ``name`` is the
    Python expression of the Keras layer name (it may carry the block prefix ``p + ...``).
    """

    out: str
    ctor: str | None
    inputs: list[str]
    args: list[str] = field(default_factory=list)
    kwargs: dict[str, str] = field(default_factory=dict)
    name: str | None = None
    list_input: bool = False  # pass inputs as a list (Add, Concatenate, ...)


@dataclass
class LayerPlan:
    """Everything resolved about one Caffe layer before code or weights are produced."""

    layer: Layer
    emitter: Emitter
    keras_name: str
    in_vars: list[str]
    out_vars: list[str]
    in_layouts: list[Layout]
    out_layouts: list[Layout] = field(default_factory=list)
    fused: Layer | None = None  # a Scale folded into this BatchNorm
    fused_into: str | None = None  # for that Scale: the BatchNorm's Caffe name
    prunable: bool = False  # num_output comes from the width table
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def in_shapes(self) -> list[tuple[int, ...]]:
        return [b.inferred_shape for b in self.layer.inputs]

    @property
    def out_shapes(self) -> list[tuple[int, ...]]:
        return [b.inferred_shape for b in self.layer.outputs]


def weights_with_bias(keras_name: str, kernel: np.ndarray, blobs: list[np.ndarray]) -> KerasWeights:
    """{keras_name: {"kernel", "bias"?}}: a Caffe layer whose blob 1, if present, is its bias."""
    out = {"kernel": np.ascontiguousarray(kernel)}
    if len(blobs) > 1:
        out["bias"] = blobs[1]
    return {keras_name: out}


def blobs_with_bias(w: np.ndarray, variables: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The inverse of :func:`weights_with_bias`: Caffe blobs [weights, bias?]."""
    return [np.ascontiguousarray(w)] + ([variables["bias"]] if "bias" in variables else [])


class Unsupported(Exception):
    """A field value the emitter cannot express exactly (reported with its position)."""

    def __init__(self, message: str, field_path: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field_path = field_path


class Emitter:
    """Base emitter: no weights, outputs laid out by rank. Subclasses override what differs."""

    # Which Caffe types an emitter converts is not said here but by each type's catalogue
    # entry (``LayerType.emitter``, read by cocotune.convert.registry).
    #: True when the layer produces no Keras code (e.g. a loss in a deploy model)
    skip: bool = False

    def check(self, layer: Layer) -> None:
        """Raise :class:`Unsupported` for field values that cannot be converted exactly."""

    def out_layouts(self, plan: LayerPlan) -> list[Layout]:
        return [layout_for_shape(s) for s in plan.out_shapes]

    def calls(self, plan: LayerPlan, gen: CodeContext) -> list[Call]:
        raise NotImplementedError

    def keras_layer_names(self, plan: LayerPlan) -> list[str]:
        """The Keras layers (by name) that hold this Caffe layer's weights."""
        return [plan.keras_name] if self.has_weights(plan) else []

    def has_weights(self, plan: LayerPlan) -> bool:
        return False

    def to_keras(self, plan: LayerPlan, blobs: list[np.ndarray]) -> KerasWeights:
        """Caffe blobs (Caffe layout) → Keras variables for this layer."""
        return {}

    def from_keras(self, plan: LayerPlan, weights: KerasWeights) -> list[np.ndarray]:
        """Keras variables → Caffe blobs (the inverse of :meth:`to_keras`)."""
        return []


class NameExpr(str):
    """A Python expression for a Keras layer name that remembers the plain name it builds."""

    raw: str

    def __new__(cls, expr: str, raw: str) -> NameExpr:
        obj = super().__new__(cls, expr)
        obj.raw = raw
        return obj


class CodeContext:
    """What emitters may ask while producing code: names, widths, the module prefix."""

    def __init__(self, in_module: bool, width_expr) -> None:
        self.in_module = in_module
        self._width_expr = width_expr

    def name(self, keras_name: str) -> str:
        """Python expression for a Keras layer name (block-prefixed inside module functions)."""
        literal = py_string(keras_name)
        return NameExpr(f"p + {literal}" if self.in_module else literal, keras_name)

    def width(self, plan: LayerPlan, full: int) -> str:
        """Python expression for the number of filters of a (possibly pruned) layer."""
        return self._width_expr(plan, full)


def pyrepr(value: Any) -> str:
    """A Python literal for plain data (ints, floats, tuples, strings)."""
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return f'float("{value}")'
        return repr(value)
    if isinstance(value, np.float32):
        # Caffe holds parameters as float32: print the shortest text that reads back the same.
        return pyrepr(float(str(value)))
    if isinstance(value, (list, tuple)):
        inner = ", ".join(pyrepr(v) for v in value)
        return (
            f"({inner},)"
            if isinstance(value, tuple) and len(value) == 1
            else (f"({inner})" if isinstance(value, tuple) else f"[{inner}]")
        )
    if isinstance(value, str):
        return py_string(value)
    if isinstance(value, (np.integer,)):
        return repr(int(value))
    if isinstance(value, np.floating):
        return pyrepr(float(value))
    return repr(value)
