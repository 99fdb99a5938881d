"""Pick each kernel's tiling by timing a few candidates on this machine.

All candidates of all layers are rendered into one library (one compiler run), then timed
with :func:`time_interleaved`: rounds over every candidate in turn, keeping each one's minimum,
so that frequency changes and neighbours' load hit all candidates alike.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cocotune.cocogen.build import build_library
from cocotune.cocogen.emit_c import render_library
from cocotune.cocogen.kernel_spec import KernelSpec, candidate_tiles
from cocotune.cocogen.runtime import KernelLibrary, kernel_data

__all__ = ["time_interleaved", "TuneResult", "tune"]


def time_interleaved(fns, rounds: int = 7, min_time: float = 2e-3) -> list[float]:
    """Min-of-``rounds`` seconds per call of each zero-argument callable, interleaved.

    Each sample runs a callable ``n`` times back to back (``n`` chosen once so a sample lasts
    about ``min_time``) and divides by ``n``; samples of different callables alternate.
    """
    reps = []
    for fn in fns:
        fn()  # warm up (page faults, thread pool start)
        t = time.perf_counter()
        fn()
        dt = max(time.perf_counter() - t, 1e-7)
        reps.append(max(1, int(min_time / dt)))
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            for _ in range(reps[i]):
                fn()
            best[i] = min(best[i], (time.perf_counter() - t) / reps[i])
    return best


@dataclass
class TuneResult:
    best: KernelSpec
    times: dict[str, float]  # tile tag -> seconds per call


def tune(
    items: list[tuple[KernelSpec, np.ndarray, np.ndarray | None]],
    work_dir: str | Path,
    nthreads: int = 1,
    rounds: int = 5,
    limit: int = 6,
    native: bool = True,
    layout: str = "chw",
) -> list[TuneResult]:
    """For each ``(spec, kernel_hwio, bias)``, time up to ``limit`` tilings and keep the fastest.

    ``layout``: the entry point timed, 'chw' (the kernel) or 'nhwc' (``<kernel>_nhwc``, what the
    TFLite delegate calls: its loop order and output staging differ, so its best tile can too).
    """
    if layout not in ("chw", "nhwc"):
        raise ValueError(f"layout must be 'chw' or 'nhwc', got {layout!r}")
    cands = [[spec.with_tile(t) for t in candidate_tiles(spec, limit)] for spec, _, _ in items]
    flat = [s for group in cands for s in group]
    lib = KernelLibrary(
        build_library(render_library(flat), work_dir, "libcocogen_tune.so", native=native)
    )
    rng = np.random.default_rng(0)
    results = []
    for group, (spec, kern, bias) in zip(cands, items):
        ks = [lib.kernel(s, kernel_data(s, kern, bias)) for s in group]
        if layout == "chw":
            x = rng.standard_normal((spec.cin, spec.h, spec.w)).astype(np.float32)
            outs = [np.empty(k.out_shape, np.float32) for k in ks]
            fns = [(lambda k=k, o=o: k(x, nthreads, o)) for k, o in zip(ks, outs)]
        else:
            x = rng.standard_normal((spec.h, spec.w, spec.cin)).astype(np.float32)
            outs = [np.empty(k.out_shape_nhwc, np.float32) for k in ks]
            fns = [(lambda k=k, o=o: k.nhwc(x, nthreads, o)) for k, o in zip(ks, outs)]
        times = time_interleaved(fns, rounds=rounds)
        # the first candidate within 3% of the fastest: the candidates come in order of
        # preference (e.g. two filter blocks give a second thread work), and 3% is noise
        i = next(j for j, t in enumerate(times) if t <= 1.03 * min(times))
        results.append(TuneResult(group[i], {s.tile.tag: t for s, t in zip(group, times)}))
    return results
