"""Helpers every layer family shares: argument checks and axis handling.

Private to the package: each helper turns a Caffe-style argument (an int or an
``(h, w)`` pair, an NHWC axis) into one canonical form and raises the ``ValueError``
Keras users expect from a layer constructor, so every layer validates alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Keras registers every class here as "cocotune>Name" and saved .keras files record that name:
# changing it would orphan every saved model.
_PACKAGE = "cocotune"


def _pair(value, name: str) -> tuple[int, int]:
    """An int or a sequence of one or two ints as an ``(h, w)`` tuple of ints."""
    if isinstance(value, (int, np.integer)):
        return (int(value), int(value))
    if isinstance(value, Sequence) and len(value) in (1, 2):
        if all(isinstance(v, (int, np.integer)) for v in value):
            vals = tuple(int(v) for v in value)
            return (vals[0], vals[0]) if len(vals) == 1 else (vals[0], vals[1])
    raise ValueError(
        f"`{name}` must be an int or a pair (h, w) of ints. Received: {name}={value!r}"
    )


def _int_tuple(value, name: str) -> tuple[int, ...]:
    if isinstance(value, Sequence) and all(isinstance(v, (int, np.integer)) for v in value):
        return tuple(int(v) for v in value)
    raise ValueError(f"`{name}` must be a sequence of ints. Received: {name}={value!r}")


def _canonical_axis(axis: int, rank: int, name: str = "axis") -> int:
    """A non-negative axis of a rank-``rank`` tensor; the batch axis 0 is refused."""
    if not -rank <= axis < rank:
        raise ValueError(f"`{name}` is out of range for a rank-{rank} input. Received: {axis}")
    axis = axis + rank if axis < 0 else axis
    if axis == 0:
        raise ValueError(f"`{name}` must not be the batch axis 0. Received: {name}={axis}")
    return axis


def _spatial_dims(input_shape, layer: str) -> tuple[int, int]:
    if len(input_shape) != 4:
        raise ValueError(f"{layer} expects a 4-D (N, H, W, C) input. Received: {input_shape}")
    h, w = input_shape[1], input_shape[2]
    if h is None or w is None:
        raise ValueError(f"{layer} needs static spatial sizes. Received: input_shape={input_shape}")
    return int(h), int(w)
