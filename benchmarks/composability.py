"""Composability-based pruning vs plain fine-tuning in the Wootz paper's regime, at our scale.

The regime (why: it is the one the paper measures, see the README's "Does it work?"): a full
model trained to convergence on a large SOURCE set is fine-tuned to a small TARGET set of a
related task, and every pruned network is fine-tuned on that target set only. Here the source
is 16,200 perturbed 8x8 digits (digits-hard style variants of 900 base images) and the target
is the same ten digits photographed out of focus (Gaussian blur) on the other 897 base
images (150 for training, 500 for validation, 247 for test, several perturbed variants each);
both are generated deterministically from scikit-learn's bundled digits, nothing is
downloaded.

Measured: examples/resnet_digits, one sampled subspace of 256 configurations (rates
0.3/0.5/0.7; 16 and 64 are nested random subsets), every configuration fine-tuned once per
method ("default": the full model's L1-pruned weights; "block": the same overlaid with tuning
blocks pre-trained on the target set) by the product's own loop
(:func:`cocotune.runtime.explore.evaluate_configuration`): one stop rule (plateau or limit, no
threshold stop, so one run serves every alpha), one seed, BatchNorm statistics re-estimated on
the same target training images at every evaluation point for both methods, decisions on the
validation split only (test accuracy recorded, never used).

Exploration is replayed from the measured curves (:func:`table4`): configurations ascending
size; each costs its setup plus the seconds to its first evaluation at/above the threshold
(full val accuracy x (1 - alpha)) or to its last one; exploration stops at the first that
meets; block-trained time includes all pre-training. ``--recompute FILE`` recomputes the table
from a JSON and checks it.

Run: ``mpirun -n 2 python benchmarks/composability.py [--work DIR]`` (a killed run resumes
from DIR; results of other settings are never reused), ``--quick`` for a few-minute version.
Writes composability.json and three PNG plots to --out.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
NET = REPO / "examples" / "resnet_digits" / "net.prototxt"
ALPHAS = [0.0, 0.005, 0.01, 0.02]
RATES = [0.3, 0.5, 0.7]
METHODS = {"default": "default", "block": "block-trained"}  # JSON name -> product method

# What the Wootz paper reports (Guan, Shen, Lim, "Wootz: A Compiler-Based Framework for Fast
# CNN Pruning via Composability", PLDI 2019, arXiv:1901.02358).
PAPER = {
    "source": "Guan, Shen, Lim. Wootz: A Compiler-Based Framework for Fast CNN Pruning via "
    "Composability. PLDI 2019 (arXiv:1901.02358)",
    "setting": "ImageNet-trained ResNet-50 and Inception-V3 pruned for four fine-grained data "
    "sets (Flowers102, CUB200, Cars, Dogs); subspaces of up to 500 configurations",
    "table4_headline": {"resnet50_flowers102": {"64": 17.4, "256": 108}},
    "table3_speedup_range": [97, 186],
    "max_speedup_resnet50": 186.7,
    "max_speedup_inception_v3": 30.2,
}


# ----------------------------------------------------------------------------------------------
# The data regime
# ----------------------------------------------------------------------------------------------

FULL_REGIME = {"source_variants": 18, "train_variants": 3, "val_variants": 4, "test_variants": 4}
QUICK_REGIME = {"source_variants": 2, "train_variants": 1, "val_variants": 1, "test_variants": 1}
POOLS = {"source": 900, "train": 150, "val": 500, "test": 247}  # base images (1797 in all)


def perturb(images: np.ndarray, variants: int, stream: int, blur: bool, seed: int = 0):
    """``variants`` perturbed copies of each 8x8 image (digits-hard's recipe at difficulty 1).

    Affine warp (rotation +-12 deg, scale 1 +- 0.09, shift +-0.9 px), contrast x U(0.7, 1) and
    a background offset U(0, 0.15), an occluding 2-3 x 2-4 px rectangle with probability 0.36,
    Gaussian noise sigma 0.072, clipped to [0, 1]. ``blur`` first blurs each image (Gaussian,
    sigma 0.8 px: out of focus, the target task). Image-major: rows i*v .. i*v+v-1
    are variants of image i.
    """
    from scipy import ndimage

    rng = np.random.default_rng((int(seed), int(stream)))
    out = np.empty((len(images) * variants, 8, 8, 1), np.float32)
    centre = np.array([3.5, 3.5])
    k = 0
    for image in images:
        base = ndimage.gaussian_filter(image, 0.8) if blur else image
        for _ in range(variants):
            angle = np.deg2rad(rng.uniform(-12.0, 12.0))
            zoom = 1.0 + rng.uniform(-0.09, 0.09)
            shift = rng.uniform(-0.9, 0.9, size=2)
            rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
            matrix = rot / zoom  # output -> input coordinates
            offset = centre - matrix @ (centre + shift)
            img = ndimage.affine_transform(base, matrix, offset=offset, order=1, mode="constant")
            img = img * rng.uniform(0.7, 1.0) + rng.uniform(0.0, 0.15)
            if rng.random() < 0.36:
                oh, ow = rng.integers(2, 4), rng.integers(2, 5)
                oy, ox = rng.integers(0, 8 - oh + 1), rng.integers(0, 8 - ow + 1)
                img[oy : oy + oh, ox : ox + ow] = rng.random()
            img = img + rng.normal(0.0, 0.072, size=img.shape)
            out[k, :, :, 0] = np.clip(img, 0.0, 1.0)
            k += 1
    return out


def make_regime(variants: dict, seed: int = 0):
    """(source Dataset, target Dataset, groups): the source and target sets, deterministic.

    scikit-learn's 1797 digits are split once (stratified, fixed seed) into disjoint pools of
    base images: 900 source, 150 target-train, 500 target-validation, 247 target-test. The
    source is the digits as they are, the target the same ten classes out of focus.
    ``groups``
    gives the base image of every target validation image (for a clustered standard error).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from cocotune.runtime.data import Dataset

    d = load_digits()
    x = d.images.astype(np.float32) / np.float32(16.0)
    y = d.target.astype(np.int64)
    idx = np.arange(len(x))
    src, tgt = train_test_split(idx, train_size=POOLS["source"], random_state=0, stratify=y)
    ttr, rest = train_test_split(tgt, train_size=POOLS["train"], random_state=0, stratify=y[tgt])
    tval, tte = train_test_split(rest, train_size=POOLS["val"], random_state=0, stratify=y[rest])
    parts = {}
    for stream, (name, ids, blur) in enumerate(
        (("source", src, False), ("train", ttr, True), ("val", tval, True), ("test", tte, True)),
        start=1,
    ):
        v = int(variants[f"{name}_variants"])
        parts[name] = (
            perturb(x[ids], v, stream, blur, seed),
            np.repeat(y[ids], v),
            np.repeat(ids, v),
        )
    params = {"regime": "composability", "variants": dict(variants), "pools": POOLS, "seed": seed}
    empty = np.zeros((0, 8, 8, 1), np.float32), np.zeros((0,), np.int64)
    source = Dataset(
        "digits-source",
        parts["source"][0],
        parts["source"][1],
        *empty,
        10,
        x_val=empty[0],
        y_val=empty[1],
        params={**params, "part": "source"},
    )
    target = Dataset(
        "digits-blur-target",
        parts["train"][0],
        parts["train"][1],
        parts["test"][0],
        parts["test"][1],
        10,
        x_val=parts["val"][0],
        y_val=parts["val"][1],
        params={**params, "part": "target"},
    )
    return source, target, parts["val"][2]


def standard_errors(correct: np.ndarray, groups: np.ndarray) -> dict:
    """Standard error of an accuracy: binomial, and clustered by base image (variants of one
    digit are not independent, so the clustered one is the honest figure)."""
    correct = np.asarray(correct, np.float64)
    n, p = len(correct), float(np.mean(correct))
    sums = {}
    for g, c in zip(groups, correct - p):
        sums[g] = sums.get(g, 0.0) + c
    clustered = math.sqrt(sum(s * s for s in sums.values())) / n
    return {
        "n": n,
        "clusters": len(sums),
        "accuracy": p,
        "binomial": math.sqrt(p * (1 - p) / n),
        "clustered": clustered,
    }


# ----------------------------------------------------------------------------------------------
# Settings
# ----------------------------------------------------------------------------------------------


def run_settings(quick: bool) -> dict:
    """Everything that changes a result (hashed into the work directory's fingerprint)."""
    return {
        "regime": QUICK_REGIME if quick else FULL_REGIME,
        "sizes": [2, 4, 8] if quick else [16, 64, 256],
        "rates": RATES,
        "source": {
            "steps": 40 if quick else 2400,
            "base_lr": 0.05,
            "lr_policy": "poly",
            "power": 1.0,
            "momentum": 0.9,
            "weight_decay": 5e-4,
            "batch_size": 64,
        },
        "finetune": {
            "base_lr": 0.01,
            "lr_policy": "fixed",
            "momentum": 0.9,
            "weight_decay": 5e-4,
            "batch_size": 32,
        },
        # one rule for both methods and every configuration (no threshold stop)
        "rule": {
            "max_steps": 20 if quick else 300,
            "eval_every": 5 if quick else 20,
            "patience": 3,
            "min_delta": 0.005,
        },
        # pre-training: each group of blocks to a plateau of its reconstruction error, at most
        # one configuration's step limit (L) per group
        "pretrain": {
            "blocks_per_model": 6,
            "limit": 20 if quick else 300,
            "eval_every": 5 if quick else 30,
            "patience": 3,
            "min_delta": 0.01,
        },
        "width": 1.0,
        "bn_recalibrate": 450,
        "seed": 0,
    }


def training_settings(spec: dict, steps: int = 1000):
    from cocotune.runtime.solver import TrainingSettings

    keys = ("base_lr", "lr_policy", "power", "momentum", "weight_decay", "batch_size")
    return TrainingSettings(
        max_iter=steps, source="composability benchmark", **{k: spec[k] for k in keys if k in spec}
    )


def fingerprint(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------
# Replay (no TensorFlow: anyone can recompute Table 4 from the JSON)
# ----------------------------------------------------------------------------------------------


def replay(doc: dict, ids: list[str], alpha: float, method: str, cost: str = "seconds") -> dict:
    """Explore ``ids`` smallest first (ties by id) with ``method``'s measured curves.

    A configuration costs ``setup_seconds`` plus the seconds of its first curve point at or
    above the threshold (it meets; exploration ends) or of its last point (it does not).
    Block-trained exploration starts with all pre-training (``full.pretrain_seconds``).
    Reaching a configuration the run did not measure ends the replay with ``partial`` true
    (``seconds`` is then what was spent before it: a lower bound).

    ``cost`` says what is counted, to show what limits a speedup: ``"seconds"`` (the rule
    above, the one reported), ``"no_setup"`` (the same without any configuration's
    ``setup_seconds``: no building, assembling or BatchNorm re-estimation before the first
    step) or ``"steps"`` (training steps only: a configuration costs the step of the curve
    point, pre-training costs the sum of its groups' steps; no setup, compiling or evaluation,
    and a pre-training step counted like a fine-tuning step although it runs teacher and
    students). ``seconds`` in the result is then in that unit.
    """
    if cost not in ("seconds", "no_setup", "steps"):
        raise ValueError(f"unknown cost {cost!r}")
    configs = {c["id"]: c for c in doc["configs"]}
    threshold = doc["full"]["val_accuracy"] * (1 - alpha)
    order = sorted(ids, key=lambda i: (doc["sizes"][i], i))
    if method != "block":
        seconds = 0.0
    elif cost == "steps":
        seconds = float(sum(g["steps"] for g in doc["full"]["pretrain_groups"]))
    else:
        seconds = doc["full"]["pretrain_seconds"]
    at = 0 if cost == "steps" else 1  # which field of a curve point is the cost
    out = {"explored": 0, "found": None, "params": None, "step": None, "partial": False}
    for cid in order:
        if cid not in configs:
            return {**out, "seconds": seconds, "partial": True}
        run = configs[cid][method]
        hit = next((p for p in run["curve"] if p[2] >= threshold), None)
        setup = run["setup_seconds"] if cost == "seconds" else 0.0
        seconds += setup + (hit or run["curve"][-1])[at]
        out["explored"] += 1
        if hit is not None:
            return {
                **out,
                "seconds": seconds,
                "found": cid,
                "params": doc["sizes"][cid],
                "step": hit[0],
            }
    return {**out, "seconds": seconds}


def _ratio(doc: dict, ids: list[str], alpha: float, cost: str) -> float | None:
    """Default cost / block-trained cost under another cost model (see :func:`replay`): what
    the speedup would be if per-configuration fixed costs (or all but training steps) were
    zero; a reader sees whether those costs or the accuracies hold a speedup back."""
    base, block = (replay(doc, ids, alpha, m, cost) for m in ("default", "block"))
    if block["partial"] or not block["seconds"]:
        return None
    return base["seconds"] / block["seconds"]


def meets(run: dict, threshold: float) -> bool:
    return any(p[2] >= threshold for p in run["curve"])


def table4(doc: dict) -> list[dict]:
    """One row per (subspace size, alpha), by the replay rule of :func:`replay`.

    ``speedup`` = default time / block-trained time; ``lower_bound`` when default networks
    never meet the objective (the default time is then the whole subspace's) or when the run
    stopped before default exploration would have ended. ``speedup`` is None when the run
    stopped before block-trained exploration would have ended. ``degenerate`` is "all pass"
    when the smallest configuration meets it with both methods, "none pass" when no
    configuration meets it with either (measured subspaces only), else null.
    """
    configs = {c["id"]: c for c in doc["configs"]}
    rows = []
    for size, ids in sorted(doc["subspaces"].items(), key=lambda kv: int(kv[0])):
        measured = [i for i in ids if i in configs]
        for alpha in doc["alphas"]:
            threshold = doc["full"]["val_accuracy"] * (1 - alpha)
            base, block = replay(doc, ids, alpha, "default"), replay(doc, ids, alpha, "block")
            n_default = sum(meets(configs[i]["default"], threshold) for i in measured)
            n_block = sum(meets(configs[i]["block"], threshold) for i in measured)
            smallest = min(ids, key=lambda i: (doc["sizes"][i], i))
            degenerate = None
            if len(measured) == len(ids) and n_default == 0 and n_block == 0:
                degenerate = "none pass"
            elif smallest in configs and all(
                meets(configs[smallest][m], threshold) for m in ("default", "block")
            ):
                degenerate = "all pass"
            rows.append(
                {
                    "configs": int(size),
                    "alpha": alpha,
                    "threshold": threshold,
                    "speedup": None if block["partial"] else base["seconds"] / block["seconds"],
                    "lower_bound": base["found"] is None,
                    "degenerate": degenerate,
                    "measured": len(measured),
                    "partial_default": base["partial"],
                    "partial_block": block["partial"],
                    "seconds_default": base["seconds"],
                    "seconds_block": block["seconds"],
                    "explored_default": base["explored"],
                    "explored_block": block["explored"],
                    "found_default": base["found"],
                    "found_block": block["found"],
                    "params_default": base["params"],
                    "params_block": block["params"],
                    "meeting_default": n_default,
                    "meeting_block": n_block,
                    "pretrain_share": doc["full"]["pretrain_seconds"] / block["seconds"],
                    "speedup_without_setup": _ratio(doc, ids, alpha, "no_setup"),
                    "speedup_in_steps": _ratio(doc, ids, alpha, "steps"),
                }
            )
    return rows


# ----------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few-minute version (tests)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument(
        "--work", type=Path, help="work directory (resumable; default: a temporary one)"
    )
    parser.add_argument(
        "--max-configs",
        type=int,
        help="evaluate at most this many configurations (in subspace order: "
        "the smallest subspace first), then write what is complete",
    )
    parser.add_argument(
        "--recompute",
        type=Path,
        metavar="JSON",
        help="recompute table4 from a results JSON, print it, check it",
    )
    args = parser.parse_args(argv)
    if args.recompute is not None:
        return recompute(args.recompute)
    try:  # fail before the run, not after it
        import matplotlib  # noqa: F401
    except ImportError:
        from cocotune.dependencies import missing_extra

        print(
            missing_extra("matplotlib", "plots", "the figures of this benchmark").render(),
            file=sys.stderr,
        )
        return 2

    from cocotune.cli_support import import_tensorflow_quietly

    import_tensorflow_quietly()
    from cocotune.runtime.mpi import get_comm
    from cocotune.runtime.threads import configure_threads

    comm = get_comm()
    configure_threads(comm)
    p = run_settings(args.quick)
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(comm.bcast(str(args.work or tmp) if comm.is_root else None))
        if comm.is_root:
            prepare(work, p)
        comm.barrier()
        pretrain(work, p, comm)
        comm.barrier()
        evaluate_all(work, p, comm, args.max_configs)
        comm.barrier()
        if not comm.is_root:
            return 0
        doc = assemble_json(work, p, args.quick, comm.size, time.perf_counter() - t_start)
    args.out.mkdir(parents=True, exist_ok=True)
    from cocotune.runtime.results import atomic_write_json

    path = args.out / "composability.json"
    atomic_write_json(path, doc)
    plots = plot(doc, args.out)
    print_report(doc)
    print(f"wrote {path}, " + ", ".join(str(p) for p in plots))
    return 0


def scaled_net(text: str, width: float) -> str:
    """The example net with every convolution's filter count scaled by ``width``.

    Width 1 is the example itself (the committed run): narrower nets are cheaper, but at half
    width a pruned configuration lost 4-8 points on the target, too much for any alpha of the
    grid to be met. The classifier's 10 outputs are untouched.
    """
    import re

    def scale(match: re.Match) -> str:
        n = int(match.group(1))
        return match.group(0) if n == 10 else f"num_output: {max(1, round(n * width))}"

    return re.sub(r"num_output: (\d+)", scale, text)


def _check_work(work: Path, p: dict) -> None:
    """A work directory belongs to one set of settings: never mix results of two."""
    from cocotune.errors import CocotuneError

    stamp = work / "settings.json"
    fp = fingerprint(p)
    if stamp.exists():
        old = json.loads(stamp.read_text()).get("fingerprint")
        if old != fp:
            raise CocotuneError(
                f"{work} holds a run with other settings ({old} != {fp}); "
                "use another --work directory"
            )
    else:
        work.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps({"fingerprint": fp, "settings": p}, indent=1))


