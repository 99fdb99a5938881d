"""``cocotune convert``: Prototxt (+ caffemodel) → a Keras package (model.py, weights, README).

Everything is checked before anything is written: the net, its convertibility (every
unsupported layer at once) and the weights. The files then appear atomically (temp + rename).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from cocotune.errors import CocotuneError
from cocotune.files import import_generated, save_weights_atomic, write_text_atomic


def convert(
    prototxt: str,
    out_dir: str | Path,
    weights_path: str | None = None,
    phase: str = "TEST",
    stages: list[str] | None = None,
    input_shapes: dict | None = None,
    command: str = "convert",
):
    """Write model.py (+ full.weights.h5 when weights are given) and README.md into out_dir.

    Returns (net, net_plan, generated module, caffe weights or None).
    """
    from cocotune.caffemodel import read_caffemodel
    from cocotune.convert.generate import generate_model_source
    from cocotune.convert.plan import plan_net
    from cocotune.frontend.load import load_net

    net = load_net(prototxt, phase=phase, stages=stages, input_shapes=input_shapes)
    net_plan = plan_net(net)
    caffe_weights = read_caffemodel(weights_path, net) if weights_path else None
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise CocotuneError(f"output '{out}' exists and is not a directory")
    source = generate_model_source(net_plan, str(prototxt), command)
    write_text_atomic(out / "model.py", source)
    module = import_generated(out / "model.py")
    if caffe_weights is not None:
        from cocotune.convert.weights import caffe_to_keras, set_weights

        model = module.build_model("full")
        set_weights(model, caffe_to_keras(net_plan, caffe_weights))
        save_weights_atomic(model, out / "full.weights.h5")
    write_text_atomic(out / "README.md", _readme(net, net_plan, prototxt, weights_path))
    return net, net_plan, module, caffe_weights


def _readme(net, net_plan, prototxt, weights_path) -> str:
    from cocotune import __version__
    from cocotune.convert.render import render

    return render(
        "keras/README.md.j2",
        {
            "version": __version__,
            "net_name": net.name or Path(prototxt).stem,
            "source": str(prototxt),
            "weights": weights_path,
            "inputs": [(b.name, b.shape) for b in net_plan.model_inputs],
            "outputs": [(b.name, b.shape) for b in net_plan.model_outputs],
            "modules": [(m.name, m.prunable) for m in net_plan.modules],
            "layers": len(net.layers),
        },
    )


def verify(net, net_plan, module, caffe_weights, seed: int = 0, batch: int = 2) -> list[dict]:
    """Run the generated model and the numpy reference on one random input; errors per blob.

    Every blob the model computes is compared (not only the outputs: a saturated softmax
    would hide differences). The reference (cocotune/reference/caffe_layers.py) is an
    independent numpy implementation of Caffe's layers that imports no cocotune code.
    Rows come in network order; each has blob, shape, max_abs_error, max_rel_error (relative
    to the blob's largest magnitude) and whether the blob is a model output.
    """
    reference = _load_reference()
    from cocotune.caffemodel import random_weights
    from cocotune.convert.weights import caffe_to_keras, set_weights

    outputs = [b.name for b in net_plan.model_outputs]
    producers = module.SPEC.blob_producers  # what the generated model can expose
    inputs = {b.name for b in net_plan.model_inputs}
    # Blobs that no output depends on (e.g. Crop's reference input) are not in the model.
    in_model = {layer.name for layer in module.build_model("full").layers}
    extra = [
        name
        for name in dict.fromkeys(b.name for b in net.blobs)
        if producers.get(name) in in_model and name not in inputs and name not in outputs
    ]
    model = module.build_model("full", outputs=extra)
    rng = np.random.default_rng(seed)
    feeds_caffe, feeds_tf = {}, []
    for blob in net_plan.model_inputs:
        shape = (batch, *blob.shape[1:])
        x = rng.standard_normal(shape).astype(np.float32)
        feeds_caffe[blob.name] = x
        feeds_tf.append(x.transpose(0, 2, 3, 1) if len(shape) == 4 else x)
    feed = feeds_tf[0] if len(feeds_tf) == 1 else feeds_tf
    if caffe_weights is None:
        weights = calibrate_batchnorm(net_plan, model, random_weights(net, seed=seed), feed)
    else:
        weights = caffe_weights
    set_weights(model, caffe_to_keras(net_plan, weights))
    ref = reference.run_net(net.to_net_parameter(), weights, feeds_caffe)
    got = model.predict(feed, verbose=0)
    got = got if isinstance(got, list) else [got]
    layouts = _final_layouts(net_plan)
    report = []
    for name, value in zip(outputs + extra, got):
        want = np.asarray(ref[name])
        value = np.asarray(value)
        layout = layouts.get(name)
        if layout is not None and layout.kind == "nhwc":
            value = value.transpose(0, 3, 1, 2)
        elif layout is not None and layout.kind == "hwc_flat":
            # flattened in (H, W, C) order by design (see convert/layout.py): reorder to compare
            _, h, w = layout.chw
            value = value.reshape(len(value), h, w, -1).transpose(0, 3, 1, 2).reshape(want.shape)
        abs_err = float(np.max(np.abs(value - want))) if want.size else 0.0
        scale = float(np.max(np.abs(want))) if want.size else 0.0
        report.append(
            {
                "blob": name,
                "shape": list(want.shape),
                "output": name in outputs,
                "max_abs_error": abs_err,
                "max_rel_error": abs_err / scale if scale else abs_err,
            }
        )
    return report


def calibrate_batchnorm(net_plan, model, weights, feed) -> dict[str, list[np.ndarray]]:
    """Random weights whose BatchNorm statistics match the activations they normalise.

    With arbitrary statistics, activations of random deep nets grow by orders of magnitude
    and float32 rounding noise is amplified until any two implementations disagree. One
    forward pass in training mode (each BatchNorm normalising by its batch statistics) gives
    every BatchNorm's real input statistics; storing them makes inference-mode outputs
    well-scaled, like a trained net's.
    """
    import keras

    from cocotune.convert.emitters.norm import BatchNormEmitter
    from cocotune.convert.weights import caffe_to_keras, set_weights

    bn_plans = [p for p in net_plan.plans if isinstance(p.emitter, BatchNormEmitter)]
    if not bn_plans:
        return weights
    weights = dict(weights)
    set_weights(model, caffe_to_keras(net_plan, weights))
    probes = [model.get_layer(p.keras_name).input for p in bn_plans]
    probe = keras.Model(model.inputs, probes)
    values = probe(feed if isinstance(feed, list) else [feed], training=True)
    values = values if isinstance(values, (list, tuple)) else [values]
    for plan, value in zip(bn_plans, values):
        x = np.asarray(value, dtype=np.float64)
        axis = x.ndim - 1 if plan.in_layouts[0].kind == "nhwc" or x.ndim == 2 else 1
        reduce = tuple(a for a in range(x.ndim) if a != axis)
        factor = np.float32(weights[plan.layer.name][2].reshape(-1)[0]) or np.float32(1)
        mean = x.mean(axis=reduce).astype(np.float32)
        var = x.var(axis=reduce)
        # A floor keeps near-constant channels (common after ReLU) from being scaled up
        # by 1/sqrt(eps), which would amplify rounding noise instead of the signal.
        var = (var + 0.5 * var.mean() + 1e-3).astype(np.float32)
        weights[plan.layer.name] = [mean * factor, var * factor, np.array([factor], np.float32)]
    return weights


def _final_layouts(net_plan) -> dict:
    out = {}
    for plan in net_plan.plans:
        for blob, layout in zip(plan.layer.outputs, plan.out_layouts):
            out[blob.name] = layout
    return out


def _load_reference():
    """The numpy reference, imported only when --verify asks for it (it ships in the package)."""
    from cocotune.reference import caffe_layers

    return caffe_layers


def cmd_convert(args: argparse.Namespace) -> int:
    from cocotune.frontend.load import parse_input_shapes

    command = "convert " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["convert"] else "convert"
    net, net_plan, module, weights = convert(
        args.prototxt,
        args.output,
        args.weights,
        args.phase,
        args.stage,
        parse_input_shapes(args.input_shape),
        command=command,
    )
    out = Path(args.output)
    print(f"wrote {out / 'model.py'}" + (f" and {out / 'full.weights.h5'}" if weights else ""))
    if args.verify:
        report = verify(net, net_plan, module, weights, seed=args.seed)
        what = "the given weights" if weights is not None else f"random weights (seed {args.seed})"
        print(f"verify: generated Keras model vs numpy Caffe reference, {what}, random input")
        for row in (r for r in report if r["output"]):
            print(
                f"  {row['blob']:30s} shape {tuple(row['shape'])}  max abs error "
                f"{row['max_abs_error']:.3g}  max rel error {row['max_rel_error']:.3g}"
            )
        worst_row = max(report, key=lambda r: r["max_rel_error"])
        worst = worst_row["max_rel_error"]
        print(
            f"  {len(report)} blobs compared; largest relative error {worst:.3g} "
            f"at blob '{worst_row['blob']}'"
        )
        ok = worst <= args.tolerance
        print(
            f"verify: {'OK' if ok else 'MISMATCH'} (max relative error {worst:.3g}, "
            f"tolerance {args.tolerance:g})"
        )
        return 0 if ok else 1
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "convert",
        help="convert a Caffe net (and caffemodel) to a Keras 3 model package",
        description="Generate out/model.py (readable Keras 3 code, NHWC) from a Prototxt; with "
        "--weights also out/full.weights.h5. Nothing is written if any layer cannot be "
        "converted exactly.",
    )
    from cocotune.cli_support import add_net_options

    add_net_options(p)
    p.add_argument("-o", "--output", required=True, help="output directory")
    p.add_argument("--weights", help="a .caffemodel with the net's trained weights")
    p.add_argument(
        "--verify",
        action="store_true",
        help="compare the generated model with the numpy Caffe reference",
    )
    p.add_argument("--seed", type=int, default=0, help="random input/weights seed for --verify")
    p.add_argument(
        "--tolerance",
        type=float,
        default=1e-4,
        help="largest acceptable relative error for --verify (default 1e-4)",
    )
    p.set_defaults(func=cmd_convert)
