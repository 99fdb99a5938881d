"""--data parsing, the portable (no -march=native) build, and model qualification rules."""

import numpy as np
import pytest

from cocotune.cocogen.build import build_library
from cocotune.cocogen.data import load_data
from cocotune.cocogen.emit_c import render_library
from cocotune.cocogen.errors import CocogenError
from cocotune.cocogen.kernel_spec import KernelSpec, Tile, conv_geometry
from cocotune.cocogen.patterns import PatternLibrary, infer_library, project_layer, select_library
from cocotune.cocogen.runtime import KernelLibrary, kernel_data

from .reference import conv3x3


def test_digits_shape_and_range():
    xtr, ytr, xte, yte = load_data("digits")
    assert xtr.shape[1:] == (8, 8, 1) and xtr.dtype == np.float32
    assert 0.0 <= xtr.min() and xtr.max() <= 1.0
    assert len(xtr) + len(xte) == 1797 and set(np.unique(ytr)) == set(range(10))


def test_npz_data(tmp_path):
    p = tmp_path / "d.npz"
    np.savez(
        p,
        x_train=np.zeros((4, 5, 5)),
        y_train=np.arange(4),
        x_test=np.zeros((2, 5, 5)),
        y_test=[0, 1],
    )
    xtr, ytr, xte, yte = load_data(str(p))
    assert xtr.shape == (4, 5, 5, 1) and yte.tolist() == [0, 1]
    np.savez(p, x_train=np.zeros((4, 5, 5)))
    with pytest.raises(CocogenError, match="d.npz' lacks y_train, x_test, y_test"):
        load_data(str(p))
    with pytest.raises(CocogenError, match="neither 'digits'"):
        load_data(str(tmp_path / "missing.npz"))


def test_portable_build_matches_reference(tmp_path):
    rng = np.random.default_rng(7)
    k = rng.standard_normal((3, 3, 3, 5)).astype(np.float32)
    lib = select_library([k], 4)
    pruned = project_layer(k, lib, 1.5).kernel
    spec = KernelSpec(
        "pattern", 3, 9, 10, 5, 2, "same", lib, True, Tile("row", 2, 1, 1, "fy"), isa="generic"
    )
    kl = KernelLibrary(build_library(render_library([spec]), tmp_path, native=False))
    x = rng.standard_normal((9, 10, 3)).astype(np.float32)
    out = kl.kernel(spec, kernel_data(spec, pruned, None))(
        np.ascontiguousarray(x.transpose(2, 0, 1))
    )
    ref = conv3x3(x, pruned, None, 2, "same", True)
    assert np.allclose(out.transpose(1, 2, 0), ref, rtol=1e-4, atol=1e-4)


def test_portable_build_nhwc_entry_point(tmp_path):
    """The NHWC entry point's 8x8 register transposes (GCC generic vector shuffles) without
    -march=native: 16 input channels and 16 filters, a width that is not a multiple of 8."""
    rng = np.random.default_rng(8)
    k = rng.standard_normal((3, 3, 16, 16)).astype(np.float32)
    lib = select_library([k], 4)
    pruned = project_layer(k, lib, 1.5).kernel
    bias = rng.standard_normal(16).astype(np.float32)
    spec = KernelSpec(
        "pattern", 16, 9, 11, 16, 1, "same", lib, True, Tile("row", 2, 2, 1, "fy"), isa="generic"
    )
    kl = KernelLibrary(build_library(render_library([spec]), tmp_path, native=False))
    x = rng.standard_normal((9, 11, 16)).astype(np.float32)
    kern = kl.kernel(spec, kernel_data(spec, pruned, bias))
    ref = conv3x3(x, pruned, bias, 1, "same", True)
    for threads in (1, 2):
        assert np.allclose(kern.nhwc(x, threads), ref, rtol=1e-4, atol=1e-4)


def test_tf_same_padding_geometry():
    assert conv_geometry(8, 8, 2, "same") == (4, 4, 0, 0)  # stride 2, even: pad after only
    assert conv_geometry(9, 9, 2, "same") == (5, 5, 1, 1)
    assert conv_geometry(7, 5, 1, "valid") == (5, 3, 0, 0)


def test_infer_library_from_zeros():
    w = np.zeros((3, 3, 2, 2), np.float32)
    w[0, 0, 0, 0] = w[1, 1, 0, 0] = w[2, 2, 0, 0] = w[0, 1, 0, 0] = 1  # taps 0,1,4,8
    w[1, 1, 1, 1] = 2  # a 1-tap kernel joins the covering pattern
    lib, why = infer_library(w, 8)
    assert lib == PatternLibrary(((0, 1, 4, 8),)) and why == ""
    w[:, :, 1, 0] = 1  # a dense kernel
    lib, why = infer_library(w, 8)
    assert lib is None and "more than 4 non-zero taps" in why
