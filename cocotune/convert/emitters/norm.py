"""BatchNorm (+ the Scale that follows it), Scale, Bias, LRN, MVN.

Caffe splits batch normalisation in two layers: BatchNorm (statistics, stored scaled by a
moving-average factor, third blob) and Scale (gamma, beta). When a Scale directly follows a
BatchNorm on the same channels, both become one ``keras.layers.BatchNormalization`` (as in
hand-written Keras models and keras.applications); the Keras layer carries the BatchNorm's
name and both Caffe names appear in the comment.
"""

from __future__ import annotations

import numpy as np

from cocotune.convert.emitters.base import Call, Emitter, LayerPlan, Unsupported, pyrepr
from cocotune.convert.layout import Layout, tf_axis
from cocotune.ir.net import Layer


def stats_from_caffe(mean: np.ndarray, var: np.ndarray, factor: np.ndarray):
    """Caffe stores running sums scaled by a factor (third blob); 0 means 'no statistics'."""
    f = float(np.asarray(factor).reshape(-1)[0])
    scale = 0.0 if f == 0 else 1.0 / f
    return (mean * scale).astype(np.float32), (var * scale).astype(np.float32)


def scale_follows(bn: Layer, scale: Layer) -> bool:
    """True when ``scale`` is a one-bottom per-channel Scale reading exactly ``bn``'s output."""
    p = scale.param.scale_param
    rank = len(bn.outputs[0].inferred_shape)
    # The fold pairs two particular types (not a property of either): the emitters' own rule.
    return (
        scale.type == "Scale"
        and len(scale.inputs) == 1
        and scale.inputs[0] is bn.outputs[0]
        and len(bn.outputs[0].consumers) == 1
        and p.axis % rank == 1
        and p.num_axes == 1
    )


class BatchNormEmitter(Emitter):
    def check(self, layer) -> None:
        p = layer.param.batch_norm_param
        if p.HasField("use_global_stats") and not p.use_global_stats:
            raise Unsupported(
                "use_global_stats: false (batch statistics at test time)",
                "batch_norm_param.use_global_stats",
            )

    def has_weights(self, plan) -> bool:
        return True

    def calls(self, plan, gen):
        p = plan.layer.param.batch_norm_param
        rank = len(plan.in_shapes[0])
        axis = tf_axis(1, plan.in_layouts[0], rank)
        kwargs = {}
        if axis != rank - 1:
            kwargs["axis"] = str(axis)
        kwargs["epsilon"] = pyrepr(np.float32(p.eps))
        kwargs["momentum"] = pyrepr(np.float32(p.moving_average_fraction))
        if plan.fused is None:
            kwargs["center"] = "False"
            kwargs["scale"] = "False"
        elif not plan.fused.param.scale_param.bias_term:
            kwargs["center"] = "False"
        return [
            Call(
                plan.out_vars[0],
                "layers.BatchNormalization",
                [plan.in_vars[0]],
                kwargs=kwargs,
                name=gen.name(plan.keras_name),
            )
        ]

    def to_keras(self, plan, blobs):
        mean, var = stats_from_caffe(*blobs[:3])
        return {plan.keras_name: {"moving_mean": mean, "moving_variance": var}}

    def from_keras(self, plan, weights):
        v = weights[plan.keras_name]
        return [v["moving_mean"], v["moving_variance"], np.ones((1,), np.float32)]


def broadcast_shape(
    param_shape: tuple[int, ...], axis: int, x_rank: int, layout: Layout, strip: bool = True
) -> tuple[int, ...]:
    """Where a Scale/Bias parameter of ``param_shape`` (Caffe axes ``axis``..) sits in TF order.

    Returns the parameter's shape broadcastable against the TF tensor without its batch
    axis, leading 1s dropped: per-channel (C,) on NCHW becomes (C,) on NHWC.
    """
    full = [1] * x_rank
    full[axis : axis + len(param_shape)] = param_shape
    if layout.kind == "nhwc":
        full = [full[0], full[2], full[3], full[1]]
    shape = full[1:]
    while strip and len(shape) > 1 and shape[0] == 1:
        shape = shape[1:]
    return tuple(shape)


