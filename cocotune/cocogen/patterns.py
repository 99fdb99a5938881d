"""Kernel patterns and connectivity pruning of 3×3 convolutions (pure numpy).

A *pattern* is the set of taps a 3×3 kernel keeps. CoCo-Gen's candidates keep 4 of the 9
entries and always the centre, so there are C(8, 3) = 56 of them. A *library* is the K patterns
a layer (or a model) may use; each kernel is projected onto the library pattern that keeps most
of its L2 norm. *Connectivity pruning* then removes whole kernels, those with the lowest L2 norm
after pattern projection.

Taps are numbered row-major, ``tap = 3 * dy + dx`` (``dy``, ``dx`` in 0..2), the order of
``kernel[dy, dx]`` in a Keras ``Conv2D`` kernel of shape ``(3, 3, Cin, Cout)`` (HWIO).

Connectivity rate: the paper's "connectivity pruning rate 3.6×" means 3.6× fewer kernels. A
layer with ``n`` kernels keeps ``max(1, round(n / rate))`` of them, i.e. removes the fraction
``1 - 1/rate``. ``rate = 1`` keeps every kernel.

Why projecting each kernel onto its best pattern and then keeping the largest projected kernels is
the exact Euclidean projection onto (pattern set ∩ connectivity set): the squared distance
decomposes over kernels; a kept kernel costs ``|k|² - |best pattern part|²``, a removed one
``|k|²``; so the kept ones must be those whose best projection has the largest norm.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

CENTRE = 4
TAPS_PER_PATTERN = 4

__all__ = [
    "CENTRE",
    "TAPS_PER_PATTERN",
    "PatternLibrary",
    "ProjectionResult",
    "candidate_patterns",
    "best_pattern",
    "select_library",
    "project_layer",
    "kept_kernel_count",
    "kernels_of",
    "hwio_of",
    "infer_library",
]


def candidate_patterns() -> np.ndarray:
    """The 56 candidate patterns as an int array ``(56, 4)`` of sorted tap numbers (centre kept)."""
    others = [t for t in range(9) if t != CENTRE]
    rows = [sorted((CENTRE, *c)) for c in itertools.combinations(others, TAPS_PER_PATTERN - 1)]
    return np.asarray(rows, dtype=np.int32)


def _masks(patterns: np.ndarray) -> np.ndarray:
    """Pattern tap lists ``(P, T)`` -> boolean masks ``(P, 9)``."""
    m = np.zeros((len(patterns), 9), dtype=bool)
    for i, taps in enumerate(patterns):
        m[i, list(taps)] = True
    return m


def kernels_of(kernel_hwio: np.ndarray) -> np.ndarray:
    """A Keras 3×3 kernel ``(3, 3, Cin, Cout)`` as ``(Cout, Cin, 9)`` (filter, channel, tap)."""
    k = np.asarray(kernel_hwio)
    if k.ndim != 4 or k.shape[:2] != (3, 3):
        raise ValueError(f"expected a (3, 3, Cin, Cout) kernel, got shape {k.shape}")
    return np.ascontiguousarray(k.reshape(9, k.shape[2], k.shape[3]).transpose(2, 1, 0))


def hwio_of(kernels: np.ndarray) -> np.ndarray:
    """Inverse of :func:`kernels_of`: ``(Cout, Cin, 9)`` -> ``(3, 3, Cin, Cout)``."""
    cout, cin, _ = kernels.shape
    return np.ascontiguousarray(kernels.transpose(2, 1, 0).reshape(3, 3, cin, cout))


def best_pattern(kernels: np.ndarray, patterns: np.ndarray) -> np.ndarray:
    """Index of the pattern keeping most squared L2 norm, for kernels ``(..., 9)``.

    Ties go to the lowest pattern index, so the result is deterministic.
    """
    energy = np.asarray(kernels, dtype=np.float64) ** 2
    kept = energy @ _masks(patterns).T.astype(np.float64)  # (..., P)
    return np.argmax(kept, axis=-1)


@dataclass(frozen=True)
class PatternLibrary:
    """K patterns, each a sorted tuple of tap numbers; pattern ids index this tuple."""

    patterns: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "patterns", tuple(tuple(int(t) for t in p) for p in self.patterns))
        if not self.patterns:
            raise ValueError("a pattern library needs at least one pattern")
        sizes = {len(p) for p in self.patterns}
        if len(sizes) != 1:
            raise ValueError(f"all patterns of a library must have the same tap count, got {sizes}")

    @property
    def array(self) -> np.ndarray:
        return np.asarray(self.patterns, dtype=np.int32)

    @property
    def taps(self) -> int:
        return len(self.patterns[0])

    def __len__(self) -> int:
        return len(self.patterns)

    @property
    def digest(self) -> str:
        """6 hex digits identifying the pattern list (part of generated kernel names)."""
        import hashlib

        return hashlib.sha1(repr(self.patterns).encode()).hexdigest()[:6]

    def to_json(self) -> list[list[int]]:
        return [list(p) for p in self.patterns]

    @classmethod
    def from_json(cls, rows) -> PatternLibrary:
        return cls(tuple(tuple(int(t) for t in r) for r in rows))

    @classmethod
    def dense(cls) -> PatternLibrary:
        """The one 9-tap pattern: what our dense baseline kernel uses."""
        return cls((tuple(range(9)),))


def select_library(kernel_list: list[np.ndarray], k: int = 8) -> PatternLibrary:
    """The ``k`` most frequent best-L2 candidate patterns over all kernels of all layers.

    Parameters:
        kernel_list: Keras kernels ``(3, 3, Cin, Cout)``.
        k: library size (1..56).

    Frequencies count, for each kernel, the candidate that keeps most of its norm; all-zero
    kernels are not counted. Ties in frequency go to the lower candidate index.
    """
    cands = candidate_patterns()
    if not 1 <= k <= len(cands):
        raise ValueError(f"library size must be in 1..{len(cands)}, got {k}")
    counts = np.zeros(len(cands), dtype=np.int64)
    for kern in kernel_list:
        ks = kernels_of(kern).reshape(-1, 9)
        ks = ks[np.any(ks != 0, axis=1)]
        if len(ks):
            counts += np.bincount(best_pattern(ks, cands), minlength=len(cands))
    order = sorted(range(len(cands)), key=lambda i: (-counts[i], i))[:k]
    return PatternLibrary(tuple(tuple(int(t) for t in cands[i]) for i in sorted(order)))


def kept_kernel_count(n_kernels: int, rate: float) -> int:
    """Kernels a layer keeps at connectivity ``rate`` (rate 3.6 = 3.6× fewer kernels)."""
    if rate < 1:
        raise ValueError(f"connectivity rate must be >= 1 (1 = keep all), got {rate}")
    return max(1, min(n_kernels, int(round(n_kernels / rate))))


@dataclass
class ProjectionResult:
    """A projected layer: weights and mask in Keras layout, and per-kernel bookkeeping."""

    kernel: np.ndarray  # (3, 3, Cin, Cout), the projection
    mask: np.ndarray  # (3, 3, Cin, Cout) bool
    pattern_ids: np.ndarray  # (Cout, Cin) int, -1 for removed kernels
    kept: np.ndarray  # (Cout, Cin) bool


def project_layer(
    kernel_hwio: np.ndarray, library: PatternLibrary, rate: float = 1.0
) -> ProjectionResult:
    """Euclidean projection of a 3×3 kernel onto (library patterns ∩ connectivity ``rate``)."""
    ks = kernels_of(kernel_hwio).astype(np.float64)  # (F, C, 9)
    f, c, _ = ks.shape
    masks = _masks(library.array)  # (P, 9)
    pid = best_pattern(ks, library.array)  # (F, C)
    kmask = masks[pid]  # (F, C, 9)
    proj = np.where(kmask, ks, 0.0)
    norms = (proj**2).sum(-1).ravel()
    n_keep = kept_kernel_count(f * c, rate)
    # stable order: larger norm first, ties by position
    order = np.lexsort((np.arange(norms.size), -norms))
    kept = np.zeros(f * c, dtype=bool)
    kept[order[:n_keep]] = True
    kept = kept.reshape(f, c)
    kmask = kmask & kept[..., None]
    proj = np.where(kmask, ks, 0.0)
    return ProjectionResult(
        kernel=hwio_of(proj).astype(np.asarray(kernel_hwio).dtype),
        mask=hwio_of(kmask),
        pattern_ids=np.where(kept, pid, -1),
        kept=kept,
    )


def infer_library(
    kernel_hwio: np.ndarray, max_patterns: int = 8
) -> tuple[PatternLibrary | None, str]:
    """The patterns a pruned kernel already follows, read from its zeros.

    Every non-zero kernel's support (set of non-zero taps) must have at most 4 taps. Supports of
    exactly 4 taps are patterns; a smaller support joins a pattern that covers it, or becomes a
    pattern padded to 4 taps (centre first, then the lowest free taps). Returns
    ``(library, "")`` or ``(None, reason)`` when the layer does not follow at most
    ``max_patterns`` 4-tap patterns.
    """
    ks = kernels_of(kernel_hwio)
    nz = (ks != 0).reshape(-1, 9)
    nz = nz[nz.any(1)]
    if not len(nz):
        return None, "every kernel is zero"
    counts = nz.sum(1)
    if counts.max() > TAPS_PER_PATTERN:
        i = int(np.argmax(counts))
        return None, (
            f"{int((counts > TAPS_PER_PATTERN).sum())} of {len(nz)} non-zero kernels have more than "
            f"{TAPS_PER_PATTERN} non-zero taps (e.g. one with {int(counts[i])}); not pattern-pruned"
        )
    supports = {tuple(int(t) for t in np.flatnonzero(r)) for r in np.unique(nz, axis=0)}
    full = sorted(s for s in supports if len(s) == TAPS_PER_PATTERN)
    pats = list(full)
    for s in sorted(supports - set(full), key=lambda s: (-len(s), s)):
        if any(set(s) <= set(p) for p in pats):
            continue
        extra = [CENTRE] + [t for t in range(9) if t != CENTRE]
        p = set(s)
        for t in extra:
            if len(p) == TAPS_PER_PATTERN:
                break
            p.add(t)
        pats.append(tuple(sorted(p)))
    if len(pats) > max_patterns:
        return (
            None,
            f"its kernels follow {len(pats)} distinct patterns, more than --max-patterns {max_patterns}",
        )
    return PatternLibrary(tuple(sorted(pats))), ""
