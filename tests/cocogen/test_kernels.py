"""Every generated kernel against the numpy reference of the pruned convolution.

One library is built for the whole module (one compiler run); edge shapes are named cases, in
XNNPACK's habit: odd sizes, widths below/at/above the vector width, stride 1 and 2, 'valid' and
'same' (stride 2 'same' on even sizes pads only after), ReLU fused or not, every tiling the
autotuner may pick, and the dense and CSR baselines.
"""

import numpy as np
import pytest

from cocotune.cocogen.build import build_library, isa_tag
from cocotune.cocogen.emit_c import render_kernel, render_library
from cocotune.cocogen.kernel_spec import KernelSpec, candidate_tiles
from cocotune.cocogen.patterns import project_layer, select_library
from cocotune.cocogen.runtime import KernelLibrary, kernel_data, nhwc_to_chw

from .reference import conv3x3

# name: (cin, h, w, cout, stride, padding, relu, connectivity rate)
CASES = {
    "odd_same_s1": (5, 11, 9, 7, 1, "same", True, 2.0),
    "odd_same_s2": (5, 11, 9, 7, 2, "same", False, 2.0),
    "even_same_s2": (4, 10, 12, 6, 2, "same", True, 1.0),
    "valid_s1": (3, 7, 13, 5, 1, "valid", False, 1.5),
    "valid_s2": (3, 9, 17, 4, 2, "valid", True, 1.5),
    "width_lt_vector": (6, 5, 5, 9, 1, "same", True, 3.6),
    "width_eq_vector": (2, 8, 8, 3, 1, "same", False, 1.0),
    "width_gt_vector": (3, 6, 19, 5, 1, "same", True, 2.0),
    "tiny_2x2": (16, 2, 2, 8, 1, "same", True, 3.6),
    "one_channel": (1, 6, 6, 2, 1, "valid", False, 1.0),
    "empty_filters": (2, 9, 9, 12, 1, "same", True, 8.0),
    # NHWC entry point: 8x8 register transposes of the output (filters in blocks of 8) with
    # scalar edges, several row tiles (some split by filter among threads), stride 2 flat
    "blocks_of_8_filters": (8, 12, 17, 24, 1, "same", True, 2.0),
    "blocks_s2_flat": (9, 7, 7, 16, 2, "same", False, 2.0),
    # 16-float vectors and the single-copy row workspace of the input-stationary row order
    # (stride 2: even then odd columns; odd and even widths, both paddings)
    "wide_s1_odd": (4, 5, 37, 9, 1, "same", True, 2.0),
    "wide_s2_odd": (5, 9, 37, 6, 2, "same", True, 2.0),
    "wide_s2_even": (3, 8, 34, 5, 2, "same", False, 1.5),
    "wide_s2_valid": (3, 7, 35, 4, 2, "valid", True, 1.5),
}
KINDS = ("pattern", "dense", "csr")


def _variants():
    out = []
    for i, (name, (c, h, w, f, s, pad, relu, rate)) in enumerate(CASES.items()):
        rng = np.random.default_rng(i)
        k = rng.standard_normal((3, 3, c, f)).astype(np.float32)
        lib = select_library([k], 4 if i % 2 else 8)
        pruned = project_layer(k, lib, rate).kernel
        bias = rng.standard_normal(f).astype(np.float32)
        x = rng.standard_normal((h, w, c)).astype(np.float32)
        ref = conv3x3(x, pruned, bias, s, pad, relu)
        for kind in KINDS:
            base = KernelSpec(kind, c, h, w, f, s, pad, lib, relu, index=i, isa=isa_tag())
            for t in candidate_tiles(base, limit=0 if kind == "pattern" else 1):
                out.append((f"{name}-{kind}-{t.tag}", base.with_tile(t), pruned, bias, x, ref))
    return out


VARIANTS = _variants()


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    d = tmp_path_factory.mktemp("kernels")
    return KernelLibrary(build_library(render_library([v[1] for v in VARIANTS]), d))


@pytest.mark.parametrize("variant", VARIANTS, ids=[v[0] for v in VARIANTS])
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("layout", ["chw", "nhwc"])
def test_kernel_matches_reference(library, variant, threads, layout):
    _, spec, pruned, bias, x, ref = variant
    if layout == "chw" and threads == 3:
        pytest.skip("3 threads: the NHWC entry point's cyclic filter split only")
    k = library.kernel(spec, kernel_data(spec, pruned, bias))
    if layout == "chw":
        out = k(nhwc_to_chw(x), nthreads=threads).transpose(1, 2, 0)
    else:  # poisoned output: every element must be written
        out = k.nhwc(x, nthreads=threads, out=np.full(k.out_shape_nhwc, np.nan, np.float32))
    assert out.shape == ref.shape
    scale = np.maximum(np.abs(ref), 1.0)
    err = np.abs(out - ref) / scale
    assert (
        err.max() <= 1e-4
    ), f"{spec.name}: max rel err {err.max():.2e} at {np.unravel_index(err.argmax(), err.shape)}"


def test_library_table_lists_every_kernel(library):
    assert sorted(library.names()) == sorted(v[1].name for v in VARIANTS)


@pytest.mark.parametrize("order", ["fy", "is"])
def test_patterns_are_constants_and_groups_branch_free(order):
    _, spec, *_ = next(v for v in VARIANTS if v[1].kind == "pattern" and v[1].tile.order == order)
    src = render_kernel(spec)
    assert "Auto-generated file. Do not edit!" in src
    g = "gc" if order == "is" else "g"
    for pid, taps in enumerate(spec.library.patterns):
        # one loop per pattern group, its taps as constant offsets
        assert f"int32_t k = {g}[{pid}];" in src and f"kend = {g}[{pid + 1}];" in src
        assert f"taps {{{','.join(map(str, taps))}}}" in src
    # the hot loops read no pattern ids: the pattern is the code, not data
    assert "switch" not in src and "pattern[" not in src


def test_two_threads_never_lose_each_others_outputs(library):
    """Two filter blocks on two threads write the same NHWC cache lines (8 filters = half a
    line). GCC 12 once turned the output transpose's stores into a load before the loop and a
    store after it, which lost the other thread's half about once in 100 calls: many calls,
    every output checked."""
    _, spec, pruned, bias, x, ref = next(
        v
        for v in VARIANTS
        if v[0].startswith("blocks_s2_flat-pattern-")
        and v[1].tile.order == "is"
        and v[1].tile.fb == 2
    )
    k = library.kernel(spec, kernel_data(spec, pruned, bias))
    scale = np.maximum(np.abs(ref), 1.0)
    for i in range(1000):
        out = k.nhwc(x, nthreads=2, out=np.full(k.out_shape_nhwc, np.nan, np.float32))
        err = np.abs(out - ref) / scale
        assert err.max() <= 1e-4, f"call {i}: max rel err {err.max():.2e}"
