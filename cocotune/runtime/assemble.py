"""Weights for pruned networks: L1-pruned from the full model, then overlaid with trained blocks.

Everything is done in Caffe layout (numpy), where pruning is defined (docs/design.md §3), and turned
into Keras variables only when set on a model, through the same plan the code came from:

- :func:`default_weights`: the full model's weights with each module's filters chosen by L1
  norm — the start of plain fine-tuning (the paper's "default" networks);
- :func:`block_trained_weights`: the same, with every block of the configuration's composite
  vector replacing its modules' layers by the weights it learned in pre-training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from cocotune.convert.plan import NetPlan
from cocotune.convert.weights import caffe_to_keras, keras_to_caffe, set_weights
from cocotune.errors import WeightsError
from cocotune.runtime.model import block_prefix
from cocotune.tuning.pruning import PruningAnalysis, pruned_weights

CaffeWeights = dict[str, list[np.ndarray]]


def default_weights(
    net_plan: NetPlan,
    full: Mapping[str, list[np.ndarray]],
    rates: Mapping[str, float],
    analysis: PruningAnalysis | None = None,
) -> CaffeWeights:
    """Full weights → the pruned network's weights (L1 filter choice, docs/design.md §3)."""
    weights, _ = pruned_weights(net_plan.net, full, rates, analysis)
    return dict(weights)


def block_layers(net_plan: NetPlan, modules: Sequence[str]) -> list[str]:
    """Caffe layers (with weights) of the given modules."""
    wanted = set(modules)
    return [
        m_plan.layer.name
        for module in net_plan.modules
        if module.name in wanted
        for m_plan in module.plans
        if m_plan.emitter.has_weights(m_plan) or m_plan.fused_into
    ]


def student_weights(net_plan: NetPlan, pretrain_model, block: Mapping) -> CaffeWeights:
    """One block's student weights out of a "pretrain" model, in Caffe layout."""
    prefix = block_prefix(block["id"])
    caffe = keras_to_caffe(net_plan, pretrain_model, prefix=prefix)
    layers = set(block_layers(net_plan, block["modules"]))
    return {name: blobs for name, blobs in caffe.items() if name in layers}


def block_trained_weights(
    net_plan: NetPlan,
    full: Mapping[str, list[np.ndarray]],
    rates: Mapping[str, float],
    composite: Sequence[str],
    blocks: Mapping[str, CaffeWeights],
    analysis: PruningAnalysis | None = None,
) -> CaffeWeights:
    """Default weights of a configuration, overlaid with its composite vector's blocks."""
    weights = default_weights(net_plan, full, rates, analysis)
    for block_id in composite:
        if block_id not in blocks:
            raise WeightsError(f"tuning block '{block_id}' has no trained weights")
        for layer, blobs in blocks[block_id].items():
            expected = weights.get(layer)
            if expected is not None and [b.shape for b in expected] != [b.shape for b in blobs]:
                raise WeightsError(
                    f"block '{block_id}' layer '{layer}': trained shapes "
                    f"{[b.shape for b in blobs]} do not match the configuration's "
                    f"{[b.shape for b in expected]}"
                )
            weights[layer] = [np.asarray(b, dtype=np.float32) for b in blobs]
    return weights


def load_into(
    model, net_plan: NetPlan, weights: Mapping[str, list[np.ndarray]], prefix="", strict=True
) -> None:
    """Set Caffe-layout weights on a generated model (layers matched by name).

    ``strict=False`` skips layers the model does not have (a "pretrain" model holds only the
    part of the teacher its blocks need).
    """
    set_weights(model, caffe_to_keras(net_plan, weights, prefix=prefix), strict=strict)


# --- block files: one HDF5 per block, Caffe layer -> blobs (written atomically) --------------


def save_block(path: str | Path, weights: Mapping[str, list[np.ndarray]], meta: Mapping) -> None:
    """Write a block's weights to ``path`` via a temp file + rename (a killed run loses nothing)."""
    import json
    import os
    import tempfile

    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["cocotune_block"] = json.dumps(dict(meta))
            for layer, blobs in weights.items():
                group = f.create_group(layer.replace("/", "\u2215"))
                group.attrs["layer"] = layer
                for i, blob in enumerate(blobs):
                    group.create_dataset(str(i), data=np.asarray(blob, dtype=np.float32))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_block(path: str | Path) -> tuple[CaffeWeights, dict]:
    import json

    import h5py

    out: CaffeWeights = {}
    try:
        with h5py.File(path, "r") as f:
            meta = json.loads(f.attrs["cocotune_block"])
            for group in f.values():
                layer = group.attrs["layer"]
                out[layer] = [np.asarray(group[str(i)]) for i in range(len(group))]
    except (OSError, KeyError) as exc:
        raise WeightsError(f"cannot read block weights '{path}': {exc}") from None
    return out, meta
