"""Flatten, Reshape, Softmax, ArgMax, Reduction, Tile: layers whose meaning depends on axes.

A Caffe reshape or flatten works on NCHW order. When the blob is held NHWC the generated code
transposes back to NCHW first (``layers.Permute((3, 1, 2))``) — except for a Flatten read only
by InnerProducts, which flattens in NHWC order and lets the InnerProduct's weights absorb the
difference (see dense.py).
"""

from __future__ import annotations

from cocotune.convert.emitters.base import Call, Emitter, Unsupported, pyrepr
from cocotune.convert.emitters.dense import InnerProductEmitter
from cocotune.convert.layout import PLAIN, Layout, layout_for_shape, tf_axis
from cocotune.ir.catalogue import CATALOGUE


def _to_nchw(plan, gen, src: str, tag: str = "_nchw") -> tuple[list[Call], str]:
    """Calls that bring a NHWC input back to Caffe's NCHW order (nothing if already plain)."""
    if plan.in_layouts[0].kind != "nhwc":
        return [], src
    var = plan.out_vars[0]
    return [
        Call(var, "layers.Permute", [src], ["(3, 1, 2)"], name=gen.name(plan.keras_name + tag))
    ], var


def _converted_by(layer) -> str | None:
    """The emitter class the catalogue names for ``layer``'s type."""
    entry = CATALOGUE.get(layer.type)
    return entry.emitter if entry is not None else None


def _feeds_only_inner_products(layer) -> bool:
    consumers = layer.outputs[0].consumers
    return bool(consumers) and all(
        _converted_by(c) == InnerProductEmitter.__name__
        and c.param.inner_product_param.axis % 2 == 1
        for c in consumers
    )


class FlattenEmitter(Emitter):
    def _keeps_hwc(self, plan) -> bool:
        p = plan.layer.param.flatten_param
        rank = len(plan.in_shapes[0])
        return (
            plan.in_layouts[0].kind == "nhwc"
            and p.axis % rank == 1
            and p.end_axis % rank == rank - 1
            and _feeds_only_inner_products(plan.layer)
        )

    def out_layouts(self, plan):
        if self._keeps_hwc(plan):
            return [Layout("hwc_flat", tuple(plan.in_shapes[0][1:]))]
        return [layout_for_shape(plan.out_shapes[0])]

    def calls(self, plan, gen):
        out, name = plan.out_vars[0], gen.name(plan.keras_name)
        if self._keeps_hwc(plan):
            return [Call(out, "layers.Flatten", [plan.in_vars[0]], name=name)]
        calls, src = _to_nchw(plan, gen, plan.in_vars[0])
        target = tuple(plan.out_shapes[0][1:])
        if len(target) == 1:
            calls.append(Call(out, "layers.Flatten", [src], name=name))
        else:
            calls.append(Call(out, "layers.Reshape", [src], [pyrepr(target)], name=name))
        if len(plan.out_shapes[0]) == 4:
            calls.append(
                Call(
                    out,
                    "layers.Permute",
                    [out],
                    ["(2, 3, 1)"],
                    name=gen.name(plan.keras_name + "_nhwc"),
                )
            )
        return calls


class ReshapeEmitter(Emitter):
    def check(self, layer) -> None:
        if layer.inputs[0].shape[0] != layer.outputs[0].shape[0]:
            raise Unsupported("a Reshape that changes the batch axis", "reshape_param.shape")

    def calls(self, plan, gen):
        out = plan.out_vars[0]
        calls, src = _to_nchw(plan, gen, plan.in_vars[0])
        target = tuple(plan.out_shapes[0][1:])
        calls.append(
            Call(out, "layers.Reshape", [src], [pyrepr(target)], name=gen.name(plan.keras_name))
        )
        if len(plan.out_shapes[0]) == 4:
            calls.append(
                Call(
                    out,
                    "layers.Permute",
                    [out],
                    ["(2, 3, 1)"],
                    name=gen.name(plan.keras_name + "_nhwc"),
                )
            )
        return calls


class SoftmaxEmitter(Emitter):
    def calls(self, plan, gen):
        rank = len(plan.in_shapes[0])
        axis = tf_axis(plan.layer.param.softmax_param.axis, plan.in_layouts[0], rank)
        kwargs = {} if axis == rank - 1 else {"axis": str(axis)}
        return [
            Call(
                plan.out_vars[0],
                "layers.Softmax",
                [plan.in_vars[0]],
                kwargs=kwargs,
                name=gen.name(plan.keras_name),
            )
        ]


class TileEmitter(Emitter):
    def calls(self, plan, gen):
        p = plan.layer.param.tile_param
        rank = len(plan.in_shapes[0])
        axis = tf_axis(p.axis, plan.in_layouts[0], rank)
        return [
            Call(
                plan.out_vars[0],
                "caffe.CaffeTile",
                [plan.in_vars[0]],
                kwargs={"axis": str(axis), "tiles": str(p.tiles)},
                name=gen.name(plan.keras_name),
            )
        ]


class ArgMaxEmitter(Emitter):
    def out_layouts(self, plan):
        p = plan.layer.param.argmax_param
        if p.HasField("axis"):
            return [plan.in_layouts[0] if len(plan.out_shapes[0]) == 4 else PLAIN]
        return [PLAIN]

    def calls(self, plan, gen):
        p = plan.layer.param.argmax_param
        out, name = plan.out_vars[0], gen.name(plan.keras_name)
        kwargs = {"top_k": str(p.top_k)}
        if p.out_max_val:
            kwargs["out_max_val"] = "True"
        rank = len(plan.in_shapes[0])
        if p.HasField("axis"):
            kwargs["axis"] = str(tf_axis(p.axis, plan.in_layouts[0], rank))
            return [Call(out, "caffe.ArgMax", [plan.in_vars[0]], kwargs=kwargs, name=name)]
        calls, src = _to_nchw(plan, gen, plan.in_vars[0])
        if rank > 2:
            calls.append(
                Call(out, "layers.Flatten", [src], name=gen.name(plan.keras_name + "_flat"))
            )
            src = out
        if len(plan.out_shapes[0]) > 3:
            raise Unsupported("ArgMax without axis on a blob of more than 3 axes")
        calls.append(Call(out, "caffe.ArgMax", [src], kwargs=kwargs, name=name))
        return calls


class ReductionEmitter(Emitter):
    def check(self, layer) -> None:
        rank = len(layer.inputs[0].shape)
        axis = layer.param.reduction_param.axis % rank
        if axis == 0:
            raise Unsupported("a Reduction over the batch axis", "reduction_param.axis")
        if rank == 4 and axis == 3:
            raise Unsupported("a Reduction over W alone of a 4-axis blob", "reduction_param.axis")

    def out_layouts(self, plan):
        return [PLAIN]

    def calls(self, plan, gen):
        p = plan.layer.param.reduction_param
        rank = len(plan.in_shapes[0])
        axis = p.axis % rank
        op = {p.SUM: "sum", p.ASUM: "asum", p.SUMSQ: "sumsq", p.MEAN: "mean"}[p.operation]
        axes = tuple(sorted(tf_axis(a, plan.in_layouts[0], rank) for a in range(axis, rank)))
        kwargs = {"operation": pyrepr(op), "axes": pyrepr(axes)}
        if p.coeff != 1:
            kwargs["coeff"] = pyrepr(float(p.coeff))
        return [
            Call(
                plan.out_vars[0],
                "caffe.Reduction",
                [plan.in_vars[0]],
                kwargs=kwargs,
                name=gen.name(plan.keras_name),
            )
        ]
