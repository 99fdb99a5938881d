"""Training data for ``cocogen prune``: scikit-learn's digits or an ``.npz`` file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cocotune.cocogen.errors import CocogenError

__all__ = ["load_data"]

_KEYS = ("x_train", "y_train", "x_test", "y_test")


def load_data(spec: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)``, images NHWC float32.

    ``digits``: scikit-learn's bundled 8×8 digits as (N, 8, 8, 1) in [0, 1], with the same fixed
    train/test split as the rest of cocotune (:func:`cocotune.runtime.data.load_digits_split`).
    A path: an ``.npz`` holding ``x_train, y_train, x_test, y_test`` (3-D images get a channel axis).
    """
    if spec == "digits":
        from cocotune.runtime.data import load_digits_split

        return load_digits_split()
    p = Path(spec)
    if not p.is_file():
        raise CocogenError(f"--data '{spec}' is neither 'digits' nor an existing .npz file")
    try:
        z = np.load(p)
    except (OSError, ValueError) as exc:
        raise CocogenError(f"cannot read --data '{spec}' as .npz: {exc}") from None
    missing = [k for k in _KEYS if k not in z]
    if missing:
        raise CocogenError(f"--data '{spec}' lacks arrays {missing} (needs {', '.join(_KEYS)})")
    out = []
    for k in _KEYS:
        a = np.asarray(z[k])
        if k.startswith("x"):
            a = a.astype(np.float32)
            if a.ndim == 3:
                a = a[..., None]
            if a.ndim != 4:
                raise CocogenError(
                    f"--data '{spec}': {k} has shape {a.shape}, expected (N, H, W[, C])"
                )
        else:
            a = a.astype(np.int64).reshape(-1)
        out.append(a)
    return tuple(out)