class ScaleEmitter(Emitter):
    """Scale (and Bias): y = x * gamma + beta with Caffe's axis/num_axes broadcasting.

    The catalogue sends both types here; which of the two a layer is (its parameter message,
    Scale's factors) is this emitter's own dispatch.
    """

    def _param(self, layer):
        return layer.param.scale_param if layer.type == "Scale" else layer.param.bias_param

    def check(self, layer) -> None:
        x_rank = len(layer.inputs[0].shape)
        axis = self._param(layer).axis % x_rank if x_rank else 0
        field = f"{'scale' if layer.type == 'Scale' else 'bias'}_param.axis"
        if axis == 0 and len(layer.inputs) == 1:
            raise Unsupported("a Scale/Bias parameter spanning the batch axis", field)
        if axis == 0 and layer.type == "Scale" and layer.param.scale_param.bias_term:
            # Caffe's bias then has the second bottom's shape, batch axis included.
            raise Unsupported(
                "a two-bottom Scale with axis 0 and a bias (one bias per image)",
                "scale_param.bias_term",
            )

    def has_weights(self, plan) -> bool:
        if plan.fused_into:
            return False
        if plan.layer.type == "Bias":
            return len(plan.layer.inputs) == 1
        return len(plan.layer.inputs) == 1 or plan.layer.param.scale_param.bias_term

    def _caffe_param_shape(self, plan: LayerPlan) -> tuple[int, ...]:
        x = plan.in_shapes[0]
        p = self._param(plan.layer)
        axis = p.axis % len(x)
        if len(plan.in_shapes) > 1:
            return tuple(plan.in_shapes[1])
        end = len(x) if p.num_axes == -1 else axis + p.num_axes
        return tuple(x[axis:end])

    def _tf_param_shape(self, plan: LayerPlan, shape: tuple[int, ...] | None = None) -> tuple:
        x = plan.in_shapes[0]
        axis = self._param(plan.layer).axis % len(x)
        shape = self._caffe_param_shape(plan) if shape is None else shape
        return broadcast_shape(shape, axis, len(x), plan.in_layouts[0])

    def calls(self, plan, gen):
        if plan.fused_into:
            return []
        layer = plan.layer
        out, x = plan.out_vars[0], plan.in_vars[0]
        name = gen.name(plan.keras_name)
        per_channel = self._per_channel(plan)
        if len(layer.inputs) == 1:
            is_scale = layer.type == "Scale"
            bias = (not is_scale) or layer.param.scale_param.bias_term
            shape = "None" if per_channel else pyrepr(self._tf_param_shape(plan))
            kwargs = {} if is_scale else {"scale": "False"}
            if is_scale and not bias:
                kwargs["bias"] = "False"
            return [Call(out, "caffe.ChannelAffine", [x], [shape], kwargs, name=name)]
        # Two bottoms: the second is the scale (or bias) itself, broadcast along `axis`.
        other = plan.in_vars[1]
        calls = []
        x_shape = plan.in_shapes[0]
        axis = self._param(layer).axis % len(x_shape)
        # Keep every axis (no stripping): the batch axis of both inputs must line up.
        target = broadcast_shape(
            tuple(plan.in_shapes[1]), axis, len(x_shape), plan.in_layouts[0], strip=False
        )
        s_rank = len(plan.in_shapes[1])
        if s_rank == 4 and plan.in_layouts[1].kind == "nhwc" and len(plan.in_shapes[0]) == 4:
            pass  # both NHWC: they broadcast as they are
        elif tuple(plan.in_shapes[1][1:]) != target or plan.in_layouts[1].kind == "nhwc":
            reshaped = out + "_b"
            calls.append(
                Call(
                    reshaped,
                    "layers.Reshape",
                    [other],
                    [pyrepr(target)],
                    name=gen.name(plan.keras_name + "_reshape"),
                )
            )
            other = reshaped
        if layer.type == "Scale":
            calls.append(Call(out, "layers.Multiply", [x, other], list_input=True, name=name))
            if layer.param.scale_param.bias_term:
                calls.append(
                    Call(
                        out,
                        "caffe.ChannelAffine",
                        [out],
                        ["None" if per_channel else pyrepr(self._bias_shape(plan))],
                        {"scale": "False"},
                        name=gen.name(plan.keras_name + "_bias"),
                    )
                )
        else:
            calls.append(Call(out, "layers.Add", [x, other], list_input=True, name=name))
        return calls

    def _per_channel(self, plan: LayerPlan) -> bool:
        """True when the parameter is one value per channel (shape inferred from the input)."""
        x = plan.in_shapes[0]
        p = self._param(plan.layer)
        if len(plan.in_shapes) > 1:
            shape = self._bias_shape(plan)
            return len(x) == 4 and shape == (x[1],) and plan.in_layouts[0].kind == "nhwc"
        axis = p.axis % len(x)
        end = len(x) if p.num_axes == -1 else axis + p.num_axes
        if len(x) == 4 and plan.in_layouts[0].kind == "nhwc":
            return (axis, end) == (1, 2)
        return axis == len(x) - 1 and end == len(x) or (len(x) == 2 and (axis, end) == (1, 2))

    def _bias_shape(self, plan: LayerPlan) -> tuple[int, ...]:
        """Shape (TF order) of the bias of a two-bottom Scale: the second bottom's extent."""
        return self._tf_param_shape(plan)

    def keras_layer_names(self, plan):
        if not self.has_weights(plan):
            return []
        if len(plan.layer.inputs) > 1:
            return [plan.keras_name + "_bias"]
        return [plan.keras_name]

    def _to_tf(self, plan: LayerPlan, blob: np.ndarray) -> np.ndarray:
        if self._per_channel(plan):
            return blob.reshape(-1)
        x = plan.in_shapes[0]
        axis = self._param(plan.layer).axis % len(x)
        full = [1] * len(x)
        full[axis : axis + blob.ndim] = blob.shape
        arr = blob.reshape(full)
        if plan.in_layouts[0].kind == "nhwc":
            arr = arr.transpose(0, 2, 3, 1)
        return arr.reshape(self._tf_param_shape(plan, blob.shape))

    def _from_tf(self, plan: LayerPlan, arr: np.ndarray, caffe_shape: tuple[int, ...]):
        if self._per_channel(plan):
            return arr.reshape(caffe_shape)
        x = plan.in_shapes[0]
        axis = self._param(plan.layer).axis % len(x)
        full = [1] * len(x)
        full[axis : axis + len(caffe_shape)] = caffe_shape
        if plan.in_layouts[0].kind == "nhwc":
            nhwc = (full[0], full[2], full[3], full[1])
            return arr.reshape(nhwc).transpose(0, 3, 1, 2).reshape(caffe_shape)
        return arr.reshape(caffe_shape)

    def to_keras(self, plan, blobs):
        if plan.fused_into:
            return {}
        layer = plan.layer
        if len(layer.inputs) > 1:
            return (
                {plan.keras_name + "_bias": {"beta": self._to_tf(plan, blobs[0])}} if blobs else {}
            )
        if layer.type == "Bias":
            return {plan.keras_name: {"beta": self._to_tf(plan, blobs[0])}}
        out = {"gamma": self._to_tf(plan, blobs[0])}
        if len(blobs) > 1:
            out["beta"] = self._to_tf(plan, blobs[1])
        return {plan.keras_name: out}

    def from_keras(self, plan, weights):
        if plan.fused_into or not self.has_weights(plan):
            return []
        shape = self._caffe_param_shape(plan)
        if len(plan.layer.inputs) > 1:
            return [self._from_tf(plan, weights[plan.keras_name + "_bias"]["beta"], shape)]
        v = weights[plan.keras_name]
        if plan.layer.type == "Bias":
            return [self._from_tf(plan, v["beta"], shape)]
        blobs = [self._from_tf(plan, v["gamma"], shape)]
        if "beta" in v:
            blobs.append(self._from_tf(plan, v["beta"], shape))
        return blobs


