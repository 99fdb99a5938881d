"""Caffe-exact shape inference, parameter counts and multiply-accumulates, one rule per type.

``LAYER_RULES`` maps a Caffe type to a :class:`LayerRule`: a pure function from the layer and
its input shapes to its output shapes, plus how many parameters it stores and how many MACs it
performs per image. The formulas are Caffe's own (``*_layer.cpp`` Reshape/LayerSetUp), e.g.
pooling rounds up by default and drops a last window that would start in the padding.
Each type is described once, by a :func:`cocotune.ir.catalogue.register` call after its rule
in :mod:`cocotune.ir.rules` (one module per family); the catalogue entry also holds its blobs,
pruning role and emitter name. ``LAYER_RULES`` and ``KNOWN_UNSUPPORTED`` are views of that
catalogue (the latter filled by :mod:`cocotune.ir.unsupported`).

This module is the public entry: it runs the rules over a net (:func:`infer_shapes`) and
re-exports what callers use from :mod:`cocotune.ir.rule_base` and :mod:`cocotune.ir.geometry`.
"""

from __future__ import annotations

from cocotune.errors import ShapeError

# Importing them registers every type in the catalogue: the shape rules, then the types
# cocotune refuses (and why).
from cocotune.ir import rules, unsupported  # noqa: F401
from cocotune.ir.catalogue import LayerType, known_unsupported, shape_rules
from cocotune.ir.geometry import (
    ConvGeometry,
    PoolGeometry,
    conv_geometry,
    pool_geometry,
    pooled_size,
)
from cocotune.ir.net import Layer, Net, Shape
from cocotune.ir.rule_base import (
    Cost,
    NeedsInputShape,
    RuleError,
    canonical_axis,
    fail,
    fmt_shape,
    per_image,
    prod,
)

__all__ = [
    "KNOWN_UNSUPPORTED",
    "LAYER_RULES",
    "ConvGeometry",
    "Cost",
    "LayerRule",
    "NeedsInputShape",
    "PoolGeometry",
    "canonical_axis",
    "conv_geometry",
    "fail",
    "fmt_shape",
    "infer_shapes",
    "per_image",
    "pool_geometry",
    "pooled_size",
    "prod",
]

#: The name this module's entries had before the catalogue; kept for callers.
LayerRule = LayerType
#: Caffe type -> its catalogue entry, for the types that have a shape rule.
LAYER_RULES = shape_rules()
#: Types cocotune recognises but does not support -> why (reported all at once).
KNOWN_UNSUPPORTED = known_unsupported()


def infer_shapes(net: Net, input_shapes: dict[str, Shape] | None = None) -> None:
    """Fill ``blob.shape``, ``layer.params`` and ``layer.macs`` for every layer, in order.

    ``input_shapes`` overrides (or supplies) the shape of blobs produced by data layers.

    Raises:
        ShapeError: naming the layer, the shapes involved and pointing at the field.
    """
    given = dict(input_shapes or {})
    for layer in net.layers:
        spec = LAYER_RULES[layer.type]
        assert spec.shape is not None  # LAYER_RULES holds only the types with a shape rule
        # Every input was produced by an earlier layer (Net checks it), so its shape is set.
        in_shapes = [b.inferred_shape for b in layer.inputs]
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
        except RuleError as exc:
            inputs = (
                ", ".join(f"'{b.name}' {fmt_shape(s)}" for b, s in zip(layer.inputs, in_shapes))
                or "no inputs"
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
    assert spec.shape is not None  # LAYER_RULES holds only the types with a shape rule
    try:
        default: list[Shape] | None = spec.shape(layer, [])
    except (NeedsInputShape, RuleError):
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
