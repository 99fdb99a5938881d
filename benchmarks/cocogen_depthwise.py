"""Pattern-pruned depthwise 3×3 convolutions (MobileNetV2 at 224×224): our kernels vs stock TFLite.

Usage::

    python benchmarks/cocogen_depthwise.py [--quick] [--rounds N] [--out DIR] [--no-model]

Does a depthwise 3×3 kernel pruned to one 4-tap pattern per group of 16 channels (2.25× fewer
MACs, :mod:`cocotune.cocogen.depthwise`) pay against XNNPACK's depthwise convolution? Layers:
the 10 distinct depthwise shapes of ``keras.applications.MobileNetV2`` at 224×224, batch 1
(17 layers; its stride-2 ones are ZeroPadding2D + 'valid', the same work as 'same' padding,
which the one-op models here use). Weights are random (He normal, fan-in 9) with a random bias,
ReLU6 fused (MobileNetV2's BatchNorm + ReLU6 after each depthwise convolution fold into it).

Contenders, all on the same input and the same pruned weights, float32:

- ours: the generated kernel (``codegen_templates/c/dwconv3x3_nhwc.c.j2``), NHWC in and out,
  tiling autotuned at 1 thread among 6, called through ctypes (1 thread);
- ours_delegate: the same layer's one-op ``.tflite`` in the stock interpreter with the
  delegate of a ``cocogen compile`` build of these layers (its own autotuning), 1 and 2 threads
  (the delegate's thread pool): what a user runs; the 2-thread speedups use it;
- tflite: the pruned layer as a one-op model (Keras DepthwiseConv2D, ReLU6 fused by the
  converter) run by ``tf.lite.Interpreter(num_threads=n)``: its default XNNPACK path, which
  multiplies the zeros;
- tflite_dense: the unpruned layer in TFLite (1 thread).

Method: per layer, all contenders timed interleaved (:func:`cocotune.cocogen.autotune.
time_interleaved`: one sample of each in turn, each ~2 ms of back-to-back calls, minimum over N
rounds). ``bound_fraction = (tflite_1t / ours_1t) / (dense_MACs / pruned_MACs)`` (MAC reduction
9/4 = 2.25). The share of MobileNetV2's time in its depthwise layers is Σ count × the one-op
model's time over the whole ``.tflite`` model's time (stock interpreter, same thread count,
timed interleaved with the layers' models in the same run); ``projected_whole_model_speedup``
applies Amdahl's law with the measured per-layer times. Then the real thing: MobileNetV2
(random weights and BatchNorm statistics) with every depthwise layer projected, through
``cocogen compile`` and its delegate in the stock interpreter vs the same ``model.tflite``
without it, 1 and 2 threads, outputs compared (``mobilenetv2_delegate``). Writes
``cocogen_depthwise.json``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# as benchmarks/cocogen.py: short OpenMP spinning on a 2-core machine shared with others
os.environ.setdefault("GOMP_SPINCOUNT", "20000")

from cocotune.cocogen import delegate as dg  # noqa: E402
from cocotune.cocogen.autotune import time_interleaved  # noqa: E402
from cocotune.cocogen.bench import (  # noqa: E402
    TFLiteRunner,
    loadavg,
    machine_info,
    tflite_bytes,
    write_json,
)
from cocotune.cocogen.depthwise import project_depthwise  # noqa: E402
from cocotune.cocogen.depthwise_runtime import (  # noqa: E402
    build_depthwise,
    depthwise_data,
    spec_for,
    tune_depthwise,
)

# MobileNetV2 (alpha 1.0) at 224x224: name, H, W, C, stride, count (keras.applications layer list)
SHAPES = [
    ("dw112x112x32_s1", 112, 112, 32, 1, 1),
    ("dw112x112x96_s2", 112, 112, 96, 2, 1),
    ("dw56x56x144_s1", 56, 56, 144, 1, 1),
    ("dw56x56x144_s2", 56, 56, 144, 2, 1),
    ("dw28x28x192_s1", 28, 28, 192, 1, 2),
    ("dw28x28x192_s2", 28, 28, 192, 2, 1),
    ("dw14x14x384_s1", 14, 14, 384, 1, 4),
    ("dw14x14x576_s1", 14, 14, 576, 1, 2),
    ("dw14x14x576_s2", 14, 14, 576, 2, 1),
    ("dw7x7x960_s1", 7, 7, 960, 1, 3),
]


def one_op_model(h: int, w: int, c: int, stride: int, kernel: np.ndarray, bias: np.ndarray):
    """The layer alone as a batch-1 Keras model (DepthwiseConv2D 3×3, 'same', ReLU6)."""
    import keras

    inp = keras.Input((h, w, c), batch_size=1)
    layer = keras.layers.DepthwiseConv2D(3, strides=stride, padding="same", activation="relu6")
    m = keras.Model(inp, layer(inp))
    layer.set_weights([kernel, bias])
    return m


def reference(x: np.ndarray, k: np.ndarray, b: np.ndarray, stride: int) -> np.ndarray:
    """float64 numpy depthwise 3×3, 'same' padding, bias, ReLU6 (the independent check)."""
    from cocotune.cocogen.emit_depthwise import same_padding

    h, w, _ = x.shape
    ho, pt, pb = same_padding(h, stride)
    wo, pl, pr = same_padding(w, stride)
    xp = np.pad(x.astype(np.float64), ((pt, pb), (pl, pr), (0, 0)))
    out = np.zeros((ho, wo, x.shape[2])) + b
    for dy in range(3):
        for dx in range(3):
            win = xp[
                dy : dy + stride * (ho - 1) + 1 : stride, dx : dx + stride * (wo - 1) + 1 : stride
            ]
            out += win * k[dy, dx, :, 0]
    return np.clip(out, 0, 6)


def delegate_build(rows: list[dict], work: Path) -> Path:
    """One ``cocogen compile`` build holding every layer's kernel: a Keras model with one
    branch (input → DepthwiseConv2D) per layer; each layer's one-op ``.tflite`` then runs with
    this build's delegate, which claims its node by shape and support."""
    import keras

    from cocotune.cocogen.pipeline import compile_model

    ins, outs, layers = [], [], []
    for i, r in enumerate(rows):
        inp = keras.Input((r["h"], r["w"], r["c"]), batch_size=1, name=f"in{i}")
        layer = keras.layers.DepthwiseConv2D(
            3, strides=r["stride"], padding="same", activation="relu6", name=f"dw{i}"
        )
        ins.append(inp)
        outs.append(layer(inp))
        layers.append(layer)
    m = keras.Model(ins, outs)
    for layer, r in zip(layers, rows):
        layer.set_weights([r["p"].kernel, r["b"]])
    m.save(work / "layers.keras")
    compile_model(work / "layers.keras", work / "build", tune=True, log=lambda *a: None)
    return work / "build"