def prepare(work: Path, p: dict) -> None:
    """Rank 0: subspace + package, nested subsets, full model (source, then target)."""
    from cocotune.frontend.load import load_net
    from cocotune.gen.write_package import generate_package
    from cocotune.runtime.generated_package import Package
    from cocotune.runtime.results import atomic_write_json
    from cocotune.tuning.subspace import format_subspace, sample_subspace

    _check_work(work, p)
    if not (work / "pkg" / "tuning.json").exists():
        prototxt = work / "net.prototxt"
        prototxt.write_text(scaled_net(NET.read_text(), p["width"]))
        net = load_net(prototxt)
        configs = sample_subspace(net, p["sizes"][-1], p["rates"], seed=p["seed"])
        (work / "subspace.txt").write_text(format_subspace(net.module_names, configs))
        generate_package(str(prototxt), str(work / "subspace.txt"), work / "pkg.tmp")
        (work / "pkg.tmp").rename(work / "pkg")
    pkg = Package(work / "pkg")
    if not (work / "sizes.json").exists():
        atomic_write_json(work / "sizes.json", {c.id: c.params for c in pkg.configurations})
    if not (work / "subspaces.json").exists():
        ids = [c.id for c in pkg.configurations]
        perm = [ids[i] for i in np.random.default_rng(p["seed"] + 1).permutation(len(ids))]
        atomic_write_json(work / "subspaces.json", {str(n): perm[:n] for n in p["sizes"]})
    if not (work / "full.json").exists():
        train_full(work, pkg, p)


