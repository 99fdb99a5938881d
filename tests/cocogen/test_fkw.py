"""FKW storage: exact round trips, reorder invariants, bytes vs CSR."""

import numpy as np
import pytest

from cocotune.cocogen.errors import CocogenError
from cocotune.cocogen.fkw import csr_nbytes, decode, encode, read_fkw, write_fkw
from cocotune.cocogen.patterns import PatternLibrary, project_layer, select_library


def _pruned(seed, cin=7, cout=9, rate=2.0, k=4):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((3, 3, cin, cout)).astype(np.float32)
    lib = select_library([w], k)
    return project_layer(w, lib, rate).kernel, rng.standard_normal(cout).astype(np.float32), lib


@pytest.mark.parametrize(
    "seed,cin,cout,rate", [(0, 7, 9, 2.0), (1, 1, 1, 1.0), (2, 16, 3, 3.6), (3, 3, 20, 8.0)]
)
def test_round_trip_exact(tmp_path, seed, cin, cout, rate):
    w, b, lib = _pruned(seed, cin, cout, rate)
    layer = encode(w, b, lib)
    k2, b2 = decode(layer)
    assert np.array_equal(k2, w) and np.array_equal(b2, b)
    p = tmp_path / "l.fkw"
    write_fkw(layer, p)
    back = read_fkw(p)
    assert back.library == lib
    k3, b3 = decode(back)
    assert np.array_equal(k3, w) and np.array_equal(b3, b)


def test_arrays_and_reorder():
    w, b, lib = _pruned(4, 8, 12, 3.0)
    layer = encode(w, b, lib)
    f = 12
    assert layer.offset.shape == (f + 1,) and layer.reorder.shape == (f,)
    assert sorted(layer.reorder.tolist()) == list(range(f))
    k = layer.n_kernels
    assert (
        layer.index.shape == (k,)
        and layer.pattern.shape == (k,)
        and layer.weights.shape == (4 * k,)
    )
    counts = np.diff(layer.offset)
    assert np.all(counts[:-1] >= counts[1:])  # filters grouped by kernel count
    g = layer.groups()
    for i in range(f):  # kernels of a filter grouped by pattern, groups cover the filter
        a, z = layer.offset[i], layer.offset[i + 1]
        assert np.all(np.diff(layer.pattern[a:z].astype(int)) >= 0)
        assert g[i, 0] == a and g[i, -1] == z


def test_bytes_vs_csr():
    w, b, lib = _pruned(5, 64, 64, 3.6, k=8)
    layer = encode(w, b, lib)
    nnz = int(np.count_nonzero(w))
    assert layer.csr_nbytes == csr_nbytes(64, nnz)
    assert layer.nbytes < 0.6 * layer.csr_nbytes


def test_uncovered_kernel_is_refused():
    w = np.zeros((3, 3, 1, 1), np.float32)
    w[0, 0, 0, 0] = w[2, 2, 0, 0] = 1.0
    with pytest.raises(CocogenError, match="no pattern"):
        encode(w, None, PatternLibrary(((0, 1, 2, 4),)))


def test_not_fkw(tmp_path):
    p = tmp_path / "x.fkw"
    p.write_bytes(b"nope")
    with pytest.raises(CocogenError, match="not an FKW"):
        read_fkw(p)