def bench_layers(quick: bool, rounds: int, log, work: Path) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for i, (name, h, w, c, s, count) in enumerate(SHAPES):
        if quick:
            h, w, c = max(h // 4, 4), max(w // 4, 4), max(c // 4, 16)
        k = (rng.standard_normal((3, 3, c, 1)) * np.sqrt(2.0 / 9)).astype(np.float32)
        b = (0.1 * rng.standard_normal(c)).astype(np.float32)
        p = project_depthwise(k)
        spec = spec_for(h, w, c, p.patterns, s, "same", "relu6", index=i)
        rows.append(dict(name=name, h=h, w=w, c=c, stride=s, count=count, k=k, b=b, p=p, spec=spec))
    t = time.perf_counter()
    tuned = tune_depthwise(
        [(r["spec"], r["p"].kernel, r["b"]) for r in rows], work / "tune", 1, max(3, rounds // 2)
    )
    log(f"autotuned {len(rows)} layers in {time.perf_counter() - t:.1f} s")
    lib = build_depthwise([tr.best for tr in tuned], work / "best", "libdw_best.so")
    build = delegate_build(rows, work)
    out_rows = []
    for r, tr in zip(rows, tuned):
        spec, pk, b = tr.best, r["p"].kernel, r["b"]
        ours = lib.kernel(spec, depthwise_data(spec, pk, b))
        x4 = rng.standard_normal((1, r["h"], r["w"], r["c"])).astype(np.float32)
        x = np.ascontiguousarray(x4[0])
        out = np.empty(ours.out_shape, np.float32)
        content = tflite_bytes(one_op_model(r["h"], r["w"], r["c"], r["stride"], pk, b))
        content_dense = tflite_bytes(one_op_model(r["h"], r["w"], r["c"], r["stride"], r["k"], b))
        dels = [dg.load(build), dg.load(build)]
        runners = {
            "ours_delegate_1t": TFLiteRunner(None, 1, content, [dels[0]]),
            "ours_delegate_2t": TFLiteRunner(None, 2, content, [dels[1]]),
            "tflite_1t": TFLiteRunner(None, 1, content),
            "tflite_2t": TFLiteRunner(None, 2, content),
            "tflite_dense_1t": TFLiteRunner(None, 1, content_dense),
        }
        ref_tfl = runners["tflite_1t"](x4)[0]
        err_del = float(
            np.abs(runners["ours_delegate_2t"](x4)[0] - ref_tfl).max() / np.abs(ref_tfl).max()
        )
        claimed = [dg.stats(build, d)["claimed"] for d in dels]
        if claimed != [1, 1]:
            raise SystemExit(f"{r['name']}: the delegate claimed {claimed} nodes, not 1")
        got = ours(x, 1, out).copy()
        ref64 = reference(x, pk, b, r["stride"])
        scale = max(float(np.abs(ref64).max()), 1e-30)
        err_tfl = float(np.abs(got - ref_tfl).max() / scale)
        err_ref = float(np.abs(got - ref64).max() / scale)
        for rn in runners.values():
            rn.set(x4)
        fns = {
            "ours_1t": ours.bound(x, out, 1),
            **{n: rn.invoke for n, rn in runners.items()},
        }
        times = dict(zip(fns, time_interleaved(list(fns.values()), rounds=rounds)))
        bound = spec.macs_dense / spec.macs_pruned
        res = {
            "name": r["name"],
            "shape": {key: r[key] for key in ("h", "w", "c", "stride")},
            "count": r["count"],
            "kernel": spec.name,
            "tile": spec.tile.tag,
            "distinct_patterns": len(set(spec.patterns)),
            "kept_energy": r["p"].kept_energy,
            "tune_seconds": tr.times,
            "seconds": times,
            "max_rel_error_vs_tflite": err_tfl,
            "max_rel_error_vs_numpy_float64": err_ref,
            "macs_dense": spec.macs_dense,
            "macs_pruned": spec.macs_pruned,
            "mac_reduction": bound,
            "max_rel_error_delegate_vs_tflite": err_del,
            "speedup_vs_tflite_1t": times["tflite_1t"] / times["ours_1t"],
            "speedup_delegate_vs_tflite_1t": times["tflite_1t"] / times["ours_delegate_1t"],
            "speedup_vs_tflite_2t": times["tflite_2t"] / times["ours_delegate_2t"],
            "speedup_vs_tflite_dense_1t": times["tflite_dense_1t"] / times["ours_1t"],
            "ours_delegate_2t_over_1t": times["ours_delegate_1t"] / times["ours_delegate_2t"],
            "tflite_2t_over_1t": times["tflite_1t"] / times["tflite_2t"],
        }
        res["bound_fraction"] = res["speedup_vs_tflite_1t"] / bound
        res["bound_fraction_delegate_1t"] = res["speedup_delegate_vs_tflite_1t"] / bound
        res["bound_fraction_2t"] = res["speedup_vs_tflite_2t"] / bound
        # GB/s of the compulsory traffic (input read + output written once) at our 1t time
        traffic = 4 * (r["h"] * r["w"] * r["c"] + spec.ho * spec.wo * spec.c)
        res["ours_1t_compulsory_gbps"] = traffic / times["ours_1t"] / 1e9
        res["tflite_1t_compulsory_gbps"] = traffic / times["tflite_1t"] / 1e9
        log(
            f"{r['name']:>16} [{spec.tile.tag}]: "
            + ", ".join(f"{n} {v * 1e6:.1f}" for n, v in times.items())
            + f" us; x{res['speedup_vs_tflite_1t']:.2f} (1t kernel)"
            f" x{res['speedup_delegate_vs_tflite_1t']:.2f} (1t delegate)"
            f" x{res['speedup_vs_tflite_2t']:.2f} (2t delegate)"
            f" bound {res['bound_fraction']:.2f}; err {err_tfl:.1e} vs tflite, {err_ref:.1e} vs f64"
        )
        out_rows.append(res)
    return out_rows


def bench_model(layers: list[dict], rounds: int, log) -> dict:
    """Whole MobileNetV2 (random weights, batch 1, 224×224) in the stock interpreter, timed
    interleaved with every depthwise layer's one-op models (pruned weights)."""
    import keras

    m = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))
    content = tflite_bytes(m, batch=1)
    x = np.random.default_rng(1).standard_normal((1, 224, 224, 3)).astype(np.float32)
    out = {}
    for t in (1, 2):
        whole = TFLiteRunner(None, t, content)
        whole.set(x)
        fns, names = [whole.invoke], ["whole"]
        rng = np.random.default_rng(2)
        for r in layers:
            sh = r["shape"]
            k = (rng.standard_normal((3, 3, sh["c"], 1)) * np.sqrt(2.0 / 9)).astype(np.float32)
            p = project_depthwise(k)
            rn = TFLiteRunner(
                None,
                t,
                tflite_bytes(
                    one_op_model(
                        sh["h"],
                        sh["w"],
                        sh["c"],
                        sh["stride"],
                        p.kernel,
                        np.zeros(sh["c"], np.float32),
                    )
                ),
            )
            rn.set(np.zeros((1, sh["h"], sh["w"], sh["c"]), np.float32) + 0.5)
            fns.append(rn.invoke)
            names.append(r["name"])
        times = dict(zip(names, time_interleaved(fns, rounds=rounds)))
        dw = sum(r["count"] * times[r["name"]] for r in layers)
        ours = sum(r["count"] * r["seconds"][f"ours_delegate_{t}t"] for r in layers)
        tfl = sum(r["count"] * r["seconds"][f"tflite_{t}t"] for r in layers)
        frac = dw / times["whole"]
        # Amdahl: the depthwise share sped up by the per-layer ratio measured above
        projected = 1.0 / ((1 - frac) + frac * ours / tfl)
        out[f"{t}t"] = {
            "whole_model_seconds": times["whole"],
            "depthwise_layer_seconds": {n: times[n] for n in names[1:]},
            "depthwise_seconds_sum": dw,
            "depthwise_fraction": frac,
            "depthwise_speedup_sum": tfl / ours,
            "projected_whole_model_speedup": projected,
        }
        log(
            f"MobileNetV2 {t}t: whole {times['whole'] * 1e3:.2f} ms, depthwise layers "
            f"{dw * 1e3:.2f} ms ({100 * frac:.1f}%), depthwise x{tfl / ours:.2f} -> whole model "
            f"x{projected:.3f} projected"
        )
    return out


