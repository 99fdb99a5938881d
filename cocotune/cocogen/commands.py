"""``cocotune cocogen prune | compile | bench``: argparse wiring (TensorFlow imported lazily).

::

    cocotune cocogen prune  model.keras --data digits --patterns 8 --connectivity 3.6 -o pruned/
    cocotune cocogen compile pruned/model.keras -o build/
    cocotune cocogen bench  build/
    cocotune cocogen evaluate build/ --data digits
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cocotune.cocogen.errors import CocogenError

__all__ = ["register", "cmd_prune", "cmd_compile", "cmd_bench", "cmd_evaluate"]


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _rate(text: str) -> float:
    try:
        v = float(text.rstrip("xX×"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a rate such as 3.6, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(
            f"a connectivity rate is >= 1 (1 keeps every kernel), got {text!r}"
        )
    return v


def _threads(text: str) -> list[int]:
    try:
        out = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected thread counts such as 1,2; got {text!r}"
        ) from None
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"expected thread counts such as 1,2; got {text!r}")
    return out


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``cocogen`` with ``prune``, ``compile`` and ``bench`` to an argparse subparsers object."""
    p = subparsers.add_parser(
        "cocogen",
        help="pattern + connectivity pruning (ADMM) and generated C kernels (CoCo-Gen)",
        description="CoCo-Gen: prune 3x3 convolutions to kernel patterns, store them as FKW and "
        "generate specialised C kernels.",
    )
    sub = p.add_subparsers(dest="cocogen_command", metavar="{prune,compile,bench,evaluate}")
    sub.required = True

    pr = sub.add_parser(
        "prune",
        help="ADMM pattern + connectivity pruning, then masked retraining",
        description="Prune every 3x3 Conv2D of a Keras model to K kernel patterns (4 taps, "
        "centre kept) and remove kernels at a connectivity rate (3.6 = 3.6x fewer kernels).",
    )
    pr.add_argument("model", help="trained Keras model (.keras)")
    pr.add_argument(
        "--data",
        default="digits",
        help="'digits' (scikit-learn 8x8 digits) or an .npz with "
        "x_train,y_train,x_test,y_test (default: digits)",
    )
    pr.add_argument(
        "--patterns", type=_positive_int, default=8, help="pattern library size K (default 8)"
    )
    pr.add_argument(
        "--connectivity",
        type=_rate,
        default=3.6,
        help="connectivity pruning rate: keep 1/rate of the kernels of each layer (default 3.6)",
    )
    pr.add_argument(
        "-o",
        "--output",
        required=True,
        help="output directory (model.keras, masks.npz, pruning.json)",
    )
    pr.add_argument(
        "--first-layer",
        choices=("pattern", "prune", "skip"),
        default="pattern",
        help="the first 3x3 conv: patterns only (default), patterns + connectivity, or left dense",
    )
    pr.add_argument(
        "--pointwise",
        type=_rate,
        default=1.0,
        help="also block-prune 1x1 convolutions and hidden Dense layers (blocks of one input "
        "channel x 16 filters), keeping 1/rate of the blocks (default 1: off)",
    )
    pr.add_argument(
        "--depthwise",
        action="store_true",
        help="also prune 3x3 depthwise convolutions (MobileNet) to one 4-tap pattern per group "
        "of 16 channels (2.25x fewer MACs; compiled and run by the delegate)",
    )
    pr.add_argument(
        "--admm-epochs", type=int, default=8, help="ADMM iterations, one epoch each (default 8)"
    )
    pr.add_argument(
        "--retrain-epochs", type=int, default=6, help="masked retraining epochs (default 6)"
    )
    pr.add_argument(
        "--rho", type=float, default=0.05, help="initial ADMM penalty rho (default 0.05)"
    )
    pr.add_argument(
        "--rho-mult", type=float, default=2.0, help="rho multiplier per iteration (default 2)"
    )
    pr.add_argument("--lr", type=float, default=5e-3, help="Adam learning rate (default 5e-3)")
    pr.add_argument("--batch-size", type=_positive_int, default=32)
    pr.add_argument("--seed", type=int, default=0)
    pr.set_defaults(func=cmd_prune)

    co = sub.add_parser(
        "compile",
        help="FKW weights, C sources and a shared library for the pattern layers",
        description="Generate one specialised C kernel per qualifying 3x3 Conv2D (kernels "
        "already following at most --max-patterns patterns); other layers stay with the "
        "stock runtime and are listed in build.json.",
    )
    co.add_argument("model", help="pattern-pruned Keras model (.keras)")
    co.add_argument("-o", "--output", required=True, help="build directory")
    co.add_argument(
        "--max-patterns", type=_positive_int, default=8, help="most patterns per layer (default 8)"
    )
    co.add_argument(
        "--no-tune", action="store_true", help="skip autotuning; use the default tiling"
    )
    co.add_argument(
        "--threads", type=_positive_int, default=1, help="threads used while autotuning (default 1)"
    )
    co.add_argument("--portable", action="store_true", help="build without -march=native")
    co.set_defaults(func=cmd_compile)

    be = sub.add_parser(
        "bench",
        help="per-layer and whole-model speed vs stock TensorFlow Lite",
        description="Time each compiled kernel against the same layer in stock TFLite "
        "(XNNPACK), min of interleaved runs; whole model when it is a chain.",
    )
    be.add_argument("build", help="build directory from 'cocogen compile'")
    be.add_argument("--threads", type=_threads, default=[1, 2], help="thread counts (default 1,2)")
    be.add_argument(
        "--rounds", type=_positive_int, default=7, help="interleaved samples per figure (default 7)"
    )
    be.add_argument("--json", help="also write the results to this file (default BUILD/bench.json)")
    be.set_defaults(func=cmd_bench)

    ev = sub.add_parser(
        "evaluate",
        help="the build's model.tflite in stock TFLite, with vs without our delegate",
        description="Sizes, test accuracy (--data) and latency of BUILD/model.tflite in the stock "
        "tf.lite.Interpreter, with the build's delegate and without it (XNNPACK).",
    )
    ev.add_argument("build", help="build directory from 'cocogen compile'")
    ev.add_argument(
        "--data",
        help="'digits' or an .npz with x_train,y_train,x_test,y_test: also report test accuracy",
    )
    ev.add_argument("--threads", type=_threads, default=[1], help="thread counts (default 1)")
    ev.add_argument(
        "--rounds", type=_positive_int, default=7, help="interleaved samples per figure (default 7)"
    )
    ev.add_argument(
        "--json", help="also write the results to this file (default BUILD/evaluate.json)"
    )
    ev.set_defaults(func=cmd_evaluate)
    return p


