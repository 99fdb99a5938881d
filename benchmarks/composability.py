"""Composability-based pruning vs plain fine-tuning, at the bundled scale (the Wootz paper's
Tables 3-5 and Figure 11).

Setup: examples/resnet_digits (6 modules), a sampled subspace of --configs configurations
(rates 0.3/0.5/0.7), a full model trained on --data (default digits-hard, which does not
saturate). Every configuration is fine-tuned and tested once per method with the same seed,
steps and order: "default" (the full model's L1-pruned weights) and "block-trained" (the same,
overlaid with pre-trained tuning blocks). BatchNorm statistics are re-estimated for both
methods after assembly and after fine-tuning (--bn-recalibrate), so no speedup comes from
stale statistics; the accuracies before re-estimation are reported too.

Exploration is then replayed from the measured per-configuration times (build, trace,
fine-tune, test): for an objective "smallest model with accuracy >= full x (1 - alpha)",
configurations are taken smallest first until one meets it. The block-trained time includes
pre-training its subspace's blocks. Run it alone or as `mpirun -n 2 python
benchmarks/composability.py` (evaluations spread over the ranks; each is timed where it runs).

Writes composability.json (keys table3, table4, table5, paper, ...) and two PNG plots to --out.
Usage: python benchmarks/composability.py [--quick] [--data SPEC] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

from cocotune.runtime.results import atomic_write_json

import numpy as np

REPO = Path(__file__).resolve().parents[1]
NET = REPO / "examples" / "resnet_digits" / "net.prototxt"

# What the seed paper reports (Guan, Shen, Lim: "Wootz: A Compiler-Based Framework for Fast CNN
# Pruning via Composability", PLDI 2019). The per-row values of its Tables 3-5 were not
# available to us; these are the figures stated in its abstract and ORNL's summary.
PAPER = {
    "source": "Guan, Shen, Lim. Wootz. PLDI 2019",
    "max_speedup_resnet50": 186.7,
    "max_speedup_inception_v3": 30.2,
    "models_found": "up to 70% more compact at the same or better accuracy",
    "setting": "ImageNet-pretrained ResNet-50 / Inception-V3 on 4 fine-grained datasets; "
    "subspaces of up to 500 configurations; 10k-20k pre-training steps, up to 30k fine-tuning",
    "note": "per-row values of Tables 3-5 not available here; compare the trends, not rows",
}


def settings(base_lr: float, steps: int, batch: int = 32):
    from cocotune.runtime.solver import TrainingSettings

    return TrainingSettings(base_lr=base_lr, lr_policy="fixed", momentum=0.9, weight_decay=5e-4,
                            max_iter=steps, batch_size=batch, source="composability benchmark")  # fmt: skip


def block_key(block) -> tuple:
    return (tuple(block["modules"]), tuple(float(r) for r in block["rates"]))


def runs_collection(modules: list[str], n: int, rates, seed: int) -> list[dict]:
    """Configurations in which runs of consecutive modules share one rate (pairs here)."""
    rng = np.random.default_rng(seed)
    pairs = [modules[i : i + 2] for i in range(0, len(modules), 2)]
    seen, out = set(), []
    while len(out) < n:
        choice = tuple(float(rng.choice(rates)) for _ in pairs)
        if choice in seen:
            if len(seen) >= len(rates) ** len(pairs):
                break
            continue
        seen.add(choice)
        out.append({m: r for pair, r in zip(pairs, choice) for m in pair})
    return out


def replay(order, records: dict, threshold: float, extra_seconds: float = 0.0) -> dict:
    """Explore ``order`` (config ids, smallest first) with measured records until one meets."""
    seconds, explored = extra_seconds, 0
    for config_id in order:
        record = records[config_id]
        seconds += record["seconds"]
        explored += 1
        if record["accuracy"] >= threshold:
            return {"configs": explored, "seconds": seconds, "size": record["params"],
                    "id": config_id, "found": True}  # fmt: skip
    return {"configs": explored, "seconds": seconds, "size": None, "id": None, "found": False}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small version for the tests")
    parser.add_argument("--data", default="digits-hard", help="digits-hard, digits, .npz or DIR/")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:  # fail before the run, not after it
        import matplotlib  # noqa: F401
    except ImportError:
        from cocotune.dependencies import missing_extra

        print(missing_extra("matplotlib", "plots", "the figures of this benchmark").render(),
              file=sys.stderr)  # fmt: skip
        return 2
    quick = args.quick
    p = {
        "configs": 4 if quick else 64, "subspaces": [2, 4] if quick else [4, 16, 64],
        "train_steps": 60 if quick else 2000, "pretrain_steps": 20 if quick else 300,
        "finetune_steps": 10 if quick else 100, "eval_every": 5 if quick else 20,
        "bn_recalibrate": 128 if quick else 512, "alphas": [0.05, 0.0, -0.01] if quick else
        [-0.02, 0.0, 0.02, 0.05, 0.1], "table4_alpha": 0.05 if quick else 0.02,
        "runs_configs": 2 if quick else 16, "blocks_per_model": 6,
    }  # fmt: skip

    from cocotune.cli import import_tensorflow_quietly

    import_tensorflow_quietly()
    from cocotune.runtime.mpi import configure_threads, get_comm, run_tasks

    comm = get_comm()
    configure_threads(comm)
    root = comm.is_root
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(comm.bcast(tmp if root else None))
        if root:
            prepare(work, args, p)
        comm.barrier()
        result = measure(work, args, p, comm, run_tasks)
    if not root:
        return 0
    report = tables(result, p)
    report.update({
        "benchmark": "composability", "quick": quick, "parameters": p, "data": args.data,
        "ranks": comm.size, "python": platform.python_version(),
        "wall_seconds": round(time.perf_counter() - t_start, 1), "paper": PAPER,
        "method": "each configuration fine-tuned once per method (same seed, steps, order); "
        "exploration replayed from measured per-configuration wall times; block-trained time "
        "includes pre-training the subspace's blocks",
    })  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    plot(result, report, args.out)
    path = args.out / "composability.json"
    atomic_write_json(path, report)
    print_report(report)
    print(f"wrote {path}, {args.out / 'composability_accuracy_vs_size.png'}, "
          f"{args.out / 'composability_curves.png'}")  # fmt: skip
    return 0


def prepare(work: Path, args, p) -> None:
    """Rank 0: subspace, package, full model."""
    from cocotune.frontend.load import load_net
    from cocotune.gen.package import generate_package
    from cocotune.runtime.data import load_dataset, make_tf_dataset
    from cocotune.runtime.package import Package
    from cocotune.runtime.solver import make_optimizer
    from cocotune.runtime.training import accuracy, classification_loss, fit, recalibrate_batchnorm
    from cocotune.tuning.subspace import format_subspace, sample_subspace

    import keras

    net = load_net(NET)
    configs = sample_subspace(net, p["configs"], [0.3, 0.5, 0.7], seed=args.seed)
    (work / "subspace.txt").write_text(format_subspace(net.module_names, configs))
    generate_package(str(NET), str(work / "subspace.txt"), work / "pkg")
    pkg = Package(work / "pkg")
    data = load_dataset(args.data, pkg.input_shape, pkg.num_classes, seed=args.seed)
    keras.utils.set_random_seed(args.seed)
    model = pkg.build("full")
    t0 = time.perf_counter()
    s = settings(0.02, p["train_steps"])
    batches = make_tf_dataset(data.x_train, data.y_train, s.batch_size, True, args.seed, True)
    fit(model, batches, make_optimizer(s), s.max_iter, classification_loss(True))
    recalibrate_batchnorm(model, data.x_train[:2048])
    acc = accuracy(model, data.x_test, data.y_test)
    model.save_weights(str(pkg.full_weights_path))
    (work / "full.json").write_text(json.dumps({"accuracy": acc, "seconds":
                                                time.perf_counter() - t0}))  # fmt: skip
    print(f"full model: accuracy {acc:.4f} on {data.name} ({time.perf_counter() - t0:.0f} s)")


def measure(work: Path, args, p, comm, run_tasks) -> dict:
    """All ranks: pre-train blocks, evaluate every configuration with both methods."""
    from cocotune.runtime.data import load_dataset
    from cocotune.runtime.explore import evaluate_configuration
    from cocotune.runtime.package import Configuration, Package
    from cocotune.runtime.pretrain import pretrain_group
    from cocotune.runtime.assemble import load_block
    from cocotune.tuning.blocks import select_blocks

    pkg = Package(work / "pkg")
    data = load_dataset(args.data, pkg.input_shape, pkg.num_classes, seed=args.seed)
    full = pkg.full_caffe_weights()
    full_acc = json.loads((work / "full.json").read_text())["accuracy"]
    modules = pkg.modules
    configs = {c.id: c for c in pkg.configurations}
    rng = np.random.default_rng(args.seed + 1)
    perm = [c.id for c in pkg.configurations]
    perm = [perm[i] for i in rng.permutation(len(perm))]
    subspaces = {n: perm[:n] for n in p["subspaces"]}  # nested subsets
    runs = [{"id": f"r{i}", "rates": r} for i, r in
            enumerate(runs_collection(modules, p["runs_configs"], [0.3, 0.5, 0.7], args.seed))]  # fmt: skip
    collections = {
        "random": [(cid, configs[cid].rates) for cid in subspaces[p["subspaces"][-2]]],
        "runs of modules share one rate": [(r["id"], r["rates"]) for r in runs],
    }
    # Blocks of every (subspace or collection, mode) we will need, keyed by (modules, rates).
    choices = {}
    for n, ids in subspaces.items():
        choices[("subspace", n, "sequitur")] = select_blocks(
            modules, [configs[i].rates for i in ids]
        )
    for name, items in collections.items():
        for mode in ("sequitur", "module"):
            choices[(name, mode)] = select_blocks(modules, [r for _, r in items], mode=mode)
    all_blocks = {}
    for chosen in choices.values():
        for b in chosen.blocks:
            all_blocks.setdefault(block_key(b.to_json()), b.to_json())
    blocks = []
    for i, (key, b) in enumerate(sorted(all_blocks.items())):
        blocks.append({"id": f"k{i}", "modules": list(key[0]), "rates": list(key[1])})
    key_id = {block_key(b): b["id"] for b in blocks}
    groups = [
        blocks[i : i + p["blocks_per_model"]] for i in range(0, len(blocks), p["blocks_per_model"])
    ]
    pre = settings(0.02, p["pretrain_steps"])
    if comm.is_root:
        print(f"pre-training {len(blocks)} distinct tuning blocks in {len(groups)} groups")
    run = run_tasks(groups, lambda g, ctx: pretrain_group(pkg, g, full, data, pre,
                                                         pre.max_iter, args.seed, ctx),
                    comm, progress="pre-train" if comm.is_root else None)  # fmt: skip
    block_cost = {r["id"]: r["seconds"] / r["group_size"] for rs in run.results for r in rs}
    trained = {b["id"]: load_block(pkg.block_path(b["id"]))[0] for b in blocks}

    def composite_ids(chosen, index) -> tuple:
        by_id = {b.id: block_key(b.to_json()) for b in chosen.blocks}
        return tuple(key_id[by_id[b]] for b in chosen.composite[index])

    # Evaluation tasks: (method, config id, rates, composite) — deduplicated.
    tasks, seen = [], set()

    def add(method, cid, rates, composite):
        key = (method, cid, composite)
        if key not in seen:
            seen.add(key)
            tasks.append({"method": method, "id": cid, "rates": rates, "composite": composite})

    # Interleave the two methods so that machine load affects both alike.
    largest = p["subspaces"][-1]
    chosen = choices[("subspace", largest, "sequitur")]
    for i, cid in enumerate(subspaces[largest]):
        add("default", cid, configs[cid].rates, ())
        add("block-trained", cid, configs[cid].rates, composite_ids(chosen, i))
    for n, ids in subspaces.items():
        chosen = choices[("subspace", n, "sequitur")]
        for i, cid in enumerate(ids):
            add("block-trained", cid, configs[cid].rates, composite_ids(chosen, i))
    for name, items in collections.items():
        for mode in ("sequitur", "module"):
            chosen = choices[(name, mode)]
            for i, (cid, rates) in enumerate(items):
                add("block-trained", cid, rates, composite_ids(chosen, i))
        for cid, rates in items:
            add("default", cid, rates, ())
    ft = settings(0.01, p["finetune_steps"])

    def work_fn(task, ctx):
        from cocotune.tuning.pruning import analyze_pruning

        params, macs = pkg.analysis.cost(task["rates"])
        config = Configuration(task["id"], task["rates"], params, macs, tuple(task["composite"]))
        opts = {"method": task["method"], "threshold": None, "seed": args.seed,
                "bn_recalibrate": p["bn_recalibrate"], "eval_every": p["eval_every"],
                "keep_all": False, "deadline": None}  # fmt: skip
        record = evaluate_configuration(pkg, config, full, trained, data, ft, opts, ctx)
        return {**record, "task": task}

    if comm.is_root:
        print(f"fine-tuning and testing {len(tasks)} (configuration, method) pairs")
    run = run_tasks(tasks, work_fn, comm, progress="evaluate" if comm.is_root else None)
    evaluations = {}
    for r in run.results:
        t = r["task"]
        evaluations[(t["method"], t["id"], tuple(t["composite"]))] = r
    return {
        "full_accuracy": full_acc,
        "full_params": pkg.full_params,
        "configs": configs,
        "subspaces": subspaces,
        "collections": collections,
        "choices": choices,
        "key_id": key_id,
        "block_cost": block_cost,
        "evaluations": evaluations,
        "composite_ids": composite_ids,
        "blocks": blocks,
    }


def tables(m: dict, p: dict) -> dict:
    ev, configs = m["evaluations"], m["configs"]
    full_acc = m["full_accuracy"]

    def records(method, ids, choice=None, rates_of=None):
        out = {}
        for i, cid in enumerate(ids):
            comp = m["composite_ids"](choice, i) if choice is not None else ()
            out[cid] = ev[(method, cid, comp)]
        return out

    def explore(ids, chosen, alpha, params_of):
        order = sorted(ids, key=lambda c: (params_of[c], c))
        threshold = full_acc * (1 - alpha)
        base = replay(order, records("default", ids), threshold)
        pre = sum(m["block_cost"][m["key_id"][block_key(b.to_json())]] for b in chosen.blocks)
        comp = replay(order, records("block-trained", ids, chosen), threshold, pre)
        return base, comp, pre

    params = {cid: c.params for cid, c in configs.items()}
    largest = p["subspaces"][-1]
    ids = m["subspaces"][largest]
    chosen = m["choices"][("subspace", largest, "sequitur")]
    table3 = []
    for alpha in p["alphas"]:
        base, comp, pre = explore(ids, chosen, alpha, params)
        table3.append({
            "alpha": alpha, "threshold": round(full_acc * (1 - alpha), 4),
            "configs_base": base["configs"], "configs_comp": comp["configs"],
            "time_base_s": round(base["seconds"], 2), "time_comp_s": round(comp["seconds"], 2),
            "speedup": round(base["seconds"] / comp["seconds"], 3),
            "overhead": round(pre / comp["seconds"], 3),
            "size_base": base["size"], "size_comp": comp["size"],
            "found_base": base["found"], "found_comp": comp["found"],
        })  # fmt: skip
    table4 = []
    for n in p["subspaces"]:
        base, comp, pre = explore(m["subspaces"][n], m["choices"][("subspace", n, "sequitur")],
                                  p["table4_alpha"], params)  # fmt: skip
        table4.append({"configs": n, "alpha": p["table4_alpha"],
                       "blocks": len(m["choices"][("subspace", n, "sequitur")].blocks),
                       "time_base_s": round(base["seconds"], 2),
                       "time_comp_s": round(comp["seconds"], 2),
                       "speedup": round(base["seconds"] / comp["seconds"], 3),
                       "found_base": base["found"], "found_comp": comp["found"]})  # fmt: skip
    table5 = []
    for name, items in m["collections"].items():
        ids5 = [cid for cid, _ in items]
        rate_params = {cid: ev[("default", cid, ())]["params"] for cid in ids5}
        times = {}
        for mode in ("sequitur", "module"):
            _, comp, pre = explore(ids5, m["choices"][(name, mode)], p["table4_alpha"], rate_params)
            times[mode] = comp
        multi = sum(1 for b in m["choices"][(name, "sequitur")].blocks if len(b.modules) > 1)
        table5.append({"collection": name, "alpha": p["table4_alpha"],
                       "time_sequitur_s": round(times["sequitur"]["seconds"], 2),
                       "time_module_s": round(times["module"]["seconds"], 2),
                       "extra_speedup": round(times["module"]["seconds"] /
                                              times["sequitur"]["seconds"], 3),
                       "blocks_sequitur": len(m["choices"][(name, "sequitur")].blocks),
                       "multi_module_blocks": multi,
                       "blocks_module": len(m["choices"][(name, "module")].blocks)})  # fmt: skip
    # Accuracy summary (as evaluated and with re-estimated statistics), all configurations
    acc = {"default": {}, "block-trained": {}}
    for method in acc:
        recs = list(records(method, ids, chosen if method == "block-trained" else None).values())
        acc[method] = {
            "start_as_assembled": float(np.median([r["accuracy_assembled"] for r in recs])),
            "start_recalibrated": float(np.median([r["accuracy_start"] for r in recs])),
            "final_before_recalibration": float(np.median(
                [r["accuracy_before_recalibration"] for r in recs])),
            "final_recalibrated": float(np.median([r["accuracy"] for r in recs])),
            "seconds_per_config": float(np.median([r["seconds"] for r in recs])),
        }  # fmt: skip
    return {"table3": table3, "table4": table4, "table5": table5,
            "full_accuracy": full_acc, "full_params": m["full_params"],
            "median_accuracies": acc, "pretrain_seconds_total": round(sum(m["block_cost"].values()), 2)}  # fmt: skip


def plot(m: dict, report: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ev = m["evaluations"]
    largest = max(m["subspaces"])
    ids = m["subspaces"][largest]
    chosen = m["choices"][("subspace", largest, "sequitur")]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method, color, marker in (
        ("default", "tab:orange", "o"),
        ("block-trained", "tab:blue", "s"),
    ):
        xs, ys = [], []
        for i, cid in enumerate(ids):
            comp = m["composite_ids"](chosen, i) if method == "block-trained" else ()
            r = ev[(method, cid, comp)]
            xs.append(r["params"] / 1000)
            ys.append(r["accuracy"])
        ax.scatter(xs, ys, c=color, marker=marker, label=method, alpha=0.8)
    ax.axhline(m["full_accuracy"], color="k", ls="--", lw=1, label="full model")
    ax.set_xlabel("model size (thousand parameters)")
    ax.set_ylabel("test accuracy after fine-tuning")
    ax.set_title(f"{len(ids)} pruned networks, {report['parameters']['finetune_steps']} "
                 "fine-tuning steps each")  # fmt: skip
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "composability_accuracy_vs_size.png", dpi=110)
    plt.close(fig)
    # curves of the median-size configuration
    mid = sorted(ids, key=lambda c: m["configs"][c].params)[len(ids) // 2]
    i = ids.index(mid)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method, color in (("default", "tab:orange"), ("block-trained", "tab:blue")):
        comp = m["composite_ids"](chosen, i) if method == "block-trained" else ()
        r = ev[(method, mid, comp)]
        steps = [0] + [s for s, _ in r["curve"]]
        accs = [r["accuracy_start"]] + [a for _, a in r["curve"]]
        ax.plot(steps, accs, color=color, marker=".", label=method)
    ax.axhline(m["full_accuracy"], color="k", ls="--", lw=1, label="full model")
    ax.set_xlabel("fine-tuning step")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"configuration {mid} ({m['configs'][mid].params:,} parameters)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "composability_curves.png", dpi=110)
    plt.close(fig)


def print_report(r: dict) -> None:
    print(f"\nfull model: accuracy {r['full_accuracy']:.4f}, {r['full_params']:,} parameters; "
          f"pre-training all blocks: {r['pretrain_seconds_total']:.1f} s")  # fmt: skip
    print("\nTable 3 style (largest subspace): configurations explored and time to the objective")
    print(f"{'alpha':>6} {'thresh':>7} {'cfg base':>8} {'cfg comp':>8} {'t base s':>9} "
          f"{'t comp s':>9} {'speedup':>8} {'overhead':>8} {'size base':>10} {'size comp':>10}")  # fmt: skip
    for row in r["table3"]:
        print(f"{row['alpha']:>6} {row['threshold']:>7} {row['configs_base']:>8} "
              f"{row['configs_comp']:>8} {row['time_base_s']:>9} {row['time_comp_s']:>9} "
              f"{row['speedup']:>8} {row['overhead']:>8} {str(row['size_base']):>10} "
              f"{str(row['size_comp']):>10}")  # fmt: skip
    print(f"  paper: speedups up to {r['paper']['max_speedup_resnet50']}x (ResNet-50) and "
          f"{r['paper']['max_speedup_inception_v3']}x (Inception-V3)")  # fmt: skip
    print("\nTable 4 style: speedup by subspace size")
    for row in r["table4"]:
        print(f"  {row['configs']:>4} configurations ({row['blocks']} blocks): base "
              f"{row['time_base_s']} s, composability {row['time_comp_s']} s, speedup "
              f"{row['speedup']}")  # fmt: skip
    print("\nTable 5 style: extra speedup of Sequitur blocks over one block per module")
    for row in r["table5"]:
        print(f"  {row['collection']:32s} {row['extra_speedup']} ({row['multi_module_blocks']} "
              f"multi-module blocks)")  # fmt: skip
    print("\nmedian accuracies (all configurations of the largest subspace):")
    for method, a in r["median_accuracies"].items():
        print(f"  {method:14s} start {a['start_as_assembled']:.3f} as assembled, "
              f"{a['start_recalibrated']:.3f} re-estimated; final "
              f"{a['final_before_recalibration']:.3f} / {a['final_recalibrated']:.3f}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
