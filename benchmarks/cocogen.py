"""CoCo-Gen kernels vs stock TensorFlow Lite, our dense kernel and a CSR kernel.

Usage::

    python benchmarks/cocogen.py [--quick] [--out DIR] [--networks vgg16_cifar,resnet50_3x3,resnet50]

Networks come from ``benchmarks/shapes/*.txt``. Weights are random (He normal), projected onto
the 8 most frequent 4-tap patterns and pruned at connectivity 3.6× (9/4 × 3.6 = 8.1× fewer MACs).

Contenders, all on the same pruned weights, batch 1, float32:

- ours: the generated pattern kernel (FKW), tiling autotuned at 1 thread among a few candidates;
- tflite: the same layer (or conv stack) converted with ``tf.lite.TFLiteConverter`` and run by
  ``tf.lite.Interpreter(num_threads=n)``: its default XNNPACK path, dense;
- dense: our generated dense kernel (same code generator, one 9-tap pattern, every kernel);
- csr: our generated CSR kernel (same workspace and tiles, tap offsets read per non-zero).

Method: per layer, all contenders are timed interleaved (one sample of each in turn, each sample
enough back-to-back calls to last ~2 ms, ~20 ms for whole networks: steady state) and each
keeps its minimum over N rounds. Whole network: VGG-16 runs the conv stack as a chain (our
kernels + our C 2×2 max pool vs the whole stack converted to one TFLite model); ResNet-50's
3×3 convolutions are not a chain, so its whole-network figure is Σ count × per-layer time for
every contender.

``bound_fraction = (tflite_1t / ours_1t) / (dense_MACs / pruned_MACs)``: the share of the
speedup that the MAC reduction allows at TFLite's own efficiency.

Delegate: the same pruned network as one Keras model (VGG-16: the conv stack with its pools;
ResNet-50: its 3×3 convolutions, each repeated ``count`` times, as independent branches of one
multi-input model) is compiled with ``cocogen compile`` (tuned at 1 thread; untuned with
``--quick``) and converted to ``model.tflite``; whole-model latency of the stock interpreter
(XNNPACK) vs the stock interpreter + ``libcocogen_delegate.so`` at 1 and 2 threads, interleaved
as above: ``delegate_speedup_{1,2}t = stock / stock+delegate``.

Whole ResNet-50 (``--networks resnet50``): ``keras.applications.ResNet50`` (random weights,
224×224, batch 1, logits), every 3×3 convolution projected as above and rescaled, every 1×1
convolution and the classifier block-pruned 1 in 3.6 (:func:`cocotune.cocogen.pointwise.
project_pointwise`, blocks of 1 input channel × 16 filters, rescaled likewise), BatchNorm
statistics randomised near the identity; ``cocogen compile`` (tuned at 1 thread, as the command's
default; ``--quick``: untuned) writes model.tflite, in which the converter has folded every
BatchNorm; the whole model in the stock interpreter with vs without the delegate. Its per-layer
bound fractions come from the same run: the 3×3 layers of ``resnet50_3x3`` with the shapes
ResNet-50 v1 has (``conv2_x`` … ``conv5_x``, stride 1) and every layer of
``benchmarks/cocogen_pointwise.py`` (ResNet-50's 1×1 shapes and the classifier, measured in
the delegate's loop order), stored as the network ``resnet50_1x1``; ``bound_fraction_min`` is
the lowest of them. ``delegate_mac_fraction`` = dense MACs of the claimed
convolutions and Dense layers / dense MACs of every convolution and Dense layer (the 7×7 stem
stays with XNNPACK: no generated kernel for it).
Diagnostics in ``seconds``: ``delegate_interp1_ours2`` (interpreter at 1 thread, our kernels at
2) and ``delegate_interp2_ours1`` show which side's second thread helps or costs; ``time_split``:
per inference, the mean time of 20 delegated runs, the time inside our layers in them (the
delegate's per-layer clocks) and the rest (XNNPACK's nodes, partition boundaries), and the
slowest layers.

Writes ``cocogen.json``, keeping the entries of networks not run this time.
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
# OpenMP threads spin ~20k iterations at a barrier before sleeping (libgomp's default is 300k):
# on a 2-core machine shared with other processes, long spinning starves the peer thread.
os.environ.setdefault("GOMP_SPINCOUNT", "20000")

from cocotune.cocogen.autotune import time_interleaved
from cocotune.cocogen.bench import (
    TFLiteRunner,
    conv_model,
    loadavg,
    machine_info,
    tflite_bytes,
    write_json,
)
from cocotune.cocogen.build import build_library, isa_tag
from cocotune.cocogen.emit_c import render_library
from cocotune.cocogen.fkw import encode
from cocotune.cocogen.kernel_spec import KernelSpec, candidate_tiles
from cocotune.cocogen.patterns import project_layer, select_library
from cocotune.cocogen.pointwise import pointwise_layers, project_pointwise
from cocotune.cocogen.runtime import (
    KernelLibrary,
    aligned_empty,
    kernel_data,
    nhwc_to_chw,
)

SHAPES = Path(__file__).resolve().parent / "shapes"
PATTERNS = 8
CONNECTIVITY = 3.6
POINTWISE_RATE = 3.6


def read_shapes(name: str, quick: bool) -> list:
    """Lines of a shapes file -> [('conv', name, cin, h, w, cout, stride, padding, count) | ('pool',)]."""
    out = []
    for line in (SHAPES / f"{name}.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if parts[0] == "pool":
            out.append(("pool",))
            continue
        n, cin, h, w, cout, s, pad = parts[:7]
        count = int(parts[7]) if len(parts) > 7 else 1
        cin, h, w, cout, s = int(cin), int(h), int(w), int(cout), int(s)
        if quick:  # channels / 8 (first layer keeps its 3), spatial / 2 (VGG) or / 4 (ResNet)
            div = 4 if h >= 14 and "resnet" in name else 2
            cin = cin if cin <= 3 else max(4, cin // 8)
            cout = max(4, cout // 8)
            h, w = max(1, h // div), max(1, w // div)
        out.append(("conv", n, cin, h, w, cout, s, pad, count))
    return out


def chain_shapes(rows):
    """Fix input sizes along a chain (quick mode shrinks them independently)."""
    h = w = None
    fixed = []
    for r in rows:
        if r[0] == "pool":
            h, w = h // 2, w // 2
            fixed.append(r)
            continue
        _, n, cin, h0, w0, cout, s, pad, count = r
        if h is None:
            h, w = h0, w0
        fixed.append(("conv", n, cin, h, w, cout, s, pad, count))
        h, w = (-(-h // s), -(-w // s)) if pad == "same" else ((h - 3) // s + 1, (w - 3) // s + 1)
    return fixed


def bench_network(name: str, quick: bool, rounds: int, log, keep: bool = False) -> dict:
    rows = read_shapes(name, quick)
    is_chain = any(r[0] == "pool" for r in rows)
    if is_chain:
        rows = chain_shapes(rows)
    convs = [r for r in rows if r[0] == "conv"]
    rng = np.random.default_rng(0)
    weights = []
    for _, n, cin, h, w, cout, s, pad, count in convs:
        k = (rng.standard_normal((3, 3, cin, cout)) * np.sqrt(2.0 / (9 * cin))).astype(np.float32)
        weights.append((k, (rng.standard_normal(cout) * 0.01).astype(np.float32)))
    lib = select_library([k for k, _ in weights], PATTERNS)
    pruned = []
    for k, b in weights:  # rescale to the dense norm so activations keep their scale in a chain
        p = project_layer(k, lib, CONNECTIVITY).kernel
        pruned.append((p * np.float32(np.sqrt(np.sum(k**2) / np.sum(p**2))), b))
    isa = isa_tag()
    limit = 2 if quick else 6
    cands = {}  # (layer index, kind) -> [spec]
    for i, (r, (k, b)) in enumerate(zip(convs, pruned)):
        _, n, cin, h, w, cout, s, pad, count = r
        for kind in ("pattern", "dense", "csr"):
            base = KernelSpec(kind, cin, h, w, cout, s, pad, lib, True, index=i, isa=isa)
            cands[i, kind] = [base.with_tile(t) for t in candidate_tiles(base, limit)]
    t0 = time.time()
    work = tempfile.mkdtemp(prefix=f"cocogen_bench_{name}_")
    libso = KernelLibrary(
        build_library(render_library([s for v in cands.values() for s in v]), work)
    )
    log(
        f"[{name}] built {sum(len(v) for v in cands.values())} kernels in {time.time() - t0:.1f} s ({work})"
    )

    # autotune every (layer, kind) at 1 thread, and ours at 2 threads too
    chosen = {}
    for (i, kind), specs in cands.items():
        k, b = pruned[i]
        x = rng.standard_normal((specs[0].cin, specs[0].h, specs[0].w)).astype(np.float32)
        ks = [libso.kernel(s, kernel_data(s, k, b)) for s in specs]
        outs = [np.empty(kk.out_shape, np.float32) for kk in ks]
        for nt in (1, 2) if kind == "pattern" else (1,):
            ts = time_interleaved(
                [(lambda kk=kk, o=o: kk(x, nt, o)) for kk, o in zip(ks, outs)],
                rounds=1 if quick else 3,
            )
            chosen[i, kind, nt] = ks[int(np.argmin(ts))]
        if kind != "pattern":
            chosen[i, kind, 2] = chosen[i, kind, 1]

    layers = []
    for i, (r, (k, b)) in enumerate(zip(convs, pruned)):
        _, n, cin, h, w, cout, s, pad, count = r
        ours, ours2 = chosen[i, "pattern", 1], chosen[i, "pattern", 2]
        spec = ours.spec
        x = rng.standard_normal((1, h, w, cin)).astype(np.float32)
        xc = nhwc_to_chw(x)
        content = tflite_bytes(conv_model((h, w, cin), k, b, s, pad, True))
        t1, t2 = TFLiteRunner(None, 1, content), TFLiteRunner(None, 2, content)
        ref = t1(x)[0]
        got = ours(xc, 1).transpose(1, 2, 0)
        err = float(np.max(np.abs(got - ref) / np.maximum(np.abs(ref), 1.0)))
        o = [np.empty(ours.out_shape, np.float32) for _ in range(4)]
        fns = {
            "ours_1t": lambda: ours(xc, 1, o[0]),
            "ours_2t": lambda: ours2(xc, 2, o[1]),
            "tflite_1t": t1.invoke,
            "tflite_2t": t2.invoke,
            "dense_1t": lambda: chosen[i, "dense", 1](xc, 1, o[2]),
            "csr_1t": lambda: chosen[i, "csr", 1](xc, 1, o[3]),
        }
        t1.set(x)
        t2.set(x)
        ts = dict(zip(fns, time_interleaved(list(fns.values()), rounds=rounds)))
        fkw = encode(k, b, lib)
        macs_pruned = int(np.count_nonzero(k)) * spec.ho * spec.wo
        bound = spec.macs_dense / max(macs_pruned, 1)
        row = {
            "name": n,
            "count": count,
            "shape": [cin, h, w, cout, s, pad],
            "kernel": spec.name,
            "tile": spec.tile.tag,
            "tile_2t": ours2.spec.tile.tag,
            "seconds": ts,
            "macs_dense": spec.macs_dense,
            "macs_pruned": macs_pruned,
            "mac_reduction": bound,
            "max_rel_err_vs_tflite": err,
            "speedup_vs_tflite_1t": ts["tflite_1t"] / ts["ours_1t"],
            "speedup_vs_tflite_2t": ts["tflite_2t"] / ts["ours_2t"],
            "speedup_vs_dense_1t": ts["dense_1t"] / ts["ours_1t"],
            "speedup_vs_csr_1t": ts["csr_1t"] / ts["ours_1t"],
            "fkw_bytes": fkw.nbytes,
            "csr_bytes": fkw.csr_nbytes,
            "gflops_effective_1t": 2 * macs_pruned / ts["ours_1t"] / 1e9,
            "tflite_gflops_1t": 2 * spec.macs_dense / ts["tflite_1t"] / 1e9,
        }
        row["bound_fraction"] = row["speedup_vs_tflite_1t"] / bound
        layers.append(row)
        log(
            f"[{name}] {n:>8} {cin:>3}x{h}x{w}->{cout} s{s}: ours {ts['ours_1t'] * 1e3:.3f}/{ts['ours_2t'] * 1e3:.3f} ms, "
            f"tflite {ts['tflite_1t'] * 1e3:.3f}/{ts['tflite_2t'] * 1e3:.3f} ms, dense {ts['dense_1t'] * 1e3:.3f}, "
            f"csr {ts['csr_1t'] * 1e3:.3f} | x{row['speedup_vs_tflite_1t']:.2f} (1t) x{row['speedup_vs_tflite_2t']:.2f} (2t) "
            f"bound {row['bound_fraction']:.0%} [{spec.tile.tag}] err {err:.1e}"
        )

    # whole network
    if is_chain:
        stack = delegate_model(rows, convs, pruned, True)
        content = tflite_bytes(stack)
        t1, t2 = TFLiteRunner(None, 1, content), TFLiteRunner(None, 2, content)
        x = rng.standard_normal((1, *stack.input_shape[1:])).astype(np.float32)
        t1.set(x)
        t2.set(x)

        def chain(kind, nt):
            """The stack as one chain: one shared workspace, preallocated activations."""
            ks = [chosen[ci, kind, nt] for ci in range(len(convs))]
            bufs, pools, shape = [], [], None
            for r in rows:
                if r[0] == "pool":
                    c, hh, ww = shape
                    shape = (c, hh // 2, ww // 2)
                    pools.append(np.empty(shape, np.float32))
                else:
                    kk = ks[len(bufs)]
                    shape = kk.out_shape
                    bufs.append(np.empty(shape, np.float32))

            def run():
                cur, ci, pi = nhwc_to_chw(x), 0, 0
                for r in rows:
                    if r[0] == "pool":
                        cur = libso.maxpool2x2(cur, nt, pools[pi])
                        pi += 1
                    else:
                        cur = ks[ci](cur, nt, bufs[ci])
                        ci += 1
                return cur

            return run

        shared_ws = aligned_empty(max(kk.spec.workspace_floats for kk in chosen.values()))
        for kk in chosen.values():  # chains run one at a time: all kernels share one workspace
            kk.use_workspace(shared_ws)
        ref = t1(x)[0]
        got = chain("pattern", 1)().transpose(1, 2, 0)
        # activations shrink through 13 pruned random layers: compare to the output's own scale
        err = float(np.max(np.abs(got - ref)) / max(float(np.max(np.abs(ref))), 1e-30))
        if not np.any(ref):
            raise RuntimeError("the reference output of the stack is all zeros: check the weights")
        fns = {
            "ours_1t": chain("pattern", 1),
            "ours_2t": chain("pattern", 2),
            "tflite_1t": t1.invoke,
            "tflite_2t": t2.invoke,
            "dense_1t": chain("dense", 1),
            "csr_1t": chain("csr", 1),
        }
        # samples of >= 20 ms of back-to-back inferences: the steady state of a model that runs
        # repeatedly (its pruned weights, ~9 MB for VGG-16, stay in L3), not the cache refill
        # after the other contenders (TFLite's dense weights are 59 MB) ran
        whole = dict(zip(fns, time_interleaved(list(fns.values()), rounds=rounds, min_time=0.02)))
        method = (
            "chain: conv stack with 2x2 max pools, one TFLite model vs our kernels + C max pool"
        )
    else:
        err = max(r["max_rel_err_vs_tflite"] for r in layers)
        whole = {
            key: sum(r["count"] * r["seconds"][key] for r in layers) for key in layers[0]["seconds"]
        }
        method = "sum over the 3x3 convolutions of count x per-layer time"
    macs_d = sum(r["count"] * r["macs_dense"] for r in layers)
    macs_p = sum(r["count"] * r["macs_pruned"] for r in layers)
    fr = [r["bound_fraction"] for r in layers]
    net = {
        "whole_network_method": method,
        "seconds": whole,
        "max_rel_err_vs_tflite": err,
        "speedup_vs_tflite_1t": whole["tflite_1t"] / whole["ours_1t"],
        "speedup_vs_tflite_2t": whole["tflite_2t"] / whole["ours_2t"],
        "speedup_vs_dense_1t": whole["dense_1t"] / whole["ours_1t"],
        "speedup_vs_csr_1t": whole["csr_1t"] / whole["ours_1t"],
        "mac_reduction": macs_d / macs_p,
        "bound_fraction_whole": (whole["tflite_1t"] / whole["ours_1t"]) / (macs_d / macs_p),
        "bound_fraction_min": float(min(fr)),
        "bound_fraction_mean": float(np.mean(fr)),
        "fkw_bytes": int(sum(r["count"] * r["fkw_bytes"] for r in layers)),
        "csr_bytes": int(sum(r["count"] * r["csr_bytes"] for r in layers)),
        "macs_dense": macs_d,
        "macs_pruned": macs_p,
        "patterns": lib.to_json(),
        "layers": layers,
    }
    net["fkw_over_csr"] = net["fkw_bytes"] / net["csr_bytes"]
    net["delegate"] = bench_delegate(name, rows, convs, pruned, is_chain, quick, rounds, log)
    net["delegate_speedup_1t"] = net["delegate"]["delegate_speedup_1t"]
    net["delegate_speedup_2t"] = net["delegate"]["delegate_speedup_2t"]
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    log(
        f"[{name}] whole: ours {whole['ours_1t'] * 1e3:.3f}/{whole['ours_2t'] * 1e3:.3f} ms, tflite "
        f"{whole['tflite_1t'] * 1e3:.3f}/{whole['tflite_2t'] * 1e3:.3f} ms -> x{net['speedup_vs_tflite_1t']:.2f} (1t), "
        f"x{net['speedup_vs_tflite_2t']:.2f} (2t); vs dense x{net['speedup_vs_dense_1t']:.2f}, vs csr "
        f"x{net['speedup_vs_csr_1t']:.2f}; bound fraction min {net['bound_fraction_min']:.0%} mean "
        f"{net['bound_fraction_mean']:.0%}; FKW/CSR {net['fkw_over_csr']:.3f}"
    )
    return net


def delegate_model(rows, convs, pruned, is_chain: bool):
    """The network as one Keras model with the pruned weights (see the module docstring)."""
    import keras

    if is_chain:
        inp = keras.Input((convs[0][3], convs[0][4], convs[0][2]), batch_size=1)
        y, layers = inp, []
        for r in rows:
            if r[0] == "pool":
                y = keras.layers.MaxPooling2D(2)(y)
            else:
                layer = keras.layers.Conv2D(r[5], 3, strides=r[6], padding=r[7], activation="relu")
                y = layer(y)
                layers.append((layer, len(layers)))
        model = keras.Model(inp, y)
    else:
        inputs, outputs, layers = [], [], []
        for i, (_, n, cin, h, w, cout, s, pad, count) in enumerate(convs):
            for j in range(count):
                inp = keras.Input((h, w, cin), batch_size=1, name=f"{n}_{j}_in")
                layer = keras.layers.Conv2D(
                    cout, 3, strides=s, padding=pad, activation="relu", name=f"{n}_{j}"
                )
                inputs.append(inp)
                outputs.append(layer(inp))
                layers.append((layer, i))
        model = keras.Model(inputs, outputs)
    for layer, i in layers:
        layer.set_weights(list(pruned[i]))
    return model


def bench_delegate(name, rows, convs, pruned, is_chain, quick, rounds, log) -> dict:
    """Whole-model latency: stock TFLite vs stock TFLite + our delegate, 1 and 2 threads."""
    from cocotune.cocogen import delegate as dg
    from cocotune.cocogen.pipeline import compile_model

    work = Path(tempfile.mkdtemp(prefix=f"cocogen_delegate_{name}_"))
    t0 = time.time()
    delegate_model(rows, convs, pruned, is_chain).save(work / "model.keras")
    compile_model(work / "model.keras", work / "build", tune=not quick, log=lambda *a: None)
    build = work / "build"
    content = (build / dg.TFLITE_FILE).read_bytes()
    log(f"[{name}] delegate build in {time.time() - t0:.1f} s ({build})")
    rng = np.random.default_rng(1)
    runners, delegates = {}, {}
    for nt in (1, 2):
        delegates[nt] = dg.load(build, num_threads=nt)
        runners[f"stock_{nt}t"] = TFLiteRunner(None, nt, content)
        runners[f"delegate_{nt}t"] = TFLiteRunner(None, nt, content, [delegates[nt]])
    inputs = None
    for r in runners.values():
        det = r.interp.get_input_details()
        if inputs is None:
            inputs = {d["name"]: rng.standard_normal(d["shape"]).astype(np.float32) for d in det}
        for d in det:
            r.interp.set_tensor(d["index"], inputs[d["name"]])
    outs = {}
    for key, r in runners.items():
        r.invoke()
        outs[key] = [r.interp.get_tensor(d["index"]) for d in r.interp.get_output_details()]
    err = 0.0
    for a, b in zip(outs["delegate_1t"], outs["stock_1t"]):
        err = max(err, float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30)))
    n_layers = len(dg.stats(build, delegates[1])["layers"])
    claimed = {nt: dg.stats(build, delegates[nt])["claimed"] for nt in (1, 2)}
    ts = dict(
        zip(
            runners,
            time_interleaved([r.invoke for r in runners.values()], rounds=rounds, min_time=0.02),
        )
    )
    res = {
        "method": "whole model: stock tf.lite.Interpreter (XNNPACK) vs the same interpreter "
        "with libcocogen_delegate.so, same pruned model.tflite",
        "seconds": ts,
        "compiled_layers": n_layers,
        "claimed_nodes": claimed[1],
        "max_rel_err_vs_stock": err,
        "delegate_speedup_1t": ts["stock_1t"] / ts["delegate_1t"],
        "delegate_speedup_2t": ts["stock_2t"] / ts["delegate_2t"],
    }
    log(
        f"[{name}] delegate: stock {ts['stock_1t'] * 1e3:.3f}/{ts['stock_2t'] * 1e3:.3f} ms, "
        f"+delegate {ts['delegate_1t'] * 1e3:.3f}/{ts['delegate_2t'] * 1e3:.3f} ms -> "
        f"x{res['delegate_speedup_1t']:.2f} (1t), x{res['delegate_speedup_2t']:.2f} (2t); "
        f"{claimed[1]}/{n_layers} nodes claimed, err {err:.1e}"
    )
    del runners, delegates
    shutil.rmtree(work, ignore_errors=True)
    return res


def _resnet50_model(size: int):
    """keras.applications.ResNet50 with pruned 3x3 convolutions, block-pruned 1x1 convolutions
    and classifier, and randomised BatchNorm."""
    import keras

    keras.utils.set_random_seed(0)
    m = keras.applications.ResNet50(
        weights=None, input_shape=(size, size, 3), classes=1000, classifier_activation=None
    )
    convs = [l for l in m.layers if type(l).__name__ == "Conv2D" and tuple(l.kernel_size) == (3, 3)]
    lib = select_library([l.get_weights()[0] for l in convs], PATTERNS)
    for l in convs:
        k, b = l.get_weights()
        p = project_layer(k, lib, CONNECTIVITY).kernel
        l.set_weights([p * np.float32(np.sqrt(np.sum(k**2) / np.sum(p**2))), b])
    for l in pointwise_layers(m):
        k, b = l.get_weights()
        p = project_pointwise(k, POINTWISE_RATE).kernel
        l.set_weights([p * np.float32(np.sqrt(np.sum(k**2) / np.sum(p**2))), b])
    rng = np.random.default_rng(0)
    for l in m.layers:
        if isinstance(l, keras.layers.BatchNormalization):
            n = l.get_weights()[0].shape[0]
            g, b_, mu, var = (
                rng.uniform(0.8, 1.2, n),
                rng.normal(0, 0.1, n),
                rng.normal(0, 0.1, n),
                rng.uniform(0.8, 1.2, n),
            )
            l.set_weights([v.astype(np.float32) for v in (g, b_, mu, var)])
    return m


def _dense_macs(model) -> dict:
    """Dense MACs per Conv2D / Dense layer (batch 1)."""
    import keras

    out = {}
    for l in model.layers:
        if isinstance(l, keras.layers.Conv2D) and type(l).__name__ == "Conv2D":
            k = l.get_weights()[0]
            ho, wo = l.output.shape[1:3]
            out[l.name] = int(k.size) * int(ho) * int(wo)
        elif isinstance(l, keras.layers.Dense):
            out[l.name] = int(l.get_weights()[0].size)
    return out


def bench_whole_resnet50(quick: bool, rounds: int, log) -> dict:
    """Whole ResNet-50 in stock TFLite with vs without the delegate (see the module docstring)."""
    import json as _json

    from cocotune.cocogen import delegate as dg
    from cocotune.cocogen.pipeline import compile_model

    size = 64 if quick else 224
    load_before = loadavg()
    work = Path(tempfile.mkdtemp(prefix="cocogen_resnet50_"))
    t0 = time.time()
    model = _resnet50_model(size)
    macs = _dense_macs(model)
    model.save(work / "model.keras")
    t_compile = time.time()
    compile_model(work / "model.keras", work / "build", tune=not quick, log=lambda *a: None)
    compile_seconds = time.time() - t_compile
    build = work / "build"
    rep = _json.loads((build / "build.json").read_text())
    content = (build / dg.TFLITE_FILE).read_bytes()
    log(f"[resnet50] {size}x{size}: build in {time.time() - t0:.1f} s ({build})")
    rng = np.random.default_rng(1)
    runners, delegates = {}, {}
    for nt in (1, 2):
        delegates[nt] = dg.load(build, num_threads=nt)
        runners[f"stock_{nt}t"] = TFLiteRunner(None, nt, content)
        runners[f"delegate_{nt}t"] = TFLiteRunner(None, nt, content, [delegates[nt]])
    # diagnostics: which side's second thread costs or helps (interpreter = XNNPACK's threads)
    runners["delegate_interp1_ours2"] = TFLiteRunner(
        None, 1, content, [dg.load(build, num_threads=2)]
    )
    runners["delegate_interp2_ours1"] = TFLiteRunner(
        None, 2, content, [dg.load(build, num_threads=1)]
    )
    x = rng.standard_normal((1, size, size, 3)).astype(np.float32)
    outs = {key: np.array(r(x)) for key, r in runners.items()}
    ref = outs["stock_1t"]
    err = max(
        float(np.max(np.abs(outs[k] - ref)) / max(float(np.max(np.abs(ref))), 1e-30))
        for k in runners
        if k.startswith("delegate")
    )
    st = dg.stats(build, delegates[1])
    claimed_layers = [n for n, c in st["layers"].items() if c > 0]
    ts = dict(
        zip(
            runners,
            time_interleaved([r.invoke for r in runners.values()], rounds=rounds, min_time=0.02),
        )
    )
    # where the delegated run's time goes: our layers (the delegate's per-layer clocks) and the
    # rest (XNNPACK's nodes and the partition boundaries between them), per inference
    split = {}
    for nt in (1, 2):
        before = dg.stats(build, delegates[nt])["layer_seconds"]
        n_runs = 20
        t0 = time.perf_counter()
        for _ in range(n_runs):
            runners[f"delegate_{nt}t"].invoke()
        total = (time.perf_counter() - t0) / n_runs
        after = dg.stats(build, delegates[nt])["layer_seconds"]
        ours = {n: (after[n] - before.get(n, 0.0)) / n_runs for n in after}
        split[f"total_{nt}t"] = total  # mean of these runs (``seconds`` holds minima)
        split[f"our_layers_{nt}t"] = sum(ours.values())
        split[f"rest_{nt}t"] = total - split[f"our_layers_{nt}t"]
        if nt == 1:
            split["slowest_layers_1t"] = dict(sorted(ours.items(), key=lambda kv: -kv[1])[:8])
    compiled = [r for r in rep["layers"] if r["qualifies"] and r.get("kind") is None]
    pointwise = [r for r in rep["layers"] if r["qualifies"] and r.get("kind") is not None]
    res = {
        "model": f"keras.applications.ResNet50, random weights, {size}x{size}, batch 1, logits; "
        f"3x3 convs: {PATTERNS} patterns, connectivity {CONNECTIVITY}; 1x1 convs and the "
        f"classifier: blocks of 1 input channel x 16 filters, 1 in {POINTWISE_RATE} kept; "
        f"BatchNorm folded by the converter; cocogen compile {'untuned' if quick else 'tuned'}",
        "method": "whole model: stock tf.lite.Interpreter (XNNPACK) vs the same interpreter "
        "with libcocogen_delegate.so, same model.tflite, interleaved, min of rounds",
        "seconds": ts,
        "compiled_layers": len(compiled) + len(pointwise),
        "compiled_3x3_layers": len(compiled),
        "compiled_pointwise_layers": len(pointwise),
        "claimed_nodes": st["claimed"],
        "claimed_layers_invoked": len(claimed_layers),
        "max_rel_err_vs_tflite": err,
        "delegate_speedup_1t": ts["stock_1t"] / ts["delegate_1t"],
        "delegate_speedup_2t": ts["stock_2t"] / ts["delegate_2t"],
        "delegate_mac_fraction": sum(macs[n] for n in claimed_layers) / sum(macs.values()),
        "dense_macs_total": sum(macs.values()),
        "pruned_3x3_mac_reduction": sum(r["macs_dense"] for r in compiled)
        / max(sum(r["macs_pruned"] for r in compiled), 1),
        "pruned_pointwise_mac_reduction": sum(r["macs_dense"] for r in pointwise)
        / max(sum(r["macs_pruned"] for r in pointwise), 1),
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
        "compile_seconds": compile_seconds,
        "time_split": split,
    }
    log(
        f"[resnet50] stock {ts['stock_1t'] * 1e3:.1f}/{ts['stock_2t'] * 1e3:.1f} ms, +delegate "
        f"{ts['delegate_1t'] * 1e3:.1f}/{ts['delegate_2t'] * 1e3:.1f} ms (1t/2t) -> "
        f"x{res['delegate_speedup_1t']:.2f} / x{res['delegate_speedup_2t']:.2f}; "
        f"{st['claimed']} nodes claimed, {res['delegate_mac_fraction']:.0%} of the dense MACs "
        f"in our kernels; err {err:.1e}; our layers {split['our_layers_1t'] * 1e3:.1f}/"
        f"{split['our_layers_2t'] * 1e3:.1f} ms of it, the rest {split['rest_1t'] * 1e3:.1f}/"
        f"{split['rest_2t'] * 1e3:.1f} ms"
    )
    del runners, delegates
    shutil.rmtree(work, ignore_errors=True)
    return res


def bench_resnet50_pointwise(quick: bool, rounds: int, log) -> dict:
    """ResNet-50's 1×1 layers and classifier, one by one (``benchmarks/cocogen_pointwise.py``)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import cocogen_pointwise

    work = Path(tempfile.mkdtemp(prefix="cocogen_pw_"))
    try:
        return cocogen_pointwise.bench(quick, rounds, log, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# the 3x3 shapes of keras.applications.ResNet50 (v1: stride 2 is on the 1x1 convolutions)
RESNET50_V1_3X3 = ("conv2_x", "conv3_x", "conv4_x", "conv5_x")


def whole_model_bounds(networks: dict) -> dict:
    """Per-layer bound fractions of the whole ResNet-50, from this run's per-layer entries."""
    rows = [
        {"layer": r["name"], "kind": "3x3", "bound_fraction": r["bound_fraction"]}
        for r in networks["resnet50_3x3"]["layers"]
        if r["name"] in RESNET50_V1_3X3
    ]
    for r in networks["resnet50_1x1"]["layers"]:
        key = "bound_fraction_unblocked" if "bound_fraction_unblocked" in r else "bound_fraction"
        rows.append({"layer": r["name"], "kind": "1x1", "bound_fraction": r[key]})
    worst = min(rows, key=lambda r: r["bound_fraction"])
    return {
        "bound_fraction_min": worst["bound_fraction"],
        "bound_fraction_min_layer": worst["layer"],
        "bound_fractions": rows,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--quick",
        action="store_true",
        help="small shapes (channels / 8, smaller images), fewer tiles",
    )
    ap.add_argument(
        "--out", default=str(Path(__file__).resolve().parent / "results"), help="output directory"
    )
    ap.add_argument("--networks", default="vgg16_cifar,resnet50_3x3")
    ap.add_argument(
        "--rounds", type=int, default=None, help="interleaved rounds (default 9, quick 3)"
    )
    ap.add_argument(
        "--keep-build", action="store_true", help="keep the generated C and .so (in /tmp)"
    )
    args = ap.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 9)
    t0 = time.time()
    res = {
        "method": __doc__.split("Method: ", 1)[1].split("\n\n")[0].replace("\n", " "),
        "bound_fraction_definition": "(tflite_1t_time / our_1t_time) / (dense_MACs / pruned_MACs)",
        "pruning": {"patterns": PATTERNS, "connectivity": CONNECTIVITY, "taps": 4},
        "quick": args.quick,
        "rounds": rounds,
        "machine": machine_info(),
        "networks": {},
    }
    out_path = Path(args.out) / "cocogen.json"
    if out_path.is_file():  # keep the entries of networks not run this time
        import json

        try:
            res["networks"] = json.loads(out_path.read_text()).get("networks", {})
        except ValueError:
            pass
    names = args.networks.split(",")
    for name in names:
        log = lambda m: print(m, flush=True)  # noqa: E731
        if name == "resnet50":
            whole = bench_whole_resnet50(args.quick, rounds, log)
            whole["measured"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            whole["loadavg"] = loadavg()
            res["networks"][name] = whole
            res["networks"]["resnet50_1x1"] = bench_resnet50_pointwise(args.quick, rounds, log)
            if "resnet50_3x3" in names[: names.index(name)]:
                whole.update(whole_model_bounds(res["networks"]))
            else:
                whole["bound_fraction_min"] = None
                whole["bound_fraction_note"] = "run with --networks resnet50_3x3,resnet50"
            continue
        net = bench_network(name, args.quick, rounds, log, keep=args.keep_build)
        d = net.get("delegate") or {}
        for key in ("delegate_speedup_1t", "delegate_speedup_2t"):
            if key in d:
                net[key] = d[key]
        res["networks"][name] = net
    res["elapsed_seconds"] = time.time() - t0
    res["machine"]["loadavg_after"] = loadavg()
    p = write_json(res, out_path)
    print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
