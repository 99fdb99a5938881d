"""Building the three models a generated ``model.py`` offers, from its :class:`NetworkSpec`.

The generated file holds the network as readable Keras code (one function per module); the
mode logic lives here, once: "full" uses every filter, "finetune" shrinks each module's
prunable layers by its rate, "pretrain" wires pruned student blocks to a frozen teacher.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import keras

from cocotune.tuning.pruning_rule import kept_filters

MODES = ("full", "finetune", "pretrain")


@dataclass(frozen=True)
class NetworkSpec:
    """What a generated model.py declares about its network.

    Attributes:
        name: the Caffe net's name.
        network: ``network(w) -> (inputs, outputs)`` dicts of blob name → tensor.
        full_widths: prunable Caffe layer → its number of filters in the full network.
        modules: module → (function, input blobs, output blobs, prunable layers).
        blob_producers: Caffe blob → Keras layer computing its final value.
    """

    name: str
    network: Callable[[Mapping[str, int]], tuple[dict, dict]]
    full_widths: Mapping[str, int]
    modules: Mapping[str, tuple[Callable, list[str], list[str], list[str]]]
    blob_producers: Mapping[str, str]


def widths_for(spec: NetworkSpec, rates: Mapping[str, float] | None) -> dict[str, int]:
    """Filters of every prunable layer when module ``m`` is pruned at ``rates[m]``."""
    widths = dict(spec.full_widths)
    for module, rate in (rates or {}).items():
        if module not in spec.modules:
            close = difflib.get_close_matches(module, list(spec.modules), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown module {module!r} in prune_info{hint}")
        rate = float(rate)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"rate of module {module!r} must be in [0, 1). Received: {rate}")
        for layer in spec.modules[module][3]:
            widths[layer] = kept_filters(spec.full_widths[layer], rate)
    return widths


def _as_model_io(tensors: dict) -> Any:
    values = list(tensors.values())
    return values[0] if len(values) == 1 else values


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_.-" else "_" for c in name) or "net"


def build(
    spec: NetworkSpec,
    mode_to_use: str = "full",
    prune_info: Mapping[str, Any] | None = None,
    outputs: Sequence[str] | None = None,
) -> keras.Model:
    """The Keras model for one mode (see the generated model.py's docstring)."""
    if mode_to_use not in MODES:
        raise ValueError(f"mode_to_use must be one of {MODES}. Received: {mode_to_use!r}")
    prune_info = dict(prune_info or {})
    if mode_to_use == "pretrain":
        return _pretrain_model(spec, prune_info)
    rates = prune_info.get("rates") if mode_to_use == "finetune" else None
    inputs, outs = spec.network(widths_for(spec, rates))
    model = keras.Model(_as_model_io(inputs), _as_model_io(outs), name=_safe(spec.name))
    if outputs:
        extra = [_blob_tensor(spec, model, inputs, blob) for blob in outputs]
        model = keras.Model(model.inputs, [*model.outputs, *extra], name=model.name)
    return model


def _blob_tensor(spec: NetworkSpec, model: keras.Model, inputs: dict, blob: str):
    if blob in inputs:
        return inputs[blob]
    if blob not in spec.blob_producers:
        close = difflib.get_close_matches(blob, list(spec.blob_producers), n=3)
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise ValueError(f"the net has no blob {blob!r}{hint}")
    return model.get_layer(spec.blob_producers[blob]).output


@keras.saving.register_keras_serializable(package="cocotune")
class ReconstructionError(keras.layers.Layer):
    """Mean squared difference between a student's and the teacher's activation, per sample.

    Input: [student, teacher] of the same shape. Output: shape (batch,). The teacher side is
    wrapped in ``stop_gradient``: only the student learns.
    """

    def call(self, inputs):
        student, teacher = inputs
        diff = student - keras.ops.stop_gradient(teacher)
        axes = list(range(1, len(diff.shape)))
        return keras.ops.mean(keras.ops.square(diff), axis=axes)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0],)