def train_full(work: Path, pkg, p: dict) -> None:
    """The full model: trained on the source set, then fine-tuned to the target under the same
    stop rule as every configuration (so the reference is measured like the candidates)."""
    import keras

    from cocotune.runtime.data import make_tf_dataset
    from cocotune.runtime.results import atomic_save, atomic_write_json
    from cocotune.runtime.solver import make_optimizer
    from cocotune.runtime.training_loop import (
        StopRule,
        accuracy,
        classification_loss,
        fit,
        predict_batches,
        recalibrate_batchnorm,
        recalibration_images,
        train_steps,
    )

    source, target, groups = make_regime(p["regime"], p["seed"])
    loss = classification_loss(pkg.outputs_probabilities)
    keras.utils.set_random_seed(p["seed"])
    model = pkg.build("full")
    src = training_settings(p["source"], p["source"]["steps"])
    t0 = time.perf_counter()
    batches = make_tf_dataset(source.x_train, source.y_train, src.batch_size, True, p["seed"], True)
    train_steps(model, batches, make_optimizer(src), src.max_iter, loss)
    recalibrate_batchnorm(model, recalibration_images(source.x_train, 2048))
    source_seconds = time.perf_counter() - t0
    source_acc = accuracy(model, source.x_train[:4000], source.y_train[:4000])
    before = accuracy(model, target.x_val, target.y_val)
    print(
        f"full model on the source: {source_seconds:.0f} s, accuracy {source_acc:.4f} on "
        f"source training images, {before:.4f} on target validation",
        flush=True,
    )
    recal = recalibration_images(target.x_train, p["bn_recalibrate"])

    def evaluate() -> float:
        recalibrate_batchnorm(model, recal)
        return accuracy(model, target.x_val, target.y_val)

    ft = training_settings(p["finetune"])
    t1 = time.perf_counter()
    batches = make_tf_dataset(target.x_train, target.y_train, ft.batch_size, True, p["seed"], True)
    result = fit(model, batches, make_optimizer(ft), loss, StopRule(**p["rule"]), evaluate)
    target_seconds = time.perf_counter() - t1
    pred = predict_batches(model, target.x_val).reshape(len(target.x_val), -1).argmax(axis=1)
    se = standard_errors(pred == target.y_val, groups)
    atomic_save(pkg.full_weights_path, lambda tmp: model.save_weights(str(tmp)))
    full = {
        "params": pkg.full_params,
        "val_accuracy": float(result.curve[-1][2]),
        "test_accuracy": accuracy(model, target.x_test, target.y_test),
        "val_accuracy_before_finetuning": before,
        "source_train_accuracy": source_acc,
        "source_seconds": round(source_seconds, 2),
        "target_seconds": round(target_seconds, 2),
        "target_steps": result.steps,
        "target_stop": result.stop,
        "target_curve": result.curve,
        "val_standard_error": se,
    }
    atomic_write_json(work / "full.json", full)
    print(
        f"full model fine-tuned to the target: {result.steps} steps ({result.stop}), "
        f"validation {full['val_accuracy']:.4f} (s.e. {se['clustered']:.4f} clustered), "
        f"{target_seconds:.0f} s",
        flush=True,
    )


