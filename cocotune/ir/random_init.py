"""Plausible random values for a layer's learnable blobs, one initialiser per kind of blob set.

Plausible means activations neither explode nor vanish through a deep net: weights are
He-normal (std ``sqrt(2 / fan_in)``), biases small, BatchNorm variances near 1 and Scale
gammas near 1, so that conversions can be compared numerically on realistic values. Each
catalogue entry with blobs names its initialiser (``LayerType.init``);
:func:`cocotune.caffemodel.random_weights` seeds one generator per layer and calls it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from cocotune.ir.catalogue import BlobSpec, InitFn
from cocotune.ir.net import Layer, Shape

__all__ = ["batch_norm", "bias", "he_normal", "prelu", "scale"]


def he_normal(fan_in: Callable[[Layer, Shape], int]) -> InitFn:
    """Weights (blob 0) He-normal for ``fan_in(layer, weight shape)``; a bias (blob 1) small."""

    def init(layer: Layer, specs: list[BlobSpec], rng: np.random.Generator, bn_factor):
        w = specs[0].shape
        blobs = [rng.normal(0.0, math.sqrt(2.0 / max(fan_in(layer, w), 1)), w)]
        if len(specs) > 1:
            blobs.append(rng.uniform(-0.1, 0.1, specs[1].shape))
        return blobs

    return init


def batch_norm(layer: Layer, specs: list[BlobSpec], rng: np.random.Generator, bn_factor):
    """Caffe's running *sums* (mean and variance times the factor) and the factor itself.

    ``bn_factor`` None draws one from U(0.5, 2); a value other than 1 checks that converters
    divide by it, as Caffe does at test time.
    """
    factor = bn_factor if bn_factor is not None else float(rng.uniform(0.5, 2.0))
    mean = rng.normal(0.0, 0.1, specs[0].shape)
    var = rng.uniform(0.5, 1.5, specs[1].shape)
    return [mean * factor, var * factor, np.full(specs[2].shape, factor)]


def scale(layer: Layer, specs: list[BlobSpec], rng: np.random.Generator, bn_factor):
    """Gammas near 1 (absent with a second bottom) and a small beta (with bias_term)."""
    blobs = []
    if specs and specs[0].name == "scale":
        blobs.append(rng.uniform(0.5, 1.5, specs[0].shape))
    if specs and specs[-1].name == "bias":
        blobs.append(rng.normal(0.0, 0.1, specs[-1].shape))
    return blobs


def bias(layer: Layer, specs: list[BlobSpec], rng: np.random.Generator, bn_factor):
    return [rng.normal(0.0, 0.1, specs[0].shape)]


def prelu(layer: Layer, specs: list[BlobSpec], rng: np.random.Generator, bn_factor):
    """Slopes in [0, 0.5): a leaky, never inverting, rectifier."""
    return [rng.uniform(0.0, 0.5, specs[0].shape)]
