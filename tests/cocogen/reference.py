"""Numpy reference of a 3×3 convolution with Keras/TensorFlow semantics (NHWC, HWIO)."""

from __future__ import annotations

import numpy as np

from cocotune.cocogen.kernel_spec import conv_geometry


def conv3x3(
    x_hwc: np.ndarray, kernel_hwio: np.ndarray, bias, stride: int, padding: str, relu: bool
) -> np.ndarray:
    """One image HWC -> HWC, computed in float64 by plain loops over the 9 taps."""
    h, w, c = x_hwc.shape
    ho, wo, pt, pl = conv_geometry(h, w, stride, padding)
    hp = max(h + pt, (ho - 1) * stride + 3)
    wp = max(w + pl, (wo - 1) * stride + 3)
    xp = np.zeros((hp, wp, c))
    xp[pt : pt + h, pl : pl + w] = x_hwc
    out = np.zeros((ho, wo, kernel_hwio.shape[3]))
    for dy in range(3):
        for dx in range(3):
            patch = xp[
                dy : dy + stride * (ho - 1) + 1 : stride, dx : dx + stride * (wo - 1) + 1 : stride
            ]
            out += patch @ kernel_hwio[dy, dx].astype(np.float64)
    if bias is not None:
        out += bias
    return np.maximum(out, 0) if relu else out