def pretrain(work: Path, p: dict, comm) -> None:
    """All ranks: pre-train the package's tuning blocks on the target set (resumable)."""
    from cocotune.runtime.generated_package import Package
    from cocotune.runtime.pretrain import plateau_rule, pretrain_group
    from cocotune.runtime.results import ResultsLog
    from cocotune.runtime.scheduler import run_tasks

    pkg = Package(work / "pkg")
    log = ResultsLog(work / "pretrain.jsonl", comm=comm)
    done = {r["id"] for r in log.load()}
    per = p["pretrain"]["blocks_per_model"]
    groups = [pkg.blocks[i : i + per] for i in range(0, len(pkg.blocks), per)]
    todo = [g for g in groups if not all(b["id"] in done for b in g)]
    if not todo:
        return
    _, target, _ = make_regime(p["regime"], p["seed"])
    full = pkg.full_caffe_weights()
    pre = p["pretrain"]
    limit = pre["limit"]
    rule = plateau_rule(limit, pre["eval_every"], pre["patience"], pre["min_delta"])
    settings = training_settings(p["finetune"], limit)
    if comm.is_root:
        print(
            f"pre-training {sum(len(g) for g in todo)} tuning blocks in {len(todo)} groups "
            f"on the target set (limit {limit} steps per group, plateau stop)",
            flush=True,
        )

    def work_fn(group, ctx):
        return pretrain_group(
            pkg, group, full, target, settings, limit, p["seed"] + ctx.index, ctx, rule=rule
        )

    def on_result(group, records):
        for r in records or []:
            log.append(r)

    run_tasks(
        todo, work_fn, comm, on_result=on_result, progress="pre-train" if comm.is_root else None
    )


