"""Generated 1×1 convolution / fully connected kernels against the numpy reference.

One library for the module (one compiler run). Cases: odd sizes, stride 1 and 2 on odd and even
inputs, pixel counts below / not a multiple of the pixel tile, Cout below the vector width and
not a multiple of the filter group (narrow last group), groups of 8, 16 and 32, one input
channel, filter groups with no kept block, ReLU fused or not, fully connected layers; every
tiling the autotuner may pick; 1 and 2 threads.
"""

import numpy as np
import pytest

from cocotune.cocogen.build import isa_tag
from cocotune.cocogen.emit_pointwise import (
    PointwiseSpec,
    PointwiseTile,
    candidate_tiles,
    render_pointwise,
    rows_per_set,
)
from cocotune.cocogen.pointwise import project_pointwise
from cocotune.cocogen.pointwise_runtime import (
    build_pointwise,
    pointwise_data,
    spec_for,
    tune_pointwise,
)
from cocotune.cocogen.pointwise_storage import encode_pointwise

from .reference_pointwise import conv1x1, dense

pytestmark = pytest.mark.slow

# name: (h, w, cin, cout, stride, relu, rate, group, fc)
CASES = {
    "odd_s1": (7, 9, 37, 48, 1, True, 3.6, 16, False),
    "odd_s2": (7, 9, 37, 44, 2, False, 3.6, 16, False),
    "even_s2": (10, 6, 24, 32, 2, True, 2.0, 16, False),
    "few_pixels": (1, 3, 40, 20, 1, False, 3.6, 16, False),
    "cout_lt_vector": (5, 5, 12, 5, 1, True, 1.5, 8, False),
    "group32_tail": (4, 7, 33, 70, 2, True, 3.6, 32, False),
    "one_channel": (6, 5, 1, 16, 1, False, 1.0, 16, False),
    "empty_groups": (3, 4, 6, 64, 1, True, 20.0, 16, False),
    "fc": (1, 1, 300, 130, 1, False, 3.6, 16, True),
    "fc_relu_g8": (1, 1, 97, 23, 1, True, 2.0, 8, True),
}


def _variants():
    out = []
    for i, (name, (h, w, c, f, s, relu, rate, group, fc)) in enumerate(CASES.items()):
        rng = np.random.default_rng(i)
        k = rng.standard_normal((c, f) if fc else (1, 1, c, f)).astype(np.float32)
        pruned = project_pointwise(k, rate, group).kernel
        bias = rng.standard_normal(f).astype(np.float32)
        layer = encode_pointwise(pruned, bias, group)
        if fc:
            x = rng.standard_normal(c).astype(np.float32)
            ref = dense(x, pruned, bias, relu)
        else:
            x = rng.standard_normal((h, w, c)).astype(np.float32)
            ref = conv1x1(x, pruned, bias, s, relu)
        base = spec_for(layer, h, w, s, relu, fc, index=i)
        tiles = candidate_tiles(base, limit=16, pixel_blocks=True)
        if base.n_pixels > 8:  # these images are smaller than the candidates' pixel blocks
            tiles.append(PointwiseTile(4, 2, 8))
        for t in tiles:
            out.append(
                (
                    f"{name}-{base.with_tile(t).tile.tag(base.n_pixels)}",
                    base.with_tile(t),
                    layer,
                    x,
                    ref,
                )
            )
    return out


VARIANTS = _variants()


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    return build_pointwise([v[1] for v in VARIANTS], tmp_path_factory.mktemp("pointwise"))