def bench_delegate(rounds: int, log, work: Path) -> dict:
    """Whole MobileNetV2 (random weights and BatchNorm statistics, logits, batch 1, 224×224)
    with every depthwise layer projected, through ``cocogen compile`` and its delegate in the
    stock interpreter vs the same ``model.tflite`` without it, 1 and 2 threads; ``ours_2t_dw1t``:
    the delegate's kernels on one thread while the interpreter (XNNPACK) uses 2."""
    import keras

    from cocotune.cocogen import delegate as dg
    from cocotune.cocogen.pipeline import compile_model

    m = keras.applications.MobileNetV2(
        weights=None, input_shape=(224, 224, 3), classifier_activation=None
    )
    rng = np.random.default_rng(3)
    for layer in m.layers:
        t = type(layer).__name__
        if t == "DepthwiseConv2D":
            w = layer.get_weights()
            w[0] = project_depthwise(w[0]).kernel
            layer.set_weights(w)
        elif t == "BatchNormalization":
            n = layer.get_weights()[0].shape[0]
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, n),
                    rng.normal(0, 0.1, n),
                    rng.normal(0, 0.1, n),
                    rng.uniform(0.5, 1.5, n),
                ]
            )
    m.save(work / "mobilenetv2.keras")
    t0 = time.perf_counter()
    rep = compile_model(work / "mobilenetv2.keras", work / "build", tune=True, log=lambda *a: None)
    compile_s = time.perf_counter() - t0
    build = work / "build"
    content = (build / dg.TFLITE_FILE).read_bytes()
    x = np.random.default_rng(4).standard_normal((1, 224, 224, 3)).astype(np.float32)
    dels = {
        "ours_1t": dg.load(build),
        "ours_2t": dg.load(build),
        "ours_2t_dw1t": dg.load(build, num_threads=1),
    }
    runners = {
        "ours_1t": TFLiteRunner(None, 1, content, [dels["ours_1t"]]),
        "tflite_1t": TFLiteRunner(None, 1, content),
        "ours_2t": TFLiteRunner(None, 2, content, [dels["ours_2t"]]),
        "tflite_2t": TFLiteRunner(None, 2, content),
        "ours_2t_dw1t": TFLiteRunner(None, 2, content, [dels["ours_2t_dw1t"]]),
    }
    outs = {k: r(x) for k, r in runners.items()}
    ref = outs["tflite_1t"]
    scale = float(np.abs(ref).max())
    errs = {k: float(np.abs(v - ref).max() / scale) for k, v in outs.items()}
    st = dg.stats(build, dels["ours_1t"])
    for r in runners.values():
        r.set(x)
    times = dict(zip(runners, time_interleaved([r.invoke for r in runners.values()], rounds)))
    n_dw = sum(1 for r in rep["layers"] if r.get("kind") == "depthwise")
    res = {
        "compiled_depthwise_layers": n_dw,
        "claimed_nodes": st["claimed"],
        "refused_nodes": st["refused"],
        "compile_seconds": compile_s,
        "seconds": times,
        "max_rel_err_vs_tflite": errs,
        "output_abs_max": scale,
        "delegate_speedup_1t": times["tflite_1t"] / times["ours_1t"],
        "delegate_speedup_2t": times["tflite_2t"] / times["ours_2t"],
        "delegate_speedup_2t_dw1t": times["tflite_2t"] / times["ours_2t_dw1t"],
        "note": "each claimed node is its own partition, so XNNPACK runs the rest of the "
        "network as 18 subgraphs instead of one",
    }
    log(
        f"MobileNetV2 through the delegate ({st['claimed']} depthwise nodes claimed): "
        + ", ".join(f"{k} {v * 1e3:.3f}" for k, v in times.items())
        + f" ms; x{res['delegate_speedup_1t']:.3f} (1t) x{res['delegate_speedup_2t']:.3f} (2t) "
        f"x{res['delegate_speedup_2t_dw1t']:.3f} (2t, our kernels 1t); max rel err "
        f"{max(errs.values()):.1e}"
    )
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small shapes (images / 4, channels / 4)")
    ap.add_argument(
        "--rounds", type=int, default=None, help="interleaved rounds (default 11, quick 3)"
    )
    ap.add_argument(
        "--out", default=str(Path(__file__).resolve().parent / "results"), help="output directory"
    )
    ap.add_argument("--no-model", action="store_true", help="skip the whole-MobileNetV2 profile")
    args = ap.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 11)
    t0 = time.time()
    res = {
        "method": __doc__.split("Method: ", 1)[1].split("\n\n")[0].replace("\n", " "),
        "bound_fraction_definition": "(tflite_1t_time / our_1t_time) / (dense_MACs / pruned_MACs)",
        "pruning": "one 4-tap pattern (centre kept) per group of 16 channels, 9 -> 4 MACs",
        "quick": args.quick,
        "rounds": rounds,
        "note": "shared 2-core machine: other processes run during the measurement, so figures "
        "(2-thread ones above all) are noisy; see loadavg_before/after",
        "machine": machine_info(),
    }
    log = lambda m: print(m, flush=True)  # noqa: E731
    work = Path(tempfile.mkdtemp(prefix="cocogen_depthwise_"))
    try:
        layers = bench_layers(args.quick, rounds, log, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res["layers"] = layers
    sp1 = [r["speedup_vs_tflite_1t"] for r in layers]
    sp1d = [r["speedup_delegate_vs_tflite_1t"] for r in layers]
    sp2 = [r["speedup_vs_tflite_2t"] for r in layers]
    tot = {
        key: float(sum(r["count"] * r["seconds"][key] for r in layers))
        for key in layers[0]["seconds"]
    }
    res["mobilenetv2_depthwise_total"] = {
        "seconds": tot,
        "speedup_vs_tflite_1t": tot["tflite_1t"] / tot["ours_1t"],
        "speedup_delegate_vs_tflite_1t": tot["tflite_1t"] / tot["ours_delegate_1t"],
        "speedup_vs_tflite_2t": tot["tflite_2t"] / tot["ours_delegate_2t"],
        "bound_fraction": tot["tflite_1t"] / tot["ours_1t"] / 2.25,
    }
    res["summary"] = {
        "speedup_1t_min": min(sp1),
        "speedup_1t_median": float(np.median(sp1)),
        "speedup_2t_min": min(sp2),
        "speedup_2t_median": float(np.median(sp2)),
        "speedup_delegate_1t_min": min(sp1d),
        "speedup_delegate_1t_median": float(np.median(sp1d)),
        "layers_at_least_1_3x_1t": sum(s >= 1.3 for s in sp1),
        "layers_at_least_1_3x_delegate_1t": sum(s >= 1.3 for s in sp1d),
        "layers_at_least_1_3x_2t": sum(s >= 1.3 for s in sp2),
        "layers": len(layers),
        "bound_fraction_min": min(r["bound_fraction"] for r in layers),
    }
    log(
        f"depthwise total (count-weighted): x{res['mobilenetv2_depthwise_total']['speedup_vs_tflite_1t']:.2f}"
        f" (1t kernel) x{res['mobilenetv2_depthwise_total']['speedup_delegate_vs_tflite_1t']:.2f}"
        f" (1t delegate) x{res['mobilenetv2_depthwise_total']['speedup_vs_tflite_2t']:.2f}"
        f" (2t delegate); per layer 1t kernel min x{min(sp1):.2f} median x{np.median(sp1):.2f},"
        f" 1t delegate min x{min(sp1d):.2f} median x{np.median(sp1d):.2f},"
        f" 2t delegate min x{min(sp2):.2f} median x{np.median(sp2):.2f}"
    )
    if not args.no_model and not args.quick:
        res["mobilenetv2"] = bench_model(layers, rounds, log)
        work = Path(tempfile.mkdtemp(prefix="cocogen_depthwise_mnv2_"))
        try:
            res["mobilenetv2_delegate"] = bench_delegate(rounds, log, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    res["elapsed_seconds"] = time.time() - t0
    res["machine"]["loadavg_after"] = loadavg()
    p = write_json(res, Path(args.out) / "cocogen_depthwise.json")
    print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