def task_order(work: Path) -> list[str]:
    """Configuration ids: the smallest subspace first, then what each larger one adds, each
    part smallest first (the order exploration needs them in, so a stopped run still
    replays exactly as far as it got)."""
    subspaces = json.loads((work / "subspaces.json").read_text())
    sizes = json.loads((work / "sizes.json").read_text())
    order: list[str] = []
    for _, ids in sorted(subspaces.items(), key=lambda kv: int(kv[0])):
        order += sorted((i for i in ids if i not in order), key=lambda i: (sizes[i], i))
    return order


def evaluate_all(work: Path, p: dict, comm, max_configs: int | None) -> None:
    """All ranks: fine-tune every (configuration, method) not yet in configs.jsonl."""
    from cocotune.runtime.assemble import load_block
    from cocotune.runtime.explore import EvalOptions, evaluate_configuration
    from cocotune.runtime.generated_package import Package
    from cocotune.runtime.results import ResultsLog
    from cocotune.runtime.scheduler import run_tasks
    from cocotune.runtime.training_loop import StopRule

    pkg = Package(work / "pkg")
    log = ResultsLog(work / "configs.jsonl", comm=comm, id_key="key")
    done = log.done_ids()
    order = task_order(work)
    if max_configs is not None:
        order = order[:max_configs]
    # the two methods interleaved, so that machine load falls on both alike
    tasks = [(m, cid) for cid in order for m in METHODS if f"{m}:{cid}" not in done]
    if not tasks:
        return
    _, target, _ = make_regime(p["regime"], p["seed"])
    full = pkg.full_caffe_weights()
    blocks = {b["id"]: load_block(pkg.block_path(b["id"]))[0] for b in pkg.blocks}
    configs = {c.id: c for c in pkg.configurations}
    settings = training_settings(p["finetune"], p["rule"]["max_steps"])
    rule = StopRule(**p["rule"])
    if comm.is_root:
        print(
            f"fine-tuning {len(tasks)} (method, configuration) pairs on {comm.size} "
            f"process(es)",
            flush=True,
        )

    def work_fn(task, ctx):
        method, cid = task
        opts = EvalOptions(
            method=METHODS[method], rule=rule, seed=p["seed"], bn_recalibrate=p["bn_recalibrate"]
        )
        record = evaluate_configuration(
            pkg, configs[cid], full, blocks, target, settings, opts, ctx
        )
        return {**record, "key": f"{method}:{cid}", "benchmark_method": method}

    def on_result(task, record):
        if record is not None:
            log.append(record)

    run_tasks(
        tasks, work_fn, comm, on_result=on_result, progress="fine-tune" if comm.is_root else None
    )


