"""Pattern library, projection onto pattern ∩ connectivity sets."""

import itertools

import numpy as np
import pytest

from cocotune.cocogen.patterns import (
    CENTRE,
    PatternLibrary,
    best_pattern,
    candidate_patterns,
    kept_kernel_count,
    kernels_of,
    project_layer,
    select_library,
)


def test_56_candidates_keep_centre():
    c = candidate_patterns()
    assert c.shape == (56, 4)
    assert all(CENTRE in row for row in c)
    assert len({tuple(r) for r in c}) == 56


def test_best_pattern_is_norm_maximal():
    rng = np.random.default_rng(1)
    cands = candidate_patterns()
    ks = rng.standard_normal((200, 9))
    best = best_pattern(ks, cands)
    kept = np.array([[np.sum(k[list(p)] ** 2) for p in cands] for k in ks])
    assert np.allclose(kept[np.arange(200), best], kept.max(1))


@pytest.mark.parametrize("rate", [1.0, 2.0, 3.6])
def test_projection_has_four_nonzeros_with_centre(rate):
    rng = np.random.default_rng(2)
    w = rng.standard_normal((3, 3, 6, 5)).astype(np.float32)
    lib = select_library([w], 8)
    pr = project_layer(w, lib, rate)
    ks = kernels_of(pr.kernel)
    nnz = (ks != 0).sum(-1)
    kept = nnz > 0
    assert np.all(nnz[kept] == 4)
    assert np.all(ks[kept][:, CENTRE] != 0)
    assert kept.sum() == kept_kernel_count(30, rate)
    # kept values are the original values
    assert np.array_equal(pr.kernel[pr.mask], w[pr.mask])
    # each kept kernel uses the library pattern keeping most of its norm
    orig = kernels_of(w)
    for f, c in zip(*np.nonzero(kept)):
        best = max(np.sum(orig[f, c, list(p)] ** 2) for p in lib.patterns)
        assert np.isclose(np.sum(ks[f, c] ** 2), best, rtol=1e-5)


def test_projection_is_the_closest_point_on_small_case():
    """Brute force over all pattern choices and kept subsets of a 1x3 layer."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((3, 3, 3, 1))
    lib = PatternLibrary(((0, 1, 2, 4), (4, 6, 7, 8), (1, 3, 4, 5)))
    pr = project_layer(w, lib, rate=1.5)  # keep round(3/1.5) = 2 kernels
    ks = kernels_of(w)[0]
    best = np.inf
    for keep in itertools.combinations(range(3), 2):
        for pats in itertools.product(range(3), repeat=2):
            proj = np.zeros_like(ks)
            for c, p in zip(keep, pats):
                proj[c, list(lib.patterns[p])] = ks[c, list(lib.patterns[p])]
            best = min(best, np.sum((ks - proj) ** 2))
    assert np.isclose(np.sum((kernels_of(pr.kernel)[0] - ks) ** 2), best)


def test_library_takes_most_frequent():
    # every kernel's energy is on taps (0, 1, 4, 5) -> that pattern must be chosen first
    w = np.zeros((3, 3, 4, 4), np.float32)
    w[0, 0] = w[0, 1] = w[1, 1] = w[1, 2] = 1.0
    w[2, 2, 0, 0] = 0.1
    lib = select_library([w], 1)
    assert lib.patterns == ((0, 1, 4, 5),)


def test_connectivity_rate_meaning():
    assert kept_kernel_count(360, 3.6) == 100
    assert kept_kernel_count(10, 1.0) == 10
    assert kept_kernel_count(3, 100.0) == 1
    with pytest.raises(ValueError):
        kept_kernel_count(10, 0.5)
