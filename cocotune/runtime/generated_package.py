"""A generated package, as the runtime loops see it: net, plan, model code, tuning data, files.

The package directory holds ``net.prototxt`` and ``tuning.json``; re-reading them costs a
fraction of a second and no TensorFlow, and keeps the generated scripts thin (docs/design.md §6).
This module *reads* a package at run time; :mod:`cocotune.gen.write_package` *writes* one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from cocotune.errors import CocotuneError


@dataclass(frozen=True)
class Configuration:
    id: str
    rates: dict[str, float]
    params: int
    macs: int
    composite: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rates": self.rates,
            "params": self.params,
            "flops": 2 * self.macs,
            "composite": list(self.composite),
        }


class Package:
    """One directory written by ``cocotune gen``."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        path = self.dir / "tuning.json"
        if not path.is_file():
            raise CocotuneError(f"{self.dir} is not a cocotune package (no tuning.json)")
        try:
            self.doc = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise CocotuneError(f"{path}: not valid JSON ({exc})") from None

    # --- static description -------------------------------------------------------------------

    @cached_property
    def net(self):
        from cocotune.frontend.load import load_net

        return load_net(self.dir / self.doc.get("prototxt", "net.prototxt"))

    @cached_property
    def plan(self):
        from cocotune.convert.plan import plan_net

        return plan_net(self.net)

    @cached_property
    def analysis(self):
        from cocotune.tuning.pruning import analyze_pruning

        return analyze_pruning(self.net)

    @cached_property
    def model_module(self):
        from cocotune.files import import_generated

        return import_generated(self.dir / "model.py")

    @property
    def modules(self) -> list[str]:
        return [m["name"] for m in self.doc["modules"]]

    @cached_property
    def configurations(self) -> list[Configuration]:
        return [
            Configuration(
                c["id"],
                {k: float(v) for k, v in c["rates"].items()},
                int(c["params"]),
                int(c["macs"]),
                tuple(c["composite"]),
            )
            for c in self.doc["configurations"]
        ]

    @property
    def blocks(self) -> list[dict]:
        return list(self.doc["blocks"])

    @property
    def full_params(self) -> int:
        return int(self.doc["full"]["params"])

    @cached_property
    def input_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of the model's single input."""
        inputs = self.plan.model_inputs
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise CocotuneError("training needs a net with one 4-axis (N,C,H,W) input")
        _, c, h, w = inputs[0].shape
        return (h, w, c)

    @cached_property
    def num_classes(self) -> int:
        outputs = self.plan.model_outputs
        if len(outputs) != 1:
            raise CocotuneError(
                f"training needs a net with one output; this one has "
                f"{', '.join(b.name for b in outputs)}"
            )
        shape = outputs[0].shape
        return int(np.prod(shape[1:]))

    @cached_property
    def outputs_probabilities(self) -> bool:
        """True when the output is a Softmax (loss on probabilities), False for logits."""
        blob = self.plan.model_outputs[0]
        return blob.producer is not None and blob.producer.type == "Softmax"

    # --- files --------------------------------------------------------------------------------

    @property
    def full_weights_path(self) -> Path:
        return self.dir / "full.weights.h5"

    @property
    def runs_dir(self) -> Path:
        return self.dir / "runs"

    @property
    def blocks_dir(self) -> Path:
        return self.dir / "blocks"

    def block_path(self, block_id: str) -> Path:
        return self.blocks_dir / f"{block_id}.weights.h5"

    def build(self, mode: str = "full", prune_info: dict | None = None):
        return self.model_module.build_model(mode, prune_info)

    def full_caffe_weights(self) -> dict[str, list[np.ndarray]]:
        """The full model's weights in Caffe layout (from full.weights.h5)."""
        from cocotune.convert.weights import keras_to_caffe

        if not self.full_weights_path.exists():
            raise CocotuneError(
                f"{self.full_weights_path} does not exist: run train.py first "
                "(or generate the package with --weights model.caffemodel)"
            )
        model = self.build("full")
        model.load_weights(str(self.full_weights_path))
        return keras_to_caffe(self.plan, model)
