"""Block-pruned 1×1 convolutions and the classifier of ResNet-50: our kernels vs stock TFLite.

Usage::

    python benchmarks/cocogen_pointwise.py [--quick] [--rounds N] [--out DIR] [--only a,b]

Layers come from ``benchmarks/shapes/resnet50_1x1.txt`` (ResNet-50 v1.5 at 224×224, batch 1:
its 36 1×1 convolutions as 15 distinct shapes, stride 1 and 2, and the 2048×1000 fully
connected classifier). Weights are random (He normal) with a random bias, pruned by
:func:`cocotune.cocogen.pointwise.project_pointwise` at rate 3.6 (blocks of 1 input channel × 16
filters, 1 in 3.6 kept), stored as PWB.

Contenders, all on the same input and weights, float32:

- ours: the generated kernel, NHWC in and out, tiling autotuned at 1 thread among up to 12
  (register tile, accumulator sets, prefetch, and the loop order: pixel-blocked, every filter
  group of an L1/L2-sized block of pixels before the next, or not);
- ours_unblocked: the fastest of those tilings in the TFLite delegate's loop order (each filter
  group over all pixels, ``_part`` work items as the delegate's pool runs them): what a whole
  model runs through the delegate;
- tflite: the same pruned layer as a one-op model (Keras Conv2D 1×1 / Dense, converted with
  ``tf.lite.TFLiteConverter``, bias and ReLU fused by the converter), run by
  ``tf.lite.Interpreter(num_threads=n)``: its default XNNPACK path, which packs the weights
  dense (zeros are multiplied);
- tflite_dense: the unpruned layer in TFLite (1 thread), to show that XNNPACK's time does not
  depend on the zeros;
- ours_dense: our kernel on the unpruned layer (rate 1, same tiling), our dense efficiency.

Method: per layer, all contenders are timed interleaved (one sample of each in turn, each
sample enough back-to-back calls to last ~2 ms) and each keeps its minimum over N rounds
(:func:`cocotune.cocogen.autotune.time_interleaved`, as ``benchmarks/cocogen.py``).

``bound_fraction = (tflite_1t / ours_1t) / (dense_MACs / pruned_MACs)``: the share of the
speedup that the MAC reduction allows at TFLite's own efficiency (the definition of
``benchmarks/cocogen.py``; 1.0 = our time is the dense XNNPACK time × the kept fraction);
``bound_fraction_conservative`` uses ``min(tflite_1t, tflite_dense_1t)`` instead of
``tflite_1t`` (XNNPACK does the same work on both, so the lower is the less noisy estimate);
``bound_fraction_unblocked`` uses ``ours_unblocked_1t``. Network totals are Σ count ×
per-layer time for every contender. Writes
``cocogen_pointwise.json``.
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

from cocotune.cocogen.autotune import time_interleaved  # noqa: E402
from cocotune.cocogen.bench import (  # noqa: E402
    TFLiteRunner,
    loadavg,
    machine_info,
    tflite_bytes,
    write_json,
)
from cocotune.cocogen.pointwise import project_pointwise  # noqa: E402
from cocotune.cocogen.pointwise_runtime import (  # noqa: E402
    build_pointwise,
    pointwise_data,
    spec_for,
    tune_pointwise,
)
from cocotune.cocogen.pointwise_storage import encode_pointwise  # noqa: E402

SHAPES = Path(__file__).resolve().parent / "shapes" / "resnet50_1x1.txt"
RATE = 3.6
GROUP = 16


def read_shapes(quick: bool, only: set[str] | None = None) -> list[dict]:
    """Rows of the shapes file (``only``: those names); ``quick``: channels / 8 and images / 4
    (at least 1, 16 outputs)."""
    rows = []
    for line in SHAPES.read_text().splitlines():
        line = line.split("#", 1)[0].split()
        if not line:
            continue
        name, cin, h, w, cout, s, relu, count = line[0], *map(int, line[1:])
        if only and name not in only:
            continue
        if quick:
            cin, cout = max(cin // 8, 8), max(cout // 8, 16)
            h, w = max(h // 4, 1), max(w // 4, 1)
        rows.append(
            dict(name=name, cin=cin, h=h, w=w, cout=cout, stride=s, relu=bool(relu), count=count)
        )
    return rows


def one_op_model(r: dict, kernel: np.ndarray, bias: np.ndarray):
    """The layer alone as a batch-1 Keras model (Conv2D 1×1 or Dense)."""
    import keras

    fc = r["name"] == "fc"
    act = "relu" if r["relu"] else None
    if fc:
        inp = keras.Input((r["cin"],), batch_size=1)
        layer = keras.layers.Dense(r["cout"], activation=act)
    else:
        inp = keras.Input((r["h"], r["w"], r["cin"]), batch_size=1)
        layer = keras.layers.Conv2D(r["cout"], 1, strides=r["stride"], activation=act)
    m = keras.Model(inp, layer(inp))
    layer.set_weights([kernel, bias])
    return m


def bench(quick: bool, rounds: int, log, work: Path, only: set[str] | None = None) -> dict:
    rng = np.random.default_rng(0)
    rows = read_shapes(quick, only)
    if not rows:
        raise SystemExit(f"no layer of {SHAPES.name} is named {sorted(only or ())}")
    items, dense_layers = [], []
    for i, r in enumerate(rows):
        fc = r["name"] == "fc"
        shape = (r["cin"], r["cout"]) if fc else (1, 1, r["cin"], r["cout"])
        k = (rng.standard_normal(shape) * np.sqrt(2.0 / r["cin"])).astype(np.float32)
        b = (0.1 * rng.standard_normal(r["cout"])).astype(np.float32)
        p = project_pointwise(k, RATE, GROUP)
        layer = encode_pointwise(p.kernel, b, GROUP)
        spec = spec_for(layer, r["h"], r["w"], r["stride"], r["relu"], fc, index=i)
        items.append((spec, layer))
        dense_layers.append((k, b, p.kernel, encode_pointwise(k, b, GROUP)))
    t = time.perf_counter()
    tuned = tune_pointwise(
        items, work / "tune", nthreads=1, rounds=max(3, rounds // 2), limit=12, pixel_blocks=True
    )
    log(f"autotuned {len(items)} layers in {time.perf_counter() - t:.1f} s")
    best = [tr.best for tr in tuned]
    unblocked = [tr.best_unblocked or tr.best for tr in tuned]
    dense_specs = [s.with_tile(s.tile) for s in best]
    lib = build_pointwise(
        best + [u for b, u in zip(best, unblocked) if u != b], work / "best", "libpw_best.so"
    )
    # the dense variant: same spec (same name, shapes and tiling), its own library
    lib_dense = build_pointwise(dense_specs, work / "dense", "libpw_dense.so")
    out_rows = []
    for r, spec, uspec, (_, layer), (k, b, pruned, dlayer), tr in zip(
        rows, best, unblocked, items, dense_layers, tuned
    ):
        fc = r["name"] == "fc"
        ours = lib.kernel(spec, pointwise_data(spec, layer))
        ours_u = lib.kernel(uspec, pointwise_data(uspec, layer))
        ours_d = lib_dense.kernel(spec, pointwise_data(spec, dlayer))
        x4 = rng.standard_normal((1, r["cin"]) if fc else (1, r["h"], r["w"], r["cin"]))
        x4 = x4.astype(np.float32)
        x = np.ascontiguousarray(x4[0])
        out = np.empty(ours.out_shape, np.float32)
        out_d = np.empty(ours.out_shape, np.float32)
        out_u = np.empty(ours.out_shape, np.float32)
        content = tflite_bytes(one_op_model(r, pruned, b))
        content_dense = tflite_bytes(one_op_model(r, k, b))
        runners = {
            "tflite_1t": TFLiteRunner(None, 1, content),
            "tflite_2t": TFLiteRunner(None, 2, content),
            "tflite_dense_1t": TFLiteRunner(None, 1, content_dense),
        }
        ref = runners["tflite_1t"](x4).reshape(-1)
        got = ours(x, 1, out).reshape(-1)
        err = float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-30))
        got_u = ours_u(x, 1, out_u).reshape(-1)
        err = max(err, float(np.abs(got_u - ref).max() / max(np.abs(ref).max(), 1e-30)))
        for rn in runners.values():
            rn.set(x4)
        fns = {
            "ours_1t": lambda: ours(x, 1, out),
            "ours_2t": lambda: ours(x, 2, out),
            "ours_unblocked_1t": lambda: ours_u(x, 1, out_u),
            "ours_unblocked_2t": lambda: ours_u(x, 2, out_u),
            "ours_dense_1t": lambda: ours_d(x, 1, out_d),
            **{n: rn.invoke for n, rn in runners.items()},
        }
        times = dict(zip(fns, time_interleaved(list(fns.values()), rounds=rounds)))
        npix = spec.n_pixels
        macs_dense = spec.macs_dense
        macs_pruned = npix * layer.macs_per_pixel
        bound = macs_dense / max(macs_pruned, 1)
        res = {
            "name": r["name"],
            "shape": {k2: r[k2] for k2 in ("cin", "h", "w", "cout", "stride", "relu")},
            "count": r["count"],
            "kernel": spec.name,
            "tile": spec.to_json()["tile"],
            "kernel_unblocked": uspec.name,
            "tune_seconds": tr.times,
            "seconds": times,
            "max_rel_error_vs_tflite": err,
            "macs_dense": macs_dense,
            "macs_pruned": macs_pruned,
            "kept_fraction": macs_pruned / macs_dense,
            "mac_reduction": bound,
            "pwb_bytes": layer.nbytes,
            "csr_bytes": layer.csr_nbytes,
            "speedup_vs_tflite_1t": times["tflite_1t"] / times["ours_1t"],
            "speedup_vs_tflite_2t": times["tflite_2t"] / times["ours_2t"],
            "speedup_vs_ours_dense_1t": times["ours_dense_1t"] / times["ours_1t"],
            "ours_dense_vs_tflite_dense_1t": times["tflite_dense_1t"] / times["ours_dense_1t"],
        }
        res["bound_fraction"] = res["speedup_vs_tflite_1t"] / bound
        # XNNPACK does the same work on the pruned and the unpruned layer: the lower of the two
        # times is the less noisy estimate of its dense time (a conservative fraction)
        xnn = min(times["tflite_1t"], times["tflite_dense_1t"])
        res["bound_fraction_conservative"] = xnn / times["ours_1t"] / bound
        res["bound_fraction_2t"] = res["speedup_vs_tflite_2t"] / bound
        res["bound_fraction_unblocked"] = times["tflite_1t"] / times["ours_unblocked_1t"] / bound
        res["bound_fraction_unblocked_2t"] = times["tflite_2t"] / times["ours_unblocked_2t"] / bound
        log(
            f"{r['name']:>12} {r['cin']:>4}x{r['cout']:<4} {r['h']:>2}x{r['w']:<2} s{r['stride']}: "
            + ", ".join(f"{n} {v * 1e3:.3f}" for n, v in times.items())
            + f" ms; x{res['speedup_vs_tflite_1t']:.2f} (1t) x{res['speedup_vs_tflite_2t']:.2f}"
            f" (2t) bound {res['bound_fraction']:.2f} (conservative "
            f"{res['bound_fraction_conservative']:.2f}, unblocked "
            f"{res['bound_fraction_unblocked']:.2f} / {res['bound_fraction_unblocked_2t']:.2f}"
            f" at 1 / 2 threads) [{spec.tile.tag(npix)}], err {err:.1e}"
        )
        out_rows.append(res)

    def total(key, names=None):
        return float(
            sum(
                r["count"] * r["seconds"][key]
                for r in out_rows
                if names is None or r["name"] in names
            )
        )

    conv_names = {r["name"] for r in out_rows if r["name"] != "fc"}
    totals = {}
    for label, names in (("conv1x1", conv_names), ("conv1x1_and_fc", None)):
        t = {k2: total(k2, names) for k2 in out_rows[0]["seconds"]}
        md = sum(
            r["count"] * r["macs_dense"] for r in out_rows if names is None or r["name"] in names
        )
        mp = sum(
            r["count"] * r["macs_pruned"] for r in out_rows if names is None or r["name"] in names
        )
        totals[label] = {
            "seconds": t,
            "macs_dense": int(md),
            "macs_pruned": int(mp),
            "speedup_vs_tflite_1t": t["tflite_1t"] / t["ours_1t"],
            "speedup_vs_tflite_2t": t["tflite_2t"] / t["ours_2t"],
            "bound_fraction": (t["tflite_1t"] / t["ours_1t"]) / (md / mp),
            "bound_fraction_2t": (t["tflite_2t"] / t["ours_2t"]) / (md / mp),
            "bound_fraction_unblocked": (t["tflite_1t"] / t["ours_unblocked_1t"]) / (md / mp),
            "bound_fraction_unblocked_2t": (t["tflite_2t"] / t["ours_unblocked_2t"]) / (md / mp),
            "bound_fraction_conservative": (
                min(t["tflite_1t"], t["tflite_dense_1t"]) / t["ours_1t"]
            )
            / (md / mp),
        }
        log(
            f"{label}: ours {t['ours_1t'] * 1e3:.2f} / {t['ours_2t'] * 1e3:.2f} ms, tflite "
            f"{t['tflite_1t'] * 1e3:.2f} / {t['tflite_2t'] * 1e3:.2f} ms (1t / 2t): "
            f"x{totals[label]['speedup_vs_tflite_1t']:.2f} / x{totals[label]['speedup_vs_tflite_2t']:.2f}, "
            f"bound fraction {totals[label]['bound_fraction']:.2f} (conservative "
            f"{totals[label]['bound_fraction_conservative']:.2f}, unblocked "
            f"{totals[label]['bound_fraction_unblocked']:.2f})"
        )
    fr = [r["bound_fraction"] for r in out_rows]
    fc = [r["bound_fraction_conservative"] for r in out_rows]
    fu = [r["bound_fraction_unblocked"] for r in out_rows]
    return {
        "layers": out_rows,
        "totals": totals,
        "bound_fraction_min": float(min(fr)),
        "bound_fraction_mean": float(np.mean(fr)),
        "bound_fraction_conservative_min": float(min(fc)),
        "bound_fraction_conservative_mean": float(np.mean(fc)),
        "bound_fraction_unblocked_min": float(min(fu)),
        "bound_fraction_unblocked_mean": float(np.mean(fu)),
        "pwb_bytes": int(sum(r["pwb_bytes"] for r in out_rows)),
        "csr_bytes": int(sum(r["csr_bytes"] for r in out_rows)),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small shapes (channels / 8, images / 4)")
    ap.add_argument(
        "--rounds", type=int, default=None, help="interleaved rounds (default 15, quick 3)"
    )
    ap.add_argument(
        "--out", default=str(Path(__file__).resolve().parent / "results"), help="output directory"
    )
    ap.add_argument("--only", default="", help="comma-separated layer names (default: all)")
    args = ap.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 15)
    t0 = time.time()
    res = {
        "method": __doc__.split("Method: ", 1)[1].split("\n\n")[0].replace("\n", " "),
        "bound_fraction_definition": "(tflite_1t_time / our_1t_time) / (dense_MACs / pruned_MACs)",
        "pruning": {"rate": RATE, "block": f"1 input channel x {GROUP} filters", "group": GROUP},
        "quick": args.quick,
        "rounds": rounds,
        "note": "shared 2-core machine: other processes run during the measurement, so figures "
        "(2-thread ones above all) are noisy; see loadavg_before/after",
        "machine": machine_info(),
    }
    work = Path(tempfile.mkdtemp(prefix="cocogen_pointwise_"))
    try:
        only = {n for n in args.only.split(",") if n} or None
        res["resnet50_1x1"] = bench(args.quick, rounds, lambda m: print(m, flush=True), work, only)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res["elapsed_seconds"] = time.time() - t0
    res["machine"]["loadavg_after"] = loadavg()
    p = write_json(res, Path(args.out) / "cocogen_pointwise.json")
    print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
