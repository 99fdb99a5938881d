"""Layers that join, split or rearrange blobs: Eltwise, Concat, Slice, Split, Crop, Axpy,
ShuffleChannel. Caffe axes are mapped to the TensorFlow layout of the blob."""

from __future__ import annotations

from cocotune.convert.emitters.base import Call, Emitter, Unsupported, pyrepr
from cocotune.convert.layout import tf_axis


class EltwiseEmitter(Emitter):
    def calls(self, plan, gen):
        p = plan.layer.param.eltwise_param
        out, name = plan.out_vars[0], gen.name(plan.keras_name)
        coeffs = list(p.coeff)
        if p.operation == p.PROD:
            return [Call(out, "layers.Multiply", plan.in_vars, list_input=True, name=name)]
        if p.operation == p.MAX:
            return [Call(out, "layers.Maximum", plan.in_vars, list_input=True, name=name)]
        if not coeffs or all(c == 1 for c in coeffs):
            return [Call(out, "layers.Add", plan.in_vars, list_input=True, name=name)]
        return [
            Call(
                out,
                "caffe.WeightedSum",
                plan.in_vars,
                [pyrepr([float(c) for c in coeffs])],
                list_input=True,
                name=name,
            )
        ]


class ConcatEmitter(Emitter):
    def _axis(self, plan) -> int:
        p = plan.layer.param.concat_param
        axis = p.concat_dim if p.HasField("concat_dim") else p.axis
        return axis % len(plan.in_shapes[0])

    def check(self, layer) -> None:
        p = layer.param.concat_param
        axis = p.concat_dim if p.HasField("concat_dim") else p.axis
        if axis % len(layer.inputs[0].shape) == 0:
            raise Unsupported("concatenation along the batch axis", "concat_param.axis")

    def calls(self, plan, gen):
        if len(plan.in_vars) == 1:
            return [Call(plan.out_vars[0], None, plan.in_vars)]
        axis = tf_axis(self._axis(plan), plan.in_layouts[0], len(plan.in_shapes[0]))
        rank = len(plan.in_shapes[0])
        kwargs = {} if axis == rank - 1 else {"axis": str(axis)}
        return [
            Call(
                plan.out_vars[0],
                "layers.Concatenate",
                plan.in_vars,
                kwargs=kwargs,
                list_input=True,
                name=gen.name(plan.keras_name),
            )
        ]


class SliceEmitter(Emitter):
    def check(self, layer) -> None:
        p = layer.param.slice_param
        axis = p.slice_dim if p.HasField("slice_dim") else p.axis
        if axis % len(layer.inputs[0].shape) == 0:
            raise Unsupported("slicing along the batch axis", "slice_param.axis")

    def calls(self, plan, gen):
        p = plan.layer.param.slice_param
        caffe_axis = (p.slice_dim if p.HasField("slice_dim") else p.axis) % len(plan.in_shapes[0])
        axis = tf_axis(caffe_axis, plan.in_layouts[0], len(plan.in_shapes[0]))
        calls, begin = [], 0
        for i, (var, shape) in enumerate(zip(plan.out_vars, plan.out_shapes)):
            size = shape[caffe_axis]
            calls.append(
                Call(
                    var,
                    "caffe.SliceAxis",
                    [plan.in_vars[0]],
                    kwargs={"axis": str(axis), "begin": str(begin), "size": str(size)},
                    name=gen.name(f"{plan.keras_name}_{i}"),
                )
            )
            begin += size
        return calls


class SplitEmitter(Emitter):
    def calls(self, plan, gen):
        return [Call(out, None, [plan.in_vars[0]]) for out in plan.out_vars]


class CropEmitter(Emitter):
    def calls(self, plan, gen):
        p = plan.layer.param.crop_param
        x, ref = plan.in_shapes
        rank = len(x)
        axis = p.axis % rank
        offsets, sizes = [0] * rank, list(x)
        for i in range(axis, rank):
            off = (
                0
                if not len(p.offset)
                else (p.offset[0] if len(p.offset) == 1 else p.offset[i - axis])
            )
            offsets[i], sizes[i] = off, ref[i]
        layout = plan.in_layouts[0]
        begin = [0] * (rank - 1)
        size = [0] * (rank - 1)
        for caffe_axis in range(1, rank):
            t = tf_axis(caffe_axis, layout, rank)
            begin[t - 1], size[t - 1] = offsets[caffe_axis], sizes[caffe_axis]
        return [
            Call(
                plan.out_vars[0],
                "caffe.StaticSlice",
                [plan.in_vars[0]],
                kwargs={"begin": pyrepr(tuple(begin)), "size": pyrepr(tuple(size))},
                name=gen.name(plan.keras_name),
            )
        ]


class AxpyEmitter(Emitter):
    def calls(self, plan, gen):
        return [
            Call(
                plan.out_vars[0],
                "caffe.Axpy",
                plan.in_vars,
                list_input=True,
                name=gen.name(plan.keras_name),
            )
        ]


class ShuffleChannelEmitter(Emitter):
    def check(self, layer) -> None:
        if len(layer.inputs[0].shape) != 4:
            raise Unsupported("ShuffleChannel on a blob that is not 4-axis")

    def calls(self, plan, gen):
        group = plan.layer.param.shuffle_channel_param.group
        return [
            Call(
                plan.out_vars[0],
                "caffe.ShuffleChannel",
                [plan.in_vars[0]],
                [str(group)],
                name=gen.name(plan.keras_name),
            )
        ]
