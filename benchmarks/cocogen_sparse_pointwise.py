"""Unstructured-sparse (CSR) kernels on ResNet-50's 1×1 convolutions and classifier, through the
delegate, vs stock TFLite.

Usage::

    python benchmarks/cocogen_sparse_pointwise.py [--quick] [--rounds N] [--out DIR] [--only a,b]
                                                  [--resnet50] [--tune]

Layers come from ``benchmarks/shapes/resnet50_1x1.txt`` (ResNet-50 v1.5 at 224×224, batch 1:
15 distinct 1×1 shapes, stride 1 and 2, and the 2048×1000 classifier). Weights are random (He
normal) with a random bias, pruned **weight by weight** by magnitude (the largest ``round(n /
3.6)`` of each layer kept, as tfmot's ``prune_low_magnitude`` at 72 % sparsity): nearly every
(input channel × 16 filters) block keeps a weight, so only the CSR kind can take them.

Each layer is a one-op Keras model compiled by ``cocotune cocogen compile`` (untuned: the
default tile of :func:`cocotune.cocogen.sparse_pointwise.csr_spec`; ``--tune``: the tile
autotuned at 1 thread among :func:`cocotune.cocogen.sparse_pointwise.candidate_tiles`); its ``model.tflite`` runs
in the stock ``tf.lite.Interpreter`` with our delegate and without it (XNNPACK, which multiplies
the zeros), at 1 and 2 threads (``num_threads`` of both). Method: per layer, the four are timed
interleaved (one sample of each in turn, each sample enough back-to-back invokes to last ~2 ms)
and each keeps its minimum over N rounds (:func:`cocotune.cocogen.autotune.time_interleaved`).
The delegate's counters check that the node ran in our kernel; outputs are compared.

``bound_fraction = speedup / (dense_MACs / kept_MACs)``. Network totals are Σ count × per-layer
time. Writes ``cocogen_sparse_pointwise.json`` (``resnet50_1x1``; ``resnet50_1x1_tuned`` with
``--tune``; ``resnet50_whole``; entries not run this time are kept).

``--resnet50``: the whole ``keras.applications.ResNet50`` (random weights, 224×224, batch 1,
logits; ``--quick``: 64×64): every 3×3 convolution projected onto 8 patterns + connectivity 3.6
(as ``benchmarks/cocogen.py``), every 1×1 convolution and the classifier magnitude-pruned as
above, BatchNorm statistics randomised near the identity; ``cocogen compile`` (untuned) writes
``model.tflite`` (BatchNorm folded by the converter), run whole in the stock interpreter with and
without the delegate. ``delegate_mac_fraction`` = dense MACs of the layers our kernels ran /
dense MACs of every convolution and Dense layer.
"""

from __future__ import annotations

import argparse
import json
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

from cocotune.cocogen import delegate as dg  # noqa: E402
from cocotune.cocogen.autotune import time_interleaved  # noqa: E402
from cocotune.cocogen.bench import TFLiteRunner, loadavg, machine_info, write_json  # noqa: E402
from cocotune.cocogen.pipeline import compile_model  # noqa: E402

SHAPES = Path(__file__).resolve().parent / "shapes" / "resnet50_1x1.txt"
RATE = 3.6


