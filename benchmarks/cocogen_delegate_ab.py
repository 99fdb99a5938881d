"""The CoCo-Gen delegate of this checkout vs the delegate of an earlier commit, side by side.

Usage::

    python benchmarks/cocogen_delegate_ab.py --baseline 7c0a66a [--networks vgg16_cifar,resnet50_3x3]

For each network of ``benchmarks/cocogen.py`` (same shapes, same seeded pruned weights, same
Keras model as its delegate section), the model is compiled twice, tuned at 1 thread: by this
checkout and by ``git archive <baseline>`` (each in a subprocess importing its own ``cocotune``).
Both ``libcocogen_delegate.so`` are then loaded into one process next to the stock interpreter and
timed interleaved (min of N ≥ 20 ms samples) at 1 and 2 threads on the same ``model.tflite``;
outputs are compared with the stock interpreter's. The load average is recorded: the machine is
shared, and 2-thread figures depend on it.

Writes ``cocogen_delegate_ab.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# as benchmarks/cocogen.py (the baseline delegate's kernels run OpenMP regions)
os.environ.setdefault("GOMP_SPINCOUNT", "20000")

# run in a subprocess with PYTHONPATH=<root>: that checkout's benchmark helpers and compiler
_BUILD = """
import importlib.util, sys
from pathlib import Path
import numpy as np
root, out, name = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
spec = importlib.util.spec_from_file_location("bench", f"{root}/benchmarks/cocogen.py")
b = importlib.util.module_from_spec(spec)
spec.loader.exec_module(b)
from cocotune.cocogen.pipeline import compile_model
rows = b.read_shapes(name, False)
is_chain = any(r[0] == "pool" for r in rows)
if is_chain:
    rows = b.chain_shapes(rows)
convs = [r for r in rows if r[0] == "conv"]
rng = np.random.default_rng(0)  # as benchmarks/cocogen.py: the same weights
weights = []
for _, n, cin, h, w, cout, s, pad, count in convs:
    k = (rng.standard_normal((3, 3, cin, cout)) * np.sqrt(2.0 / (9 * cin))).astype(np.float32)
    weights.append((k, (rng.standard_normal(cout) * 0.01).astype(np.float32)))
lib = b.select_library([k for k, _ in weights], b.PATTERNS)
pruned = []
for k, bias in weights:
    p = b.project_layer(k, lib, b.CONNECTIVITY).kernel
    pruned.append((p * np.float32(np.sqrt(np.sum(k**2) / np.sum(p**2))), bias))
out.mkdir(parents=True, exist_ok=True)
b.delegate_model(rows, convs, pruned, is_chain).save(out / "model.keras")
compile_model(out / "model.keras", out / "build", tune=True, log=lambda *a: None)
"""


def _checkout(rev: str, dest: Path) -> None:
    """``git archive rev`` into dest, with the package-data directories where the package
    expects them (setup.py maps them into cocotune/)."""
    data = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=data.stdout, check=True)
    for d in ("codegen_templates", "grammar", "proto"):
        if (dest / d).is_dir() and not (dest / "cocotune" / d).exists():
            (dest / "cocotune" / d).symlink_to(dest / d)


def _build(root: Path, out: Path, name: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(root))
    r = subprocess.run(
        [sys.executable, "-c", _BUILD, str(root), str(out), name],
        env=env,
        cwd=str(out.parent),
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        raise SystemExit(f"building {name} with {root} failed:\n{r.stderr[-2000:]}")


def compare(builds: dict[str, Path], rounds: int) -> dict:
    """Stock vs each build's delegate, 1 and 2 threads, interleaved in this process."""
    from cocotune.cocogen import delegate as dg
    from cocotune.cocogen.autotune import time_interleaved
    from cocotune.cocogen.bench import TFLiteRunner, loadavg

    content = (next(iter(builds.values())) / dg.TFLITE_FILE).read_bytes()
    runners, keep = {}, []
    for nt in (1, 2):
        runners[f"stock_{nt}t"] = TFLiteRunner(None, nt, content)
        for label, b in builds.items():
            d = dg.load(b, num_threads=nt)
            keep.append(d)
            runners[f"{label}_{nt}t"] = TFLiteRunner(None, nt, content, [d])
    rng = np.random.default_rng(1)
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
    errs = {}
    for key in runners:
        errs[key] = max(
            float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))
            for a, b in zip(outs[key], outs["stock_1t"])
        )
    load0 = loadavg()
    ts = time_interleaved([r.invoke for r in runners.values()], rounds=rounds, min_time=0.02)
    return {
        "seconds": dict(zip(runners, ts)),
        "max_rel_err_vs_stock": errs,
        "loadavg_before": load0,
        "loadavg_after": loadavg(),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", required=True, help="git revision of the earlier delegate")
    ap.add_argument("--networks", default="vgg16_cifar,resnet50_3x3")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = ap.parse_args(argv)
    from cocotune.cocogen.bench import write_json

    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    work = Path(tempfile.mkdtemp(prefix="cocogen_delegate_ab_"))
    res = {
        "method": next(p for p in __doc__.split("\n\n") if p.startswith("For each")).replace(
            "\n", " "
        ),
        "GOMP_SPINCOUNT": os.environ.get("GOMP_SPINCOUNT"),
        "baseline": args.baseline,
        "current": head,
        "networks": {},
    }
    try:
        base_root = work / "baseline"
        base_root.mkdir()
        _checkout(args.baseline, base_root)
        for name in args.networks.split(","):
            t0 = time.time()
            builds = {}
            for label, root in (("baseline", base_root), ("current", ROOT)):
                _build(root, work / f"{name}_{label}", name)
                builds[label] = work / f"{name}_{label}" / "build"
            r = compare(builds, args.rounds)
            s = r["seconds"]
            for nt in (1, 2):
                r[f"current_over_baseline_{nt}t"] = s[f"baseline_{nt}t"] / s[f"current_{nt}t"]
                r[f"current_speedup_vs_stock_{nt}t"] = s[f"stock_{nt}t"] / s[f"current_{nt}t"]
            res["networks"][name] = r
            print(
                f"[{name}] ({time.time() - t0:.0f} s, load {r['loadavg_before']}) "
                + ", ".join(f"{k} {v * 1e3:.3f} ms" for k, v in s.items()),
                flush=True,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    p = write_json(res, Path(args.out) / "cocogen_delegate_ab.json")
    print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