def assemble_json(work: Path, p: dict, quick: bool, ranks: int, wall: float) -> dict:
    from cocotune.runtime.generated_package import Package
    from cocotune.runtime.results import ResultsLog

    pkg = Package(work / "pkg")
    full = json.loads((work / "full.json").read_text())
    pre = ResultsLog(work / "pretrain.jsonl").load()
    group_seconds = {tuple(r["group"]): float(r["seconds"]) for r in pre}
    full["pretrain_seconds"] = sum(group_seconds.values())
    full["pretrain_groups"] = [
        {
            "blocks": list(g),
            "seconds": s,
            "steps": next(r["steps"] for r in pre if tuple(r["group"]) == g),
            "stop": next(r["stop"] for r in pre if tuple(r["group"]) == g),
        }
        for g, s in group_seconds.items()
    ]
    records = {r["key"]: r for r in ResultsLog(work / "configs.jsonl").load()}
    keep = (
        "setup_seconds",
        "curve",
        "stop",
        "test_accuracy",
        "val_accuracy",
        "val_accuracy_start",
        "val_accuracy_assembled",
        "test_accuracy_start",
        "steps",
        "seconds",
        "rank",
    )
    configs = []
    for c in pkg.configurations:
        runs = {m: records.get(f"{m}:{c.id}") for m in METHODS}
        if any(r is None for r in runs.values()):
            continue
        entry = {"id": c.id, "params": c.params, "macs": c.macs, "rates": c.rates}
        for m, r in runs.items():
            entry[m] = {k: r[k] for k in keep}
        entry["block"]["composite"] = list(c.composite)
        configs.append(entry)
    subspaces = json.loads((work / "subspaces.json").read_text())
    doc = {
        "benchmark": "composability",
        "quick": quick,
        "complete": len(configs) == len(pkg.configurations),
        "net": f"{NET.relative_to(REPO)} with filter counts x {p['width']}",
        # processes that measured (the assembling invocation may be another)
        "ranks": max([ranks] + [r[m]["rank"] + 1 for r in configs for m in METHODS]),
        "python": platform.python_version(),
        "wall_seconds": round(wall, 1),
        "settings": p,
        # from the work directory's creation to now (a resumed run spans several invocations)
        "work_seconds": round(time.time() - (work / "settings.json").stat().st_mtime, 1),
        "regime": {
            "source": f"{POOLS['source']} base digits x {p['regime']['source_variants']} "
            "perturbed variants",
            "target": "the same ten digits out of focus (Gaussian blur, sigma 0.8 px), "
            "perturbed alike: "
            f"{POOLS['train']} base digits x {p['regime']['train_variants']} for training, "
            f"{POOLS['val']} x {p['regime']['val_variants']} for validation, "
            f"{POOLS['test']} x {p['regime']['test_variants']} for test",
        },
        "full": full,
        "alphas": ALPHAS,
        "subspaces": subspaces,
        "sizes": {c.id: c.params for c in pkg.configurations},
        "configs": configs,
        "blocks": pkg.blocks,
        "paper": PAPER,
    }
    doc["table4"] = table4(doc)
    doc["medians"] = medians(doc)
    return doc


