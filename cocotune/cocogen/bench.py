"""Timing helpers shared by ``cocotune cocogen bench`` and ``benchmarks/cocogen.py``.

Method: every figure is the minimum over ``rounds`` interleaved samples (one sample of each
contender in turn, see :func:`cocotune.cocogen.autotune.time_interleaved`), each sample being
enough back-to-back calls to last about 2 ms, on the same input. Stock TensorFlow Lite runs the
same pruned weights (converted with ``tf.lite.TFLiteConverter``, float32, no optimisations)
through ``tf.lite.Interpreter(num_threads=n)``, i.e. its default XNNPACK path.

Ratios: ``speedup_vs_X = time_X / time_ours``. The FLOP-reduction bound is the speedup that
pruning alone would give if our kernel ran at TFLite's dense efficiency:
``bound = dense_MACs / pruned_MACs`` and ``bound_fraction = (tflite_time / our_time) / bound``
(1.0 = our sparse kernel is exactly as efficient per useful MAC as TFLite is per dense MAC).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from cocotune.cocogen.autotune import time_interleaved
from cocotune.cocogen.runtime import nhwc_to_chw

__all__ = ["TFLiteRunner", "conv_model", "bench_build", "summarise"]


class TFLiteRunner:
    """A Keras model converted to TFLite, run by the stock interpreter with ``threads`` threads."""

    def __init__(
        self, keras_model, threads: int = 1, content: bytes | None = None, delegates=None
    ) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import warnings

        import tensorflow as tf

        if content is None:
            content = tflite_bytes(keras_model)
        self.content = content
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.interp = tf.lite.Interpreter(
                model_content=content,
                num_threads=threads,
                experimental_delegates=list(delegates or []),
            )
        self.interp.allocate_tensors()
        self.inp = self.interp.get_input_details()[0]["index"]
        self.out = self.interp.get_output_details()[0]["index"]

    def set(self, x: np.ndarray) -> None:
        self.interp.set_tensor(self.inp, np.asarray(x, np.float32))

    def invoke(self) -> None:
        self.interp.invoke()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.set(x)
        self.invoke()
        return self.interp.get_tensor(self.out)


def tflite_bytes(keras_model, batch: int | None = None) -> bytes:
    """The model as float32 TFLite. ``batch=None``: the Keras input signature (dynamic batch);
    ``batch=1``: every input traced at batch 1, so every tensor has a static shape (shape
    computations such as a Flatten's are folded; a runtime that refuses graphs with
    dynamic-sized tensors, like our delegate, can take the whole model). The inference graph
    either way (``training=False``: BatchNorm uses its moving statistics and is folded)."""
    import contextlib
    import io

    import tensorflow as tf

    if batch is not None:
        import keras

        inputs = [keras.Input(batch_shape=(batch, *t.shape[1:])) for t in keras_model.inputs]
        outputs = keras_model(inputs if len(inputs) > 1 else inputs[0], training=False)
        keras_model = keras.Model(inputs, outputs)
    conv = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    with contextlib.redirect_stdout(io.StringIO()):
        return conv.convert()


def conv_model(shape_hwc, kernel, bias, stride: int, padding: str, relu: bool):
    """A one-layer Keras model: the given 3×3 convolution at batch 1."""
    import keras

    f = kernel.shape[3]
    inp = keras.Input(tuple(shape_hwc), batch_size=1)
    layer = keras.layers.Conv2D(
        f,
        3,
        strides=stride,
        padding=padding,
        activation="relu" if relu else None,
        use_bias=bias is not None,
    )
    m = keras.Model(inp, layer(inp))
    layer.set_weights([kernel] + ([bias] if bias is not None else []))
    return m


def summarise(rows: list[dict]) -> dict:
    """Min and mean of the per-layer bound fractions."""
    fr = [r["bound_fraction"] for r in rows if r.get("bound_fraction") is not None]
    return {
        "bound_fraction_min": float(min(fr)) if fr else None,
        "bound_fraction_mean": float(np.mean(fr)) if fr else None,
    }


def bench_build(build, threads=(1, 2), rounds: int = 7, log=print) -> dict:
    """Per compiled layer: our kernel vs a one-layer TFLite model; whole model: our chain
    (kernels + Keras for the rest) vs the whole model in TFLite, when the model is a chain."""
    rng = np.random.default_rng(0)
    layers = []
    for row in build.report["layers"]:
        if not row["qualifies"] or row.get("kind", "pattern") != "pattern":
            continue  # pointwise kernels run only in the delegate
        k = build.kernels[row["name"]]
        s = k.spec
        kern = build.model.get_layer(row["name"])
        w = kern.get_weights()
        m = conv_model(
            (s.h, s.w, s.cin), w[0], w[1] if len(w) > 1 else None, s.stride, s.padding, s.relu
        )
        x = rng.standard_normal((1, s.h, s.w, s.cin)).astype(np.float32)
        xc = nhwc_to_chw(x)
        out = np.empty(k.out_shape, np.float32)
        content = tflite_bytes(m)
        fns: list[Callable[[], object]] = []
        names: list[str] = []
        for t in threads:
            fns.append(partial(k, xc, t, out))
            names.append(f"ours_{t}t")
        for t in threads:
            r = TFLiteRunner(None, t, content)
            r.set(x)
            fns.append(r.invoke)
            names.append(f"tflite_{t}t")
        times = dict(zip(names, time_interleaved(fns, rounds=rounds)))
        bound = row["macs_dense"] / max(row["macs_pruned"], 1)
        res = {
            "name": row["name"],
            "kernel": row["kernel"],
            "seconds": times,
            "fkw_bytes": row["fkw_bytes"],
            "csr_bytes": row["csr_bytes"],
            "mac_reduction": bound,
        }
        for t in threads:
            res[f"speedup_vs_tflite_{t}t"] = times[f"tflite_{t}t"] / times[f"ours_{t}t"]
        res["bound_fraction"] = res[f"speedup_vs_tflite_{threads[0]}t"] / bound
        log(f"{row['name']:>16}: " + ", ".join(f"{n} {v * 1e3:.3f} ms" for n, v in times.items()))
        layers.append(res)
    result = {
        "layers": layers,
        **summarise(layers),
        "fkw_bytes": int(sum(r["fkw_bytes"] for r in layers)),
        "csr_bytes": int(sum(r["csr_bytes"] for r in layers)),
    }
    if build.report.get("chain"):
        model = build.model
        x = rng.standard_normal((1, *model.input_shape[1:])).astype(np.float32)
        content = tflite_bytes(model)
        fns, names = [], []
        for t in threads:
            build.run(x, t, stock="tflite")  # builds the stock layers' interpreters
            fns.append(partial(build.run, x, t, stock="tflite"))
            names.append(f"ours_{t}t")
        for t in threads:
            r = TFLiteRunner(None, t, content)
            r.set(x)
            fns.append(r.invoke)
            names.append(f"tflite_{t}t")
        times = dict(zip(names, time_interleaved(fns, rounds=rounds)))
        result["whole_model"] = {
            "seconds": times,
            **{
                f"speedup_vs_tflite_{t}t": times[f"tflite_{t}t"] / times[f"ours_{t}t"]
                for t in threads
            },
            "note": "ours = generated kernels + one-layer TFLite models (stock interpreter) "
            "for the layers left to the stock runtime",
        }
        log("whole model: " + ", ".join(f"{n} {v * 1e3:.3f} ms" for n, v in times.items()))
    return result


def loadavg() -> list[float] | None:
    """1/5/15-minute load averages: other processes on a 2-core machine skew the timings (the
    2-thread ones above all), so every benchmark records them."""
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


def machine_info() -> dict:
    """What a benchmark JSON records about the machine at its start (``loadavg_after`` is
    added at the end)."""
    import platform

    from cocotune.cocogen.build import isa_tag

    return {
        "loadavg_before": loadavg(),
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
        "isa": isa_tag(),
        "GOMP_SPINCOUNT": os.environ.get("GOMP_SPINCOUNT"),
    }


def write_json(obj: dict, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(obj, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, p)
    return p
