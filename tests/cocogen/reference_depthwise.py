"""Numpy reference of a depthwise 3×3 convolution with TensorFlow semantics (NHWC, 'same' /
'valid' padding, depth multiplier 1)."""

from __future__ import annotations

import numpy as np


def depthwise3x3(
    x_hwc: np.ndarray, kernel: np.ndarray, bias, stride: int, padding: str, act: str = "none"
) -> np.ndarray:
    """One image HWC -> HWC in float64, plain loops over the 9 taps; ``kernel`` (3, 3, C, 1)."""
    h, w, c = x_hwc.shape
    if padding == "same":
        ho, wo = -(-h // stride), -(-w // stride)
        pt = max((ho - 1) * stride + 3 - h, 0) // 2
        pl = max((wo - 1) * stride + 3 - w, 0) // 2
    else:
        ho, wo, pt, pl = (h - 3) // stride + 1, (w - 3) // stride + 1, 0, 0
    xp = np.zeros((max(h + pt, (ho - 1) * stride + 3), max(w + pl, (wo - 1) * stride + 3), c))
    xp[pt : pt + h, pl : pl + w] = x_hwc
    out = np.zeros((ho, wo, c))
    k = np.asarray(kernel, np.float64)[..., 0]
    for oy in range(ho):
        for ox in range(wo):
            for dy in range(3):
                for dx in range(3):
                    out[oy, ox] += xp[oy * stride + dy, ox * stride + dx] * k[dy, dx]
    if bias is not None:
        out += bias
    if act == "relu":
        out = np.maximum(out, 0)
    elif act == "relu6":
        out = np.clip(out, 0, 6)
    return out
