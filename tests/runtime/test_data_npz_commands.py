"""One set of ``.npz`` rules: the generated scripts' ``--data`` (``load_dataset``, what
``options.load_data`` calls) and ``cocogen prune/evaluate --data`` (``cocogen.data.load_data``)
accept and reject the same files, with the same message naming the file and the key.

Only the checks that need the net differ by nature: the scripts check images and labels against
the net's input and class count while loading, cocogen checks the input shape once it has loaded
the model. The files here fit the net (6×6×1 images, 3 classes), so every verdict must agree.
"""

from __future__ import annotations

import numpy as np
import pytest

from cocotune.cocogen.data import load_data as cocogen_load
from cocotune.cocogen.errors import CocogenError
from cocotune.errors import CocotuneError
from cocotune.runtime.data import load_dataset

X = np.arange(4 * 6 * 6, dtype=np.float32).reshape(4, 6, 6, 1)
Y = np.array([0, 1, 2, 1])


def _nan() -> np.ndarray:
    x = X.copy()
    x[2, 1, 1, 0] = np.nan
    return x


# name -> (arrays, None when both accept it, else a part both messages must contain)
CASES: dict[str, tuple[dict, str | None]] = {
    "nhwc": ({"x_train": X, "y_train": Y, "x_test": X, "y_test": Y}, None),
    "nhw uint8": (
        {
            "x_train": X[..., 0].astype(np.uint8),
            "y_train": Y,
            "x_test": X[..., 0].astype(np.uint8),
            "y_test": Y,
        },
        None,
    ),
    "validation part": (
        {"x_train": X, "y_train": Y, "x_test": X, "y_test": Y, "x_val": X, "y_val": Y},
        None,
    ),
    "integer float and column labels": (
        {"x_train": X, "y_train": Y.astype(float), "x_test": X, "y_test": Y[:, None]},
        None,
    ),
    "missing key": ({"x_train": X, "y_train": Y, "x_test": X}, "lacks y_test"),
    "half validation": (
        {"x_train": X, "y_train": Y, "x_test": X, "y_test": Y, "x_val": X},
        "lacks y_val",
    ),
    "text images": (
        {"x_train": np.full((4, 6, 6), "a"), "y_train": Y, "x_test": X, "y_test": Y},
        "x_train has dtype <U1; images must be numbers",
    ),
    "5-D images": (
        {"x_train": X[..., None], "y_train": Y, "x_test": X, "y_test": Y},
        "x_train has shape (N, 6, 6, 1, 1)",
    ),
    "NaN": (
        {"x_train": X, "y_train": Y, "x_test": _nan(), "y_test": Y},
        "x_test[2] contains NaN or infinity",
    ),
    "fractional label": (
        {"x_train": X, "y_train": [0, 1.5, 2, 1], "x_test": X, "y_test": Y},
        "y_train[1] = 1.5 is not an integer class index",
    ),
    "one-hot labels": (
        {"x_train": X, "y_train": np.eye(3)[Y], "x_test": X, "y_test": Y},
        "y_train has shape (4, 3); labels must be one index per image (one-hot?",
    ),
    "negative label": (
        {"x_train": X, "y_train": Y, "x_test": X, "y_test": [0, -1, 0, 0]},
        "y_test[1] = -1 is not a class",
    ),
    "count mismatch": (
        {"x_train": X, "y_train": Y[:3], "x_test": X, "y_test": Y},
        "x_train has 4 images but y_train has 3 labels",
    ),
    "empty test": (
        {"x_train": X, "y_train": Y, "x_test": X[:0], "y_test": Y[:0]},
        "x_test is empty",
    ),
}


def _verdict(load, path: str) -> tuple[str, object]:
    try:
        return "accepted", load(path)
    except CocotuneError as exc:
        return "rejected", exc


@pytest.mark.parametrize("name", list(CASES))
def test_both_commands_give_the_same_verdict(tmp_path, name):
    arrays, problem = CASES[name]
    path = str(tmp_path / "data.npz")
    np.savez(path, **arrays)
    scripts, ds = _verdict(lambda p: load_dataset(p, (6, 6, 1), 3, val_fraction=0), path)
    cocogen, data = _verdict(cocogen_load, path)
    assert scripts == cocogen == ("accepted" if problem is None else "rejected")
    if problem is None:
        for got, want in zip(data, (ds.x_train, ds.y_train, ds.x_test, ds.y_test)):
            np.testing.assert_array_equal(got, want)
            assert got.dtype == want.dtype
        return
    assert isinstance(data, CocogenError)
    for exc in (ds, data):
        assert exc.message.startswith(f"'{path}'"), exc.message
        assert problem in exc.message, exc.message


def test_both_commands_reject_a_file_that_is_not_npz(tmp_path):
    path = tmp_path / "data.npz"
    path.write_bytes(b"PK\x03\x04 truncated zip")
    for load in (lambda p: load_dataset(p, (6, 6, 1), 3), cocogen_load):
        with pytest.raises(CocotuneError, match=f"cannot read '{path}' as an .npz file"):
            load(str(path))