def read_shapes(quick: bool, only: set[str] | None = None) -> list[dict]:
    """Rows of the shapes file (``only``: those names); ``quick``: channels / 8, images / 4."""
    rows = []
    for line in SHAPES.read_text().splitlines():
        line = line.split("#", 1)[0].split()
        if not line:
            continue
        name, cin, h, w, cout, s, relu, count = line[0], *map(int, line[1:])
        if only and name not in only:
            continue
        if quick:
            cin, cout = max(cin // 8, 16), max(cout // 8, 16)
            h, w = max(h // 4, 1), max(w // 4, 1)
        rows.append(
            dict(name=name, cin=cin, h=h, w=w, cout=cout, stride=s, relu=bool(relu), count=count)
        )
    return rows


def magnitude_prune(k: np.ndarray, rate: float = RATE) -> np.ndarray:
    """Keep the ``round(k.size / rate)`` largest-magnitude weights (ties: lowest index)."""
    n_keep = max(1, int(round(k.size / rate)))
    flat = np.abs(k).reshape(-1)
    keep = np.zeros(flat.size, bool)
    keep[np.lexsort((np.arange(flat.size), -flat))[:n_keep]] = True
    return np.where(keep.reshape(k.shape), k, 0).astype(np.float32)


def one_op_model(r: dict, kernel: np.ndarray, bias: np.ndarray):
    """The layer alone as a batch-1 Keras model (Conv2D 1×1 or Dense)."""
    import keras

    act = "relu" if r["relu"] else None
    if r["name"] == "fc":
        inp = keras.Input((r["cin"],), batch_size=1)
        layer = keras.layers.Dense(r["cout"], activation=act)
    else:
        inp = keras.Input((r["h"], r["w"], r["cin"]), batch_size=1)
        layer = keras.layers.Conv2D(r["cout"], 1, strides=r["stride"], activation=act)
    m = keras.Model(inp, layer(inp))
    layer.set_weights([kernel, bias])
    return m


def bench_layer(r: dict, rng, rounds: int, work: Path, log, tune: bool = False) -> dict:
    fc = r["name"] == "fc"
    shape = (r["cin"], r["cout"]) if fc else (1, 1, r["cin"], r["cout"])
    k = magnitude_prune((rng.standard_normal(shape) * np.sqrt(2.0 / r["cin"])).astype(np.float32))
    b = (0.1 * rng.standard_normal(r["cout"])).astype(np.float32)
    d = work / r["name"]
    d.mkdir(parents=True, exist_ok=True)
    one_op_model(r, k, b).save(d / "src.keras")
    t = time.perf_counter()
    compile_model(d / "src.keras", d / "build", tune=tune, log=lambda *a: None)
    compile_s = time.perf_counter() - t
    build = d / "build"
    row = next(x for x in json.loads((build / "build.json").read_text())["layers"])
    content = (build / dg.TFLITE_FILE).read_bytes()
    dels = {nt: dg.load(build, num_threads=nt) for nt in (1, 2)}
    runners = {
        "tflite_1t": TFLiteRunner(None, 1, content),
        "ours_1t": TFLiteRunner(None, 1, content, [dels[1]]),
        "tflite_2t": TFLiteRunner(None, 2, content),
        "ours_2t": TFLiteRunner(None, 2, content, [dels[2]]),
    }
    x = rng.standard_normal((1, r["cin"]) if fc else (1, r["h"], r["w"], r["cin"]))
    x = x.astype(np.float32)
    ref = runners["tflite_1t"](x)
    errs = []
    for n in ("ours_1t", "ours_2t"):
        got = runners[n](x)
        errs.append(float(np.max(np.abs(got - ref)) / max(float(np.max(np.abs(ref))), 1e-30)))
    for dl in dels.values():
        s = dg.stats(build, dl)
        if s["claimed"] != 1:
            raise SystemExit(f"{r['name']}: the delegate did not claim the layer: {s}")
    fns = {n: rn.invoke for n, rn in runners.items()}
    times = dict(zip(fns, time_interleaved(list(fns.values()), rounds=rounds)))
    macs_dense, macs_kept = int(row["macs_dense"]), int(row["macs_pruned"])
    res = {
        "name": r["name"],
        "shape": {k2: r[k2] for k2 in ("cin", "h", "w", "cout", "stride", "relu")},
        "count": r["count"],
        "kernel": row["kernel"],
        "tile": row["spec"]["tile"],
        "density": row["density"],
        "compile_seconds": compile_s,
        "seconds": times,
        "max_rel_error_vs_tflite": max(errs),
        "macs_dense": macs_dense,
        "macs_kept": macs_kept,
        "mac_reduction": macs_dense / macs_kept,
        "speedup_1t": times["tflite_1t"] / times["ours_1t"],
        "speedup_2t": times["tflite_2t"] / times["ours_2t"],
        "ours_gflops_kept_1t": 2 * macs_kept / times["ours_1t"] / 1e9,
        "tflite_gflops_dense_1t": 2 * macs_dense / times["tflite_1t"] / 1e9,
    }
    res["bound_fraction"] = res["speedup_1t"] / res["mac_reduction"]
    res["bound_fraction_2t"] = res["speedup_2t"] / res["mac_reduction"]
    log(
        f"{r['name']:>12} {r['cin']:>4}x{r['cout']:<4} {r['h']:>2}x{r['w']:<2} s{r['stride']}: "
        + ", ".join(f"{n} {v * 1e3:.3f}" for n, v in times.items())
        + f" ms; x{res['speedup_1t']:.2f} (1t) x{res['speedup_2t']:.2f} (2t), "
        f"{res['ours_gflops_kept_1t']:.0f} GFLOPS kept vs XNNPACK "
        f"{res['tflite_gflops_dense_1t']:.0f} dense, err {res['max_rel_error_vs_tflite']:.1e}"
    )
    return res


def bench(
    quick: bool, rounds: int, log, work: Path, only: set[str] | None = None, tune: bool = False
) -> dict:
    load_before = loadavg()
    rng = np.random.default_rng(0)
    rows = read_shapes(quick, only)
    if not rows:
        raise SystemExit(f"no layer of {SHAPES.name} is named {sorted(only or ())}")
    out_rows = [bench_layer(r, rng, rounds, work, log, tune) for r in rows]
    totals = {}
    conv = {r["name"] for r in out_rows if r["name"] != "fc"}
    for label, names in (("conv1x1", conv), ("conv1x1_and_fc", None)):
        sel = [r for r in out_rows if names is None or r["name"] in names]
        if not sel:
            continue
        t = {k: float(sum(r["count"] * r["seconds"][k] for r in sel)) for k in sel[0]["seconds"]}
        md = sum(r["count"] * r["macs_dense"] for r in sel)
        mk = sum(r["count"] * r["macs_kept"] for r in sel)
        totals[label] = {
            "seconds": t,
            "macs_dense": int(md),
            "macs_kept": int(mk),
            "speedup_1t": t["tflite_1t"] / t["ours_1t"],
            "speedup_2t": t["tflite_2t"] / t["ours_2t"],
            "bound_fraction": t["tflite_1t"] / t["ours_1t"] / (md / mk),
        }
        log(
            f"{label}: ours {t['ours_1t'] * 1e3:.2f} / {t['ours_2t'] * 1e3:.2f} ms, tflite "
            f"{t['tflite_1t'] * 1e3:.2f} / {t['tflite_2t'] * 1e3:.2f} ms (1t / 2t): "
            f"x{totals[label]['speedup_1t']:.2f} / x{totals[label]['speedup_2t']:.2f}"
        )
    return {
        "tuned": tune,
        "layers": out_rows,
        "totals": totals,
        "speedup_1t_min": float(min(r["speedup_1t"] for r in out_rows)),
        "speedup_2t_min": float(min(r["speedup_2t"] for r in out_rows)),
        "max_rel_error_vs_tflite": float(max(r["max_rel_error_vs_tflite"] for r in out_rows)),
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
    }


def _resnet50_model(size: int):
    """keras.applications.ResNet50: 3x3 convolutions pattern-projected, 1x1 convolutions and the
    classifier magnitude-pruned (norms kept), BatchNorm randomised near the identity."""
    import keras

    from cocotune.cocogen.patterns import project_layer, select_library
    from cocotune.cocogen.pointwise import pointwise_layers

    keras.utils.set_random_seed(0)
    m = keras.applications.ResNet50(
        weights=None, input_shape=(size, size, 3), classes=1000, classifier_activation=None
    )
    convs = [l for l in m.layers if type(l).__name__ == "Conv2D" and tuple(l.kernel_size) == (3, 3)]
    lib = select_library([l.get_weights()[0] for l in convs], 8)
    pruned = [(l, project_layer(l.get_weights()[0], lib, RATE).kernel) for l in convs]
    pruned += [(l, magnitude_prune(l.get_weights()[0])) for l in pointwise_layers(m)]
    for l, p in pruned:
        k, b = l.get_weights()
        l.set_weights([p * np.float32(np.sqrt(np.sum(k**2) / np.sum(p**2))), b])
    rng = np.random.default_rng(0)
    for l in m.layers:
        if isinstance(l, keras.layers.BatchNormalization):
            n = l.get_weights()[0].shape[0]
            vals = (
                rng.uniform(0.8, 1.2, n),
                rng.normal(0, 0.1, n),
                rng.normal(0, 0.1, n),
                rng.uniform(0.8, 1.2, n),
            )
            l.set_weights([v.astype(np.float32) for v in vals])
    return m


def _dense_macs(model) -> dict:
    """Dense MACs per Conv2D / Dense layer (batch 1)."""
    import keras

    out = {}
    for l in model.layers:
        if isinstance(l, keras.layers.Conv2D) and type(l).__name__ == "Conv2D":
            ho, wo = l.output.shape[1:3]
            out[l.name] = int(l.get_weights()[0].size) * int(ho) * int(wo)
        elif isinstance(l, keras.layers.Dense):
            out[l.name] = int(l.get_weights()[0].size)
    return out


def bench_resnet50(quick: bool, rounds: int, log, work: Path) -> dict:
    """Whole ResNet-50 with magnitude-pruned 1x1 layers (see the module docstring)."""
    import json

    size = 64 if quick else 224
    load_before = loadavg()
    t0 = time.time()
    model = _resnet50_model(size)
    macs = _dense_macs(model)
    model.save(work / "resnet50.keras")
    compile_model(work / "resnet50.keras", work / "r50", tune=False, log=lambda *a: None)
    build = work / "r50"
    rep = json.loads((build / "build.json").read_text())
    content = (build / dg.TFLITE_FILE).read_bytes()
    log(f"[resnet50] {size}x{size}: compiled in {time.time() - t0:.1f} s")
    runners, dels = {}, {}
    for nt in (1, 2):
        dels[nt] = dg.load(build, num_threads=nt)
        runners[f"stock_{nt}t"] = TFLiteRunner(None, nt, content)
        runners[f"delegate_{nt}t"] = TFLiteRunner(None, nt, content, [dels[nt]])
    x = np.random.default_rng(1).standard_normal((1, size, size, 3)).astype(np.float32)
    outs = {k: np.array(r(x)) for k, r in runners.items()}
    ref = outs["stock_1t"]
    err = max(
        float(np.max(np.abs(outs[k] - ref)) / max(float(np.max(np.abs(ref))), 1e-30))
        for k in runners
        if k.startswith("delegate")
    )
    st = dg.stats(build, dels[1])
    ran = [n for n, c in st["layers"].items() if c > 0]
    ts = dict(
        zip(
            runners,
            time_interleaved([r.invoke for r in runners.values()], rounds=rounds, min_time=0.02),
        )
    )
    rows = {r["name"]: r for r in rep["layers"]}

    def frac(kinds):
        sel = [n for n in ran if rows.get(n, {}).get("kind") in kinds]
        return sum(macs[n] for n in sel) / sum(macs.values())

    res = {
        "model": f"keras.applications.ResNet50, random weights, {size}x{size}, batch 1, logits; "
        f"3x3 convs: 8 patterns, connectivity {RATE}; 1x1 convs and the classifier: magnitude "
        f"pruning, 1 in {RATE} weights kept per layer; BatchNorm folded by the converter; "
        "cocogen compile untuned",
        "seconds": ts,
        "claimed_nodes": st["claimed"],
        "compiled_by_kind": {
            k: sum(1 for r in rep["layers"] if r["qualifies"] and r.get("kind", "3x3") == k)
            for k in ("3x3", "pointwise", "fc", "csr_pointwise", "csr_fc")
        },
        "stock_layers": {
            r["name"]: r["reason"]
            for r in rep["layers"]
            if not r["qualifies"] and r["type"] in ("Conv2D", "Dense")
        },
        "max_rel_err_vs_tflite": err,
        "delegate_speedup_1t": ts["stock_1t"] / ts["delegate_1t"],
        "delegate_speedup_2t": ts["stock_2t"] / ts["delegate_2t"],
        "delegate_mac_fraction": sum(macs[n] for n in ran) / sum(macs.values()),
        "csr_mac_fraction": frac({"csr_pointwise", "csr_fc"}),
        "pattern_3x3_mac_fraction": frac({None}),
        "dense_macs_total": sum(macs.values()),
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
    }
    log(
        f"[resnet50] stock {ts['stock_1t'] * 1e3:.1f}/{ts['stock_2t'] * 1e3:.1f} ms, +delegate "
        f"{ts['delegate_1t'] * 1e3:.1f}/{ts['delegate_2t'] * 1e3:.1f} ms (1t/2t) -> "
        f"x{res['delegate_speedup_1t']:.2f} / x{res['delegate_speedup_2t']:.2f}; "
        f"{st['claimed']} nodes claimed, {res['delegate_mac_fraction']:.1%} of the dense MACs in "
        f"our kernels ({res['csr_mac_fraction']:.1%} CSR, {res['pattern_3x3_mac_fraction']:.1%} "
        f"3x3); err {err:.1e}"
    )
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small shapes (channels / 8, images / 4)")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 11)")
    ap.add_argument(
        "--out", default=str(Path(__file__).resolve().parent / "results"), help="output directory"
    )
    ap.add_argument("--only", default="", help="comma-separated layer names (default: all)")
    ap.add_argument(
        "--resnet50", action="store_true", help="the whole ResNet-50 instead of the layers"
    )
    ap.add_argument("--tune", action="store_true", help="autotune the layers' tiles (1 thread)")
    args = ap.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 11)
    t0 = time.time()
    res = {
        "method": __doc__.split("Each layer is ", 1)[1].split("\n\n")[0].replace("\n", " "),
        "pruning": {"rate": RATE, "kind": "weight by weight, largest magnitudes kept per layer"},
        "quick": args.quick,
        "rounds": rounds,
        "note": "shared 2-core machine: other processes run during the measurement, so figures "
        "(2-thread ones above all) are noisy; see loadavg_before/after",
        "machine": machine_info(),
    }
    work = Path(tempfile.mkdtemp(prefix="cocogen_sparse_pw_"))
    log = lambda m: print(m, flush=True)  # noqa: E731
    path = Path(args.out) / "cocogen_sparse_pointwise.json"
    try:
        old = json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        old = {}
    try:
        if args.resnet50:
            res["resnet50_whole"] = bench_resnet50(args.quick, rounds, log, work)
        else:
            only = {n for n in args.only.split(",") if n} or None
            key = "resnet50_1x1_tuned" if args.tune else "resnet50_1x1"
            res[key] = bench(args.quick, rounds, log, work, only, args.tune)
        for key in ("resnet50_whole", "resnet50_1x1", "resnet50_1x1_tuned"):
            if key not in res and key in old:  # entries not run this time are kept
                res[key] = old[key]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res["elapsed_seconds"] = time.time() - t0
    res["machine"]["loadavg_after"] = loadavg()
    p = write_json(res, path)
    print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
