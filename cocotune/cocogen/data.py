"""Training data for ``cocogen prune`` and ``cocogen evaluate``: scikit-learn's digits or an
``.npz`` file.

The ``.npz`` rules (keys, dtypes, shapes, labels, and messages naming the file and key) are the
generated scripts' own, :func:`cocotune.runtime.data.read_npz`, so a file one command accepts
the other accepts too. The model is loaded after the data, so images are checked for being
images here and against the model's input by the command.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cocotune.cocogen.errors import CocogenError
from cocotune.errors import CocotuneError

__all__ = ["load_data"]


def load_data(spec: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)``, images NHWC float32, labels int64.

    ``digits``: scikit-learn's bundled 8×8 digits as (N, 8, 8, 1) in [0, 1], with the same fixed
    train/test split as the rest of cocotune (:func:`cocotune.runtime.data.load_digits_split`).
    A path: an ``.npz`` holding ``x_train, y_train, x_test, y_test`` (and optionally ``x_val,
    y_val``, checked but not used here); ``(N, H, W)`` images get a channel axis.

    Raises:
        CocogenError: ``spec`` is neither, or the file breaks a rule of
            :func:`cocotune.runtime.data.read_npz` (same message and notes).
    """
    from cocotune.runtime.data import load_digits_split, read_npz

    if spec == "digits":
        return load_digits_split()
    p = Path(spec)
    if not p.is_file():
        raise CocogenError(f"--data '{spec}' is neither 'digits' nor an existing .npz file")
    try:
        xs, ys, _notes = read_npz(p)
    except CocotuneError as exc:
        raise CocogenError(exc.message, notes=exc.notes) from None
    return xs["train"], ys["train"], xs["test"], ys["test"]
