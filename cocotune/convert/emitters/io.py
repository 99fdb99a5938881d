"""Inputs and the layers a Keras model leaves to its training loop.

Input and data layers become ``keras.Input`` (a data layer's label top is a training target,
not a model input). Losses, Accuracy and Silence produce no model code: the generated package
turns them into the loss and metric of its training scripts. Which types these are is said by
their catalogue entries (``emitter="InputEmitter"`` / ``"TrainingOnlyEmitter"``), not here.
"""

from __future__ import annotations

from cocotune.convert.emitters.base import Call, Emitter, pyrepr
from cocotune.convert.layout import tf_shape


class InputEmitter(Emitter):
    def model_inputs(self, plan) -> list[int]:
        """Indices of the tops that are model inputs (all for Input, the first for data)."""
        # The emitter's own distinction between the types it converts (Input: every top is
        # an input; a data reader: its second top is a label for the training scripts).
        if plan.layer.type == "Input":
            return list(range(len(plan.out_vars)))
        return [0]

    def calls(self, plan, gen):
        calls = []
        for i in self.model_inputs(plan):
            shape = tf_shape(plan.out_shapes[i], plan.out_layouts[i])[1:]
            calls.append(
                Call(
                    plan.out_vars[i],
                    "keras.Input",
                    [],
                    kwargs={"shape": pyrepr(tuple(shape))},
                    name=gen.name(plan.info["input_names"][i]),
                )
            )
        return calls


class TrainingOnlyEmitter(Emitter):
    skip = True

    def calls(self, plan, gen):
        return []