def cmd_prune(args) -> int:
    from cocotune.cocogen.admm import ADMMConfig, admm_prune
    from cocotune.cocogen.data import load_data
    from cocotune.cocogen.pipeline import load_model

    data = load_data(args.data, args.seed)
    model = load_model(args.model)
    want = tuple(model.input_shape[1:])
    got = tuple(data[0].shape[1:])
    if want != got:
        raise CocogenError(
            f"model '{args.model}' takes inputs {want}, but --data {args.data} has {got}"
        )
    cfg = ADMMConfig(
        patterns=args.patterns,
        connectivity=args.connectivity,
        admm_epochs=args.admm_epochs,
        retrain_epochs=args.retrain_epochs,
        rho0=args.rho,
        rho_mult=args.rho_mult,
        lr=args.lr,
        batch_size=args.batch_size,
        seed=args.seed,
        first_layer=args.first_layer,
        pointwise=args.pointwise,
        depthwise=args.depthwise,
    )
    rep = admm_prune(model, data, cfg)
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise CocogenError(f"output '{args.output}' exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model.keras")
    import numpy as np

    np.savez_compressed(out / "masks.npz", **rep.masks)
    info = rep.to_json()
    info.update(
        patterns=args.patterns,
        connectivity=args.connectivity,
        data=args.data,
        first_layer=args.first_layer,
        pointwise_rate=args.pointwise,
        interpretation="connectivity rate r keeps round(n/r) of each layer's n kernels",
    )
    (out / "pruning.json").write_text(json.dumps(info, indent=2) + "\n")
    print(
        f"accuracy: before {rep.acc_before:.4f}, after ADMM {rep.acc_after_admm:.4f}, "
        f"after retraining {rep.acc_after_retrain:.4f}"
    )
    print(
        f"compression of the pruned 3x3 convolutions: {rep.compression:.2f}x "
        f"({len(rep.layers)} layers, {args.patterns} patterns, connectivity {args.connectivity}x)"
    )
    if rep.pointwise_kept:
        nz = sum(k for k, _ in rep.pointwise_kept.values())
        tot = sum(t for _, t in rep.pointwise_kept.values())
        print(
            f"compression of the 1x1 / hidden Dense layers: {tot / max(nz, 1):.2f}x "
            f"({len(rep.pointwise_kept)} layers, block pruning at {args.pointwise}x)"
        )
    if rep.depthwise_kept:
        nz = sum(k for k, _ in rep.depthwise_kept.values())
        tot = sum(t for _, t in rep.depthwise_kept.values())
        print(
            f"depthwise 3x3 layers: {len(rep.depthwise_kept)} pruned to one 4-tap pattern per 16 "
            f"channels ({tot / max(nz, 1):.2f}x fewer weights)"
        )
    print(f"wrote {out / 'model.keras'}, {out / 'masks.npz'}, {out / 'pruning.json'}")
    return 0


