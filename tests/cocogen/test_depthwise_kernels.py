"""Generated depthwise 3×3 kernels against the numpy reference, and the per-group projection.

One library for the module (one compiler run). Cases: odd and even sizes, stride 1 and 2,
'same' and 'valid' padding, a channel count below / not a multiple of 16 (narrow last group),
images narrower than a pixel block, every activation; every tiling the autotuner may pick; 1 and
2 threads.
"""

import itertools

import numpy as np
import pytest

from cocotune.cocogen.depthwise import group_patterns, project_depthwise
from cocotune.cocogen.depthwise_runtime import build_depthwise, depthwise_data, spec_for
from cocotune.cocogen.emit_depthwise import DepthwiseSpec, candidate_tiles, depthwise_context

from .reference_depthwise import depthwise3x3

# name: (h, w, c, stride, padding, act)
CASES = {
    "odd_s1_tail": (7, 9, 40, 1, "same", "relu6"),
    "even_s2": (8, 10, 32, 2, "same", "relu"),
    "odd_s2_valid": (9, 9, 16, 2, "valid", "none"),
    "narrow": (5, 3, 24, 1, "same", "none"),
    "odd_s2_same": (11, 7, 48, 2, "same", "relu6"),
    "c8_valid": (4, 4, 8, 1, "valid", "relu"),
    "many_rows_few_groups": (20, 6, 64, 1, "same", "relu6"),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    rng = np.random.default_rng(3)
    items = []
    for i, (name, (h, w, c, s, pad, act)) in enumerate(CASES.items()):
        k = rng.standard_normal((3, 3, c, 1)).astype(np.float32)
        b = rng.standard_normal(c).astype(np.float32)
        p = project_depthwise(k)
        spec = spec_for(h, w, c, p.patterns, s, pad, act, index=i)
        for t in candidate_tiles(spec):
            items.append((name, spec.with_tile(t), p.kernel, b))
    lib = build_depthwise([it[1] for it in items], tmp_path_factory.mktemp("dw"))
    return lib, items


@pytest.mark.slow
def test_kernels_match_reference(built):
    lib, items = built
    rng = np.random.default_rng(4)
    for name, spec, k, b in items:
        x = rng.standard_normal((spec.h, spec.w, spec.c)).astype(np.float32)
        ref = depthwise3x3(x, k, b, spec.stride, spec.padding, spec.act)
        kern = lib.kernel(spec, depthwise_data(spec, k, b))
        for nt in (1, 2):
            got = kern(x, nt)
            assert got.shape == ref.shape, name
            np.testing.assert_allclose(
                got, ref, rtol=1e-5, atol=1e-5, err_msg=f"{name} {spec.name} {nt}t"
            )


def test_projection_is_per_group_and_optimal():
    rng = np.random.default_rng(0)
    k = rng.standard_normal((3, 3, 40, 1)).astype(np.float32)
    p = project_depthwise(k)
    assert len(p.patterns) == 3  # 16 + 16 + 8 channels
    nz = (p.kernel[..., 0] != 0).reshape(9, 40)
    for g, pat in enumerate(p.patterns):
        assert 4 in pat and len(pat) == 4
        sl = slice(16 * g, min(40, 16 * g + 16))
        assert set(np.flatnonzero(nz[:, sl].any(1))) == set(pat)
        # kept values are the original ones
        np.testing.assert_array_equal(
            p.kernel[..., sl, 0].reshape(9, -1)[list(pat)], k[..., sl, 0].reshape(9, -1)[list(pat)]
        )
        # no other centre-keeping pattern keeps more of the group's energy
        e = (k[..., sl, 0].reshape(9, -1).astype(np.float64) ** 2).sum(1)

        best = max(e[[4, *c]].sum() for c in itertools.combinations([0, 1, 2, 3, 5, 6, 7, 8], 3))
        assert e[list(pat)].sum() == pytest.approx(best)
    assert group_patterns(p.kernel) == p.patterns
    # folding a per-channel scale (BatchNorm) keeps the zeros, hence the patterns
    assert (
        group_patterns(p.kernel * rng.uniform(0.5, 2, 40).astype(np.float32)[None, None, :, None])
        == p.patterns
    )
    assert group_patterns(k) is None  # dense: 9 taps per group


def test_weights_outside_the_pattern_are_refused():
    rng = np.random.default_rng(1)
    k = rng.standard_normal((3, 3, 16, 1)).astype(np.float32)
    p = project_depthwise(k)
    spec = spec_for(6, 6, 16, p.patterns, 1, "same", "none")
    depthwise_data(spec, p.kernel, None)
    bad = p.kernel.copy()
    t = next(t for t in range(9) if t not in p.patterns[0])
    bad[t // 3, t % 3, 5, 0] = 1.0
    with pytest.raises(ValueError, match="outside its pattern"):
        depthwise_data(spec, bad, None)


def test_spec_validation_and_geometry():
    pats = ((0, 1, 3, 4),)
    with pytest.raises(ValueError, match="channel groups"):
        DepthwiseSpec(8, 8, 32, pats)
    with pytest.raises(ValueError, match="stride"):
        DepthwiseSpec(8, 8, 16, pats, stride=3)
    with pytest.raises(ValueError, match="4 distinct taps"):
        DepthwiseSpec(8, 8, 16, ((0, 1, 1, 4),))
    s = DepthwiseSpec(112, 112, 16, pats, stride=2)
    ctx = depthwise_context(s)
    assert (s.ho, s.wo, s.pad_top, s.pad_left) == (56, 56, 0, 0)
    assert (ctx["xa"], ctx["xe"]) == (0, 55)  # the last column reads padding on the right
    s1 = DepthwiseSpec(7, 7, 16, pats)
    assert (depthwise_context(s1)["xa"], depthwise_context(s1)["xe"]) == (1, 6)