def medians(doc: dict) -> dict:
    """Median validation accuracies over the largest measured subspace, per method."""
    out = {}
    for m in METHODS:
        runs = [c[m] for c in doc["configs"]]
        if not runs:
            continue
        out[m] = {
            "assembled": float(np.median([r["val_accuracy_assembled"] for r in runs])),
            "start": float(np.median([r["val_accuracy_start"] for r in runs])),
            "final": float(np.median([r["val_accuracy"] for r in runs])),
            "best": float(np.median([max(q[2] for q in r["curve"]) for r in runs])),
            "steps": float(np.median([r["steps"] for r in runs])),
            "seconds": float(np.median([r["setup_seconds"] + r["curve"][-1][1] for r in runs])),
        }
    return out


def recompute(path: Path) -> int:
    doc = json.loads(path.read_text())
    rows = table4(doc)
    for r in rows:
        print(
            f"{r['configs']:>4} configs  alpha {r['alpha']:<6} speedup {fmt_speedup(r)}"
            f"{'  [' + r['degenerate'] + ']' if r['degenerate'] else ''}"
        )
    same = rows == doc.get("table4")
    print("table4 in the file: " + ("identical" if same else "DIFFERENT"))
    return 0 if same else 1


# ----------------------------------------------------------------------------------------------
# Plots and printout
# ----------------------------------------------------------------------------------------------