class FusedScaleWeights:
    """Weights of a Scale folded into the preceding BatchNorm's Keras layer."""

    @staticmethod
    def to_keras(bn_keras_name: str, blobs: list[np.ndarray]):
        out = {"gamma": blobs[0].reshape(-1)}
        if len(blobs) > 1:
            out["beta"] = blobs[1].reshape(-1)
        return {bn_keras_name: out}

    @staticmethod
    def from_keras(bn_keras_name: str, weights, bias_term: bool) -> list[np.ndarray]:
        v = weights[bn_keras_name]
        return [v["gamma"]] + ([v["beta"]] if bias_term else [])


class LRNEmitter(Emitter):
    def calls(self, plan, gen):
        p = plan.layer.param.lrn_param
        region = '"across_channels"' if p.norm_region == p.ACROSS_CHANNELS else '"within_channel"'
        kwargs = {
            "local_size": str(p.local_size),
            "alpha": pyrepr(np.float32(p.alpha)),
            "beta": pyrepr(np.float32(p.beta)),
            "k": pyrepr(np.float32(p.k)),
        }
        if p.norm_region != p.ACROSS_CHANNELS:
            kwargs["norm_region"] = region
        return [
            Call(
                plan.out_vars[0],
                "caffe.LRN",
                [plan.in_vars[0]],
                kwargs=kwargs,
                name=gen.name(plan.keras_name),
            )
        ]


class MVNEmitter(Emitter):
    def check(self, layer) -> None:
        if len(layer.inputs[0].shape) != 4:
            raise Unsupported("MVN on a blob that is not 4-axis")

    def calls(self, plan, gen):
        p = plan.layer.param.mvn_param
        kwargs = {}
        if not p.normalize_variance:
            kwargs["normalize_variance"] = "False"
        if p.across_channels:
            kwargs["across_channels"] = "True"
        kwargs["eps"] = pyrepr(np.float32(p.eps))
        return [
            Call(
                plan.out_vars[0],
                "caffe.MVN",
                [plan.in_vars[0]],
                kwargs=kwargs,
                name=gen.name(plan.keras_name),
            )
        ]