@keras.saving.register_keras_serializable(package="cocotune")
class TeacherActivation(keras.layers.Layer):
    """Identity that blocks gradients: a student reads the teacher's activation as data.

    Without it, a student's loss would back-propagate into the (frozen) teacher: wasted work,
    and the teacher's variables would receive gradients they must never use.
    """

    def call(self, inputs):
        return keras.ops.stop_gradient(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape


def block_prefix(block_id: str) -> str:
    return f"{_safe(block_id)}__"


def _pretrain_model(spec: NetworkSpec, prune_info: Mapping[str, Any]) -> keras.Model:
    blocks = list(prune_info.get("blocks") or [])
    if not blocks:
        raise ValueError('mode "pretrain" needs prune_info["blocks"] (a list of tuning blocks)')
    inputs, outs = spec.network(dict(spec.full_widths))
    teacher = keras.Model(_as_model_io(inputs), _as_model_io(outs), name="teacher")
    for layer in teacher.layers:
        layer.trainable = False
    errors = []
    for block in blocks:
        modules = list(block["modules"])
        rates = dict(zip(modules, block["rates"]))
        widths = widths_for(spec, rates)
        env: dict[str, Any] = {}
        last_outputs: list[str] = []
        prefix = block_prefix(block["id"])
        for module in modules:
            fn, ins, module_outs, _ = spec.modules[module]
            for blob in ins:
                if blob not in env:
                    tensor = _blob_tensor(spec, teacher, inputs, blob)
                    env[blob] = TeacherActivation(name=f"{prefix}{_safe(blob)}_in")(tensor)
            args = [env[b] for b in ins]
            result = fn(*args, w=widths, p=prefix)
            result = result if isinstance(result, tuple) else (result,)
            env.update(zip(module_outs, result))
            last_outputs = module_outs
        for blob in last_outputs:
            target = _blob_tensor(spec, teacher, inputs, blob)
            name = f"{block_prefix(block['id'])}{_safe(blob)}_mse"
            errors.append(ReconstructionError(name=name)([env[blob], target]))
    model = keras.Model(_as_model_io(inputs), errors, name="pretrain")
    return model


# --- inference on data: compiled, in bounded batches ---------------------------------------------

# Input values per evaluation batch: 2**22 floats (16 MB) is 27 images at 224x224x3 and caps at
# 256 images for anything of 16k values or less (the digits, 32x32x3).
EVAL_BATCH_VALUES = 2**22
EVAL_BATCH_CAP = 256


def eval_batch_size(image_shape: Sequence[int], cap: int = EVAL_BATCH_CAP) -> int:
    """Images per inference batch for images of ``image_shape`` (without the batch axis).

    Why bounded by size: activations grow with the image, and a compiled ResNet-50 forward
    pass at 224x224 holds ~10 MB per image (~15 MB with BatchNorm in training mode), so the
    usual 256 images would need 2.5-3.8 GB on top of the model. Results do not depend on it.
    """
    values = 1
    for d in image_shape:
        values *= int(d)
    return max(1, min(int(cap), EVAL_BATCH_VALUES // max(values, 1)))


def inference_fn(model: keras.Model, training: bool = False) -> Callable:
    """``model(x, training=training)`` as one compiled function per model (traced once).

    Why not call the model directly: an eager call of a functional Keras model keeps every
    layer's output until it returns (Keras' ``Functional._run_through_graph`` fills a dict),
    ~150 MB per 224x224 image for ResNet-50; a compiled graph frees each activation after its
    last use. The function is kept on the model itself (not in a global cache, which would
    keep every model alive through the function's reference to it).
    """
    import tensorflow as tf

    attr = "_cocotune_training_fn" if training else "_cocotune_inference_fn"
    fn = getattr(model, attr, None)
    if fn is None:
        shape = tuple(model.inputs[0].shape) if len(model.inputs) == 1 else None
        spec = None
        if shape is not None and all(d is not None for d in shape[1:]):
            spec = [tf.TensorSpec((None, *shape[1:]), model.inputs[0].dtype or tf.float32)]
        fn = tf.function(
            lambda x: model(x, training=training),
            input_signature=spec,
            reduce_retracing=spec is None,
            autograph=False,
        )
        object.__setattr__(model, attr, fn)  # not tracked by Keras (not a layer/variable)
    return fn


def predict_outputs(model: keras.Model, x, batch_size: int | None = None) -> list:
    """Every output of ``model`` on ``x`` (numpy arrays), inference mode, bounded batches.

    ``x`` needs only ``len(x)``, slicing and ``x.shape`` (an array or a lazy image array).
    Returns one array per model output, batches concatenated along axis 0.
    """
    import numpy as np

    fn = inference_fn(model)
    size = batch_size or eval_batch_size(tuple(x.shape[1:]))
    parts: list[list] = []
    for start in range(0, len(x), size):
        outs = fn(np.asarray(x[start : start + size], dtype=np.float32))
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        parts.append([np.asarray(o) for o in outs])
    if not parts:
        return []
    return [np.concatenate(column) for column in zip(*parts)]