@pytest.mark.parametrize("case", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_kernel_matches_reference(library, case):
    _, spec, layer, x, ref = case
    k = library.kernel(spec, pointwise_data(spec, layer))
    one = k(x, 1)
    assert one.shape == ref.shape
    scale = max(float(np.abs(ref).max()), 1.0)
    assert float(np.abs(one - ref).max()) / scale < 1e-5
    two = k(x, 2, np.full_like(one, np.nan))
    assert np.array_equal(one, two)  # each output is computed by one thread, same order


def test_every_case_has_several_tilings():
    names = {v[0].split("-")[0] for v in VARIANTS}
    assert names == set(CASES)
    assert sum(v[0].startswith("odd_s1-") for v in VARIANTS) >= 3
    tiles = [v[1].tile for v in VARIANTS]
    # the tested tilings include pixel-blocked orders, prefetching and tail tiles
    assert any(t.pb for t in tiles) and any(t.pf for t in tiles)
    assert any(v[1].n_pixels % v[1].tile.mr for v in VARIANTS)


def test_candidates_keep_rows_apart_in_l1_and_the_delegate_order_by_default():
    assert rows_per_set(1024, 8) == 8  # 4 KiB rows: every row in the same set
    assert rows_per_set(512, 16) == 8  # 2 KiB rows: two sets
    assert rows_per_set(64, 16) == 1
    for cin in (64, 256, 512, 1024, 2048):
        spec = PointwiseSpec(cin, 256, 14, 14, isa="avx512")
        plain = candidate_tiles(spec, 16)
        assert plain and all(t.pb == 0 for t in plain)
        blocked = candidate_tiles(spec, 16, pixel_blocks=True)
        assert set(plain) <= set(blocked) and any(t.pb for t in blocked)
        for t in blocked:
            assert rows_per_set(cin, t.mr) <= 8 and t.pb % t.mr == 0
    with pytest.raises(ValueError, match="bad tile"):
        PointwiseSpec(8, 16, 4, 4, tile=PointwiseTile(4, 1, 0, 9))


def test_kernel_rejects_bad_arrays(library):
    _, spec, layer, x, _ = VARIANTS[0]
    k = library.kernel(spec, pointwise_data(spec, layer))
    with pytest.raises(ValueError, match="contiguous float32"):
        k(x.astype(np.float64))
    with pytest.raises(ValueError, match="out must be"):
        k(x, 1, np.empty(3, np.float32))
    other = encode_pointwise(np.ones((1, 1, spec.cin + 1, spec.cout), np.float32))
    with pytest.raises(ValueError, match="spec is"):
        pointwise_data(spec, other)


def test_spec_validation_and_source():
    with pytest.raises(ValueError, match="stride"):
        PointwiseSpec(8, 16, 4, 4, stride=3)
    with pytest.raises(ValueError, match="fully connected"):
        PointwiseSpec(8, 16, 4, 4, fc=True)
    src = render_pointwise(PointwiseSpec(8, 20, 5, 5, 2, relu=True, isa=isa_tag()))
    assert "cg_relu" in src and "#pragma omp parallel" in src and "Auto-generated" in src


def test_portable_build_matches_reference(tmp_path):
    """The 8-float vector path (what non-AVX-512 machines run) on a portable build."""
    specs, cases = [], []
    for name in ("odd_s2", "fc"):
        v = next(v for v in VARIANTS if v[0].startswith(name + "-"))
        _, spec, layer, x, ref = v
        s = spec_for(layer, spec.h, spec.w, spec.stride, spec.relu, spec.fc, spec.index, False)
        assert s.vw == 8
        specs.append(s)
        cases.append((layer, x, ref))
    lib = build_pointwise(specs, tmp_path, native=False)
    for s, (layer, x, ref) in zip(specs, cases):
        got = lib.kernel(s, pointwise_data(s, layer))(x, 2)
        assert float(np.abs(got - ref).max()) / max(float(np.abs(ref).max()), 1.0) < 1e-5


def test_tune_ranks_the_delegate_order_apart(tmp_path):
    """With pixel-blocked orders timed too, the result still names the fastest tiling in the
    delegate's (unblocked) order; by default only that order is timed."""
    rng = np.random.default_rng(5)
    k = project_pointwise(rng.standard_normal((1, 1, 64, 32)).astype(np.float32), 3.6).kernel
    layer = encode_pointwise(k, np.zeros(32, np.float32))
    spec = spec_for(layer, 24, 24)
    (res,) = tune_pointwise([(spec, layer)], tmp_path / "a", rounds=1, limit=12, pixel_blocks=True)
    assert set(res.times) == {
        spec.with_tile(t).name for t in candidate_tiles(spec, 12, pixel_blocks=True)
    }
    assert any(spec.with_tile(t).tile.pb for t in candidate_tiles(spec, 12, pixel_blocks=True))
    assert res.best.name in res.times and res.best_unblocked.tile.pb == 0
    (plain,) = tune_pointwise([(spec, layer)], tmp_path / "b", rounds=1, limit=4)
    assert len(plain.times) == 4 and plain.best.tile.pb == 0
