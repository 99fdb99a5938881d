"""Numpy references of a 1×1 convolution and a fully connected layer (Keras semantics)."""

from __future__ import annotations

import numpy as np


def conv1x1(x_hwc: np.ndarray, kernel, bias, stride: int, relu: bool) -> np.ndarray:
    """One image HWC -> HWC in float64, by an explicit loop over input channels.

    A 1×1 convolution reads input pixel ``(s·y, s·x)`` for output ``(y, x)``; 'same' and
    'valid' padding coincide for a 1×1 kernel (output ``ceil(n / s)``, no padding)."""
    k = np.asarray(kernel, np.float64).reshape(kernel.shape[-2], kernel.shape[-1])
    xs = np.asarray(x_hwc, np.float64)[::stride, ::stride]
    out = np.zeros(xs.shape[:2] + (k.shape[1],))
    for c in range(k.shape[0]):
        out += xs[:, :, c : c + 1] * k[c]
    if bias is not None:
        out += np.asarray(bias, np.float64)
    return np.maximum(out, 0) if relu else out


def dense(x: np.ndarray, kernel, bias, relu: bool) -> np.ndarray:
    """A fully connected layer on one vector, float64."""
    out = conv1x1(np.asarray(x).reshape(1, 1, -1), kernel, bias, 1, relu)
    return out.reshape(-1)
