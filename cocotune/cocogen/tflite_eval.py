"""``cocotune cocogen evaluate``: a build's ``model.tflite`` in the stock TFLite interpreter, with
and without our delegate: sizes, accuracy on a data set's test split, latency.

What a user deploying the build sees: the same file, the same interpreter
(``tf.lite.Interpreter``, XNNPACK by default), only ``experimental_delegates`` differs.
Accuracy runs every test image one at a time (the model is converted at batch 1). Latency is
the minimum over interleaved samples (:func:`cocotune.cocogen.autotune.time_interleaved`) of
back-to-back invokes on one image; on a shared machine the figures are noisy, the ratio less so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cocotune.cocogen.errors import CocogenError

__all__ = ["evaluate_build"]


def _interpreter(path: Path, delegates, threads: int):
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        it = tf.lite.Interpreter(
            model_path=str(path), experimental_delegates=list(delegates), num_threads=threads
        )
    it.allocate_tensors()
    return it


def _predict(it, x: np.ndarray) -> np.ndarray:
    inp = it.get_input_details()[0]
    out = it.get_output_details()[0]["index"]
    want = tuple(inp["shape"][1:])
    if tuple(x.shape[1:]) != want:
        raise CocogenError(f"the model takes inputs {want}, the data has {tuple(x.shape[1:])}")
    rows = []
    for i in range(len(x)):
        it.set_tensor(inp["index"], x[i : i + 1].astype(np.float32))
        it.invoke()
        rows.append(it.get_tensor(out).reshape(-1).copy())
    return np.stack(rows)


def evaluate_build(
    build_dir: str | Path,
    data: tuple | None = None,
    threads: tuple[int, ...] = (1,),
    rounds: int = 7,
    limit: int | None = None,
) -> dict:
    """Sizes, test accuracy and latency of ``build_dir/model.tflite``, stock vs our delegate.

    ``data``: ``(x_train, y_train, x_test, y_test)`` or None (no accuracy). ``limit``: evaluate
    only the first ``limit`` test images. Returns a dict (see ``cocogen evaluate``'s output).

    Raises:
        CocogenError: the directory has no model.tflite / delegate, or the data does not fit.
    """
    from cocotune.cocogen import delegate as dg
    from cocotune.cocogen.autotune import time_interleaved

    b = Path(build_dir)
    tfl = b / dg.TFLITE_FILE
    for f in (dg.TFLITE_FILE, dg.DELEGATE_LIB, dg.WEIGHTS_FILE):
        if not (b / f).is_file():
            raise CocogenError(
                f"'{build_dir}' has no {f} (not a build directory of 'cocotune cocogen compile')"
            )
    res: dict[str, Any] = {
        "tflite_bytes": tfl.stat().st_size,
        "keras_bytes": (
            (b / "model.keras").stat().st_size if (b / "model.keras").is_file() else None
        ),
        "delegate_bytes": (b / dg.DELEGATE_LIB).stat().st_size,
        "weights_bytes": (b / dg.WEIGHTS_FILE).stat().st_size,
    }
    res["threads"] = {}
    for t in threads:
        d = dg.load(b, num_threads=t)
        ours, stock = _interpreter(tfl, [d], t), _interpreter(tfl, [], t)
        st = dg.stats(b, d)
        row = {"claimed": st["claimed"], "refused": st["refused"]}
        shape = [1, *ours.get_input_details()[0]["shape"][1:]]
        x1 = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        for it in (ours, stock):
            it.set_tensor(it.get_input_details()[0]["index"], x1)
        t_ours, t_stock = time_interleaved(
            [ours.invoke, stock.invoke], rounds=rounds, min_time=2e-2
        )
        row.update(latency_ms_delegate=t_ours * 1e3, latency_ms_stock=t_stock * 1e3)
        row["speedup"] = t_stock / t_ours
        if data is not None and t == threads[0]:
            _, _, xte, yte = data
            if limit is not None:
                xte, yte = xte[:limit], yte[:limit]
            p_ours, p_stock = _predict(ours, xte), _predict(stock, xte)
            res["test_images"] = int(len(xte))
            res["accuracy_delegate"] = float(np.mean(p_ours.argmax(1) == yte))
            res["accuracy_stock"] = float(np.mean(p_stock.argmax(1) == yte))
            scale = np.maximum(np.abs(p_stock), 1.0)
            res["max_rel_err_vs_stock"] = float(np.max(np.abs(p_ours - p_stock) / scale))
        res["threads"][str(t)] = row
    return res