def cmd_compile(args) -> int:
    from cocotune.cocogen.pipeline import compile_model

    rep = compile_model(
        args.model,
        args.output,
        max_patterns=args.max_patterns,
        tune=not args.no_tune,
        threads=args.threads,
        native=not args.portable,
    )
    for row in rep["layers"]:
        if row["qualifies"] and row.get("kind") in ("pointwise", "fc"):
            print(
                f"{row['name']:>16}: {row['kernel']}  ({row['blocks_kept']}/{row['blocks_total']} "
                f"blocks, PWB {row['pwb_bytes']} B vs CSR {row['csr_bytes']} B; delegate only)"
            )
        elif row["qualifies"] and row.get("kind") == "depthwise":
            print(
                f"{row['name']:>16}: {row['kernel']}  ({row['distinct_patterns']} pattern(s) "
                "over groups of 16 channels, 4 of 9 taps; delegate only)"
            )
        elif row["qualifies"] and row.get("kind") in ("csr_pointwise", "csr_fc"):
            print(
                f"{row['name']:>16}: {row['kernel']}  ({row['density']:.0%} of its weights, "
                f"unstructured sparse; delegate only)"
            )
        elif row["qualifies"]:
            print(
                f"{row['name']:>16}: {row['kernel']}  ({row['kernels_kept']}/{row['kernels_total']} kernels, "
                f"FKW {row['fkw_bytes']} B vs CSR {row['csr_bytes']} B)"
            )
        else:
            print(f"{row['name']:>16}: stock runtime ({row['reason']})")
    print(f"wrote {Path(args.output) / rep['library']} and build.json ({rep['isa']})")
    if "delegate" in rep:
        d = rep["delegate"]
        print(
            f"wrote {Path(args.output) / d['tflite']} and {Path(args.output) / d['library']} "
            f"(TFLite external delegate for {len(d['layers'])} layer(s); "
            "load with cocotune.cocogen.delegate.load)"
        )
    return 0


def cmd_bench(args) -> int:
    from cocotune.cocogen.bench import bench_build, write_json
    from cocotune.cocogen.pipeline import load_build

    build = load_build(args.build)
    res = bench_build(build, threads=tuple(args.threads), rounds=args.rounds)
    t0 = args.threads[0]
    for r in res["layers"]:
        sp = ", ".join(f"{r[f'speedup_vs_tflite_{t}t']:.2f}x ({t}t)" for t in args.threads)
        print(
            f"{r['name']:>16}: vs TFLite {sp}; {r['bound_fraction']:.0%} of the {r['mac_reduction']:.1f}x "
            f"MAC-reduction bound ({t0}t); FKW/CSR {r['fkw_bytes'] / r['csr_bytes']:.2f}"
        )
    if "whole_model" in res:
        wm = res["whole_model"]
        print(
            "whole model vs TFLite: "
            + ", ".join(f"{wm[f'speedup_vs_tflite_{t}t']:.2f}x ({t}t)" for t in args.threads)
        )
    out = Path(args.json) if args.json else Path(args.build) / "bench.json"
    write_json(res, out)
    print(f"wrote {out}")
    return 0


def cmd_evaluate(args) -> int:
    from cocotune.cocogen.bench import write_json
    from cocotune.cocogen.tflite_eval import evaluate_build

    data = None
    if args.data:
        from cocotune.cocogen.data import load_data

        data = load_data(args.data)
    res = evaluate_build(args.build, data, threads=tuple(args.threads), rounds=args.rounds)
    kb = res["keras_bytes"]
    print(
        f"model.tflite {res['tflite_bytes'] / 1024:.1f} KiB"
        + (f" (model.keras {kb / 1024:.1f} KiB)" if kb else "")
        + f"; delegate library {res['delegate_bytes'] / 1024:.1f} KiB + weights "
        f"{res['weights_bytes'] / 1024:.1f} KiB"
    )
    if "accuracy_stock" in res:
        print(
            f"test accuracy ({res['test_images']} images, batch 1): stock TFLite "
            f"{res['accuracy_stock']:.4f}, with the CoCo-Gen delegate {res['accuracy_delegate']:.4f} "
            f"(max relative output difference {res['max_rel_err_vs_stock']:.1e})"
        )
    for t, row in res["threads"].items():
        print(
            f"{t} thread(s): {row['claimed']} CONV_2D node(s) in our kernels, {row['refused']} "
            f"left to stock; latency {row['latency_ms_stock']:.3f} ms stock (XNNPACK) vs "
            f"{row['latency_ms_delegate']:.3f} ms with the delegate ({row['speedup']:.2f}x)"
        )
    out = Path(args.json) if args.json else Path(args.build) / "evaluate.json"
    write_json(res, out)
    print(f"wrote {out}")
    return 0