COLORS = {"default": "tab:orange", "block": "tab:blue"}
LABELS = {"default": "default", "block": "block-trained"}


def plot(doc: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    full = doc["full"]["val_accuracy"]
    paths = [out / f"composability_{n}.png" for n in ("accuracy_vs_size", "curves", "speedup")]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for m in METHODS:
        xs = [c["params"] / 1000 for c in doc["configs"]]
        ys = [c[m]["val_accuracy"] for c in doc["configs"]]
        ax.scatter(xs, ys, s=12, c=COLORS[m], label=f"{LABELS[m]}, after fine-tuning", alpha=0.7)
    ax.axhline(full, color="k", lw=1, label=f"full model ({doc['full']['params']:,})")
    for alpha, ls in ((0.005, "--"), (0.01, ":")):
        ax.axhline(full * (1 - alpha), color="gray", lw=1, ls=ls, label=f"threshold α={alpha}")
    ax.set_xlabel("pruned network size (thousand parameters)")
    ax.set_ylabel("target validation accuracy")
    ax.set_title(f"{len(doc['configs'])} configurations, each fine-tuned to a plateau")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ordered = sorted(doc["configs"], key=lambda c: (c["params"], c["id"]))
    picks = [ordered[0], ordered[len(ordered) // 2], ordered[-1]] if ordered else []
    for c, ls in zip(picks, ("-", "--", ":")):
        for m in METHODS:
            curve = c[m]["curve"]
            ax.plot(
                [q[0] for q in curve],
                [q[2] for q in curve],
                ls=ls,
                marker=".",
                c=COLORS[m],
                label=f"{c['id']} ({c['params']:,}) {LABELS[m]}",
            )
    ax.axhline(full, color="k", lw=1, label="full model")
    ax.set_xlabel("fine-tuning step")
    ax.set_ylabel("target validation accuracy")
    ax.set_title("fine-tuning curves (BatchNorm re-estimated at every point, both methods)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(paths[1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for alpha in doc["alphas"]:
        rows = [r for r in doc["table4"] if r["alpha"] == alpha and r["speedup"] is not None]
        if not rows:
            continue
        line = ax.plot(
            [r["configs"] for r in rows],
            [r["speedup"] for r in rows],
            marker="o",
            label=f"α = {alpha}",
        )[0]
        for r in rows:
            if r["lower_bound"]:
                ax.annotate(
                    "≥",
                    (r["configs"], r["speedup"]),
                    color=line.get_color(),
                    xytext=(4, 4),
                    textcoords="offset points",
                )
    ax.axhline(1, color="k", lw=1)
    ax.set_xscale("log", base=2)
    sizes = sorted(int(k) for k in doc["subspaces"])
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.minorticks_off()
    ax.set_yscale("log")
    ax.set_xlabel("configurations in the subspace")
    ax.set_ylabel("speedup (time to objective, pre-training included)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(paths[2], dpi=110)
    plt.close(fig)
    return paths


def fmt_speedup(row: dict) -> str:
    if row["speedup"] is None:
        return "unmeasured"
    return (">=" if row["lower_bound"] else "") + f"{row['speedup']:.3f}"


def print_report(doc: dict) -> None:
    f = doc["full"]
    se = f["val_standard_error"]
    print(
        f"\nfull model: {f['params']:,} parameters, target validation {f['val_accuracy']:.4f} "
        f"(s.e. {se['clustered']:.4f} clustered, {se['binomial']:.4f} binomial, "
        f"n={se['n']}); pre-training {f['pretrain_seconds']:.1f} s"
    )
    for m, v in doc["medians"].items():
        print(
            f"median {LABELS[m]:14s}: assembled {v['assembled']:.4f}, start {v['start']:.4f}, "
            f"final {v['final']:.4f} ({v['steps']:.0f} steps, {v['seconds']:.1f} s)"
        )
    print("\nTable 4 (replayed): configs, alpha, speedup")
    for r in doc["table4"]:
        print(
            f"  {r['configs']:>4} {r['alpha']:<6} {fmt_speedup(r):>10}  default "
            f"{r['seconds_default']:8.1f} s ({r['explored_default']} explored), block "
            f"{r['seconds_block']:8.1f} s ({r['explored_block']} explored)"
            f"{'  [' + r['degenerate'] + ']' if r['degenerate'] else ''}"
        )
    print(f"  paper (ResNet-50, Flowers102): {PAPER['table4_headline']}")


if __name__ == "__main__":
    sys.exit(main())
