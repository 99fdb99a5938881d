"""Output-side types: Softmax, ArgMax, Reduction, the training losses, Accuracy, Silence.

Together because they end a net: they turn scores into probabilities, indices or summaries,
and the losses and metrics exist only for training (their emitter writes no model code, the
generated training scripts implement them), so their rules give Caffe's scalar tops.
"""

from __future__ import annotations

from cocotune.ir.catalogue import register
from cocotune.ir.net import Layer, Shape
from cocotune.ir.rule_base import canonical_axis, fail, per_image


def _softmax(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    canonical_axis(layer.param.softmax_param.axis, len(bottoms[0]), "softmax_param.axis")
    return [bottoms[0]]


register("Softmax", shape=_softmax, description="softmax", emitter="SoftmaxEmitter")


def _argmax(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    p = layer.param.argmax_param
    x = bottoms[0]
    if p.HasField("axis"):
        axis = canonical_axis(p.axis, len(x), "argmax_param.axis")
        if p.top_k > x[axis]:
            raise fail(f"top_k {p.top_k} exceeds axis size {x[axis]}", "argmax_param.top_k")
        out = list(x)
        out[axis] = p.top_k
        return [tuple(out)]
    if p.top_k > per_image(x):
        raise fail(f"top_k {p.top_k} exceeds {per_image(x)} values per image", "argmax_param.top_k")
    out = [1] * max(3, len(x))
    out[0] = x[0]
    out[1] = 2 if p.out_max_val else 1
    out[2] = p.top_k
    return [tuple(out)]


register(
    "ArgMax", shape=_argmax, description="indices of the largest values", emitter="ArgMaxEmitter"
)


def _reduction(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    axis = canonical_axis(layer.param.reduction_param.axis, len(bottoms[0]), "reduction_param.axis")
    return [tuple(bottoms[0][:axis])]


register(
    "Reduction",
    shape=_reduction,
    description="sum/mean/... over trailing axes",
    emitter="ReductionEmitter",
)


def _loss(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    out: list[Shape] = [()]
    if len(layer.param.top) > 1:
        out.append(bottoms[0])  # SoftmaxWithLoss exposes the probabilities as a second top
    return out


register(
    "SoftmaxWithLoss",
    "EuclideanLoss",
    "SigmoidCrossEntropyLoss",
    "ContrastiveLoss",
    "HingeLoss",
    "InfogainLoss",
    "MultinomialLogisticLoss",
    shape=_loss,
    bottoms=(2, 3),
    tops=(0, 2),
    description="training loss",
    emitter="TrainingOnlyEmitter",
)


def _accuracy(layer: Layer, bottoms: list[Shape]) -> list[Shape]:
    p = layer.param.accuracy_param
    x = bottoms[0]
    axis = canonical_axis(p.axis, len(x), "accuracy_param.axis")
    if p.top_k > x[axis]:
        raise fail(f"top_k {p.top_k} exceeds the {x[axis]} classes", "accuracy_param.top_k")
    out: list[Shape] = [()]
    if len(layer.param.top) > 1:
        out.append((x[axis],))
    return out


register(
    "Accuracy",
    shape=_accuracy,
    bottoms=(2, 2),
    tops=(1, 2),
    description="classification accuracy",
    emitter="TrainingOnlyEmitter",
)
register(
    "Silence",
    shape=lambda layer, b: [],
    bottoms=(1, None),
    tops=(0, 0),
    description="consumes blobs",
    emitter="TrainingOnlyEmitter",
)
