"""Unstructured-sparse (CSR) 1×1 convolutions and Dense layers: the kernels against numpy, and
through the delegate on a BatchNorm network pruned weight by weight (magnitude, as tfmot's
``prune_low_magnitude``), so nearly every 16-filter block keeps a weight and the block kind
cannot take it.

Network (12×12×8 input): a dense (unpruned) 1×1 conv that stays with the stock runtime, 1×1
conv + BatchNorm + ReLU (stride 1), a stride-2 1×1 conv with a fused ReLU, a stride-2 shortcut
1×1 conv + BatchNorm into an Add, a Dense on 4-D activations, global pooling, a hidden Dense
with ReLU and the classifier;
every pruned layer keeps 1 weight in 3.6.
"""

import json
import subprocess

import numpy as np
import pytest

from cocotune.cocogen import delegate as dg
from cocotune.cocogen.sparse_pointwise import (
    CsrKernel,
    build_csr,
    csr_spec,
    spec_data,
    with_tile,
)

from .conftest import rel_err
from .test_batchnorm import _randomise_bn
from .test_delegate import ASAN, ROOT, _compile, _count_candidates, _inputs, _interp, _run

SPARSE = ("sp1", "sp2s2", "sp_sc", "fc4d", "fc1", "logits")


def _magnitude_prune(k: np.ndarray, keep: float = 1 / 3.6) -> np.ndarray:
    t = np.quantile(np.abs(k), 1 - keep)
    return np.where(np.abs(k) > t, k, 0).astype(np.float32)


# (cin, h, w, cout, stride, relu, tiles): tails everywhere (channels not a multiple of 8,
# pixels not a multiple of the tile, filters not a multiple of 16, odd sizes at stride 2) and
# tiles (p pixels, u accumulator sets, input channels in chunks of kc; 0 = one chunk)
KERNEL_CASES = [
    (20, 7, 9, 37, 1, True, [(16, 8, 0), (32, 4, 0), (64, 2, 16)]),
    (72, 9, 11, 48, 2, False, [(32, 4, 0), (16, 3, 32), (64, 2, 48)]),
    (13, 5, 5, 16, 2, True, [(16, 1, 0)]),
    (24, 7, 10, 40, 1, False, [(32, 4, 0), (64, 3, 16)]),  # a last tile of 6 pixels
]


def test_kernels_match_numpy(tmp_path):
    rng = np.random.default_rng(0)
    specs, cases = [], []
    for i, (cin, h, w, cout, s, relu, tiles) in enumerate(KERNEL_CASES):
        base = csr_spec(cin, cout, h, w, s, relu, index=i)
        group = [with_tile(base, p, u, kc) for p, u, kc in tiles]
        k = _magnitude_prune(rng.standard_normal((1, 1, cin, cout)).astype(np.float32))
        k[:, :, :, 3] = 0  # an empty row
        specs += group
        cases.append((group, k, rng.standard_normal(cout).astype(np.float32)))
    # fully connected: 32-channel segments, some longer than 16 (keep 0.7), a padded last chunk
    fcs = [(csr_spec(50, 21, fc=True, relu=True, index=9), 1 / 3.6)]
    fcs.append((csr_spec(100, 17, fc=True, index=10), 0.7))
    specs += [s for s, _ in fcs]
    lib = build_csr(specs, tmp_path)
    for group, k, b in cases:
        s0 = group[0]
        x = rng.standard_normal((s0.h, s0.w, s0.cin)).astype(np.float32)
        want = x[:: s0.stride, :: s0.stride].reshape(-1, s0.cin) @ k.reshape(s0.cin, s0.cout) + b
        want = (np.maximum(want, 0) if s0.relu else want).reshape(s0.ho, s0.wo, s0.cout)
        for s in group:
            kern = CsrKernel(lib, s, spec_data(s, k, b))
            assert rel_err(kern(x), want) <= 1e-5, s.name
            # the delegate's chunks: (pixel range, channel block) in any order, same result
            out = np.full(kern.out_shape, np.nan, np.float32)
            for gi in range(s.n_blocks):
                for p0 in range(0, s.n_pixels, s.p):
                    kern.part(x, out, p0, min(s.n_pixels, p0 + s.p), gi)
            assert rel_err(out, want) <= 1e-5, s.name
    for fc, keep in fcs:
        k = _magnitude_prune(rng.standard_normal((fc.cin, fc.cout)).astype(np.float32), keep)
        b = rng.standard_normal(fc.cout).astype(np.float32)
        x = rng.standard_normal(fc.cin).astype(np.float32)
        want = x @ k + b
        want = np.maximum(want, 0) if fc.relu else want
        kern = CsrKernel(lib, fc, spec_data(fc, k, b))
        assert rel_err(kern(x), want) <= 1e-5
        out = np.full(fc.cout, np.nan, np.float32)
        for gi in range(fc.n_blocks):  # the delegate's items: blocks of output channels
            kern.part(x, out, 0, 1, gi)
        assert rel_err(out, want) <= 1e-5


def _model(seed=0, other_support=False):
    import keras
    from keras import layers as L

    keras.utils.set_random_seed(seed)
    inp = keras.Input((12, 12, 8))
    x = L.Conv2D(24, 1, name="stem")(inp)  # dense: stays with the stock runtime
    x = L.BatchNormalization(name="bn0")(x)
    x = L.ReLU(name="r0")(x)
    y = L.Conv2D(40, 1, name="sp1")(x)
    y = L.BatchNormalization(name="bn1")(y)
    y = L.ReLU(name="r1")(y)
    y = L.Conv2D(32, 1, strides=2, activation="relu", name="sp2s2")(y)
    z = L.Conv2D(32, 1, strides=2, name="sp_sc")(x)
    z = L.BatchNormalization(name="bn_sc")(z)
    y = L.Add(name="add")([y, z])
    y = L.Dense(20, name="fc4d")(y)  # on 4-D activations: FULLY_CONNECTED with keep_num_dims
    g = L.GlobalAveragePooling2D(name="gap")(y)
    h = L.Dense(48, activation="relu", name="fc1")(g)
    m = keras.Model(inp, L.Dense(10, name="logits")(h))
    _randomise_bn(m, seed + 1)
    rng = np.random.default_rng(seed + (7 if other_support else 0))
    for n in SPARSE:
        layer = m.get_layer(n)
        w = layer.get_weights()
        k = rng.standard_normal(w[0].shape).astype(np.float32) if other_support else w[0]
        w[0] = _magnitude_prune(k)
        w[1] = rng.normal(0, 0.1, w[1].shape).astype(np.float32)
        layer.set_weights(w)
    return m


@pytest.fixture(scope="module")
def sp_build(tmp_path_factory):
    d = tmp_path_factory.mktemp("delegate_sparse")
    _model().save(d / "src.keras")
    return _compile(d / "src.keras", d / "build")


def test_report_lists_csr_kernels(sp_build):
    rep = json.loads((sp_build / "build.json").read_text())
    rows = {r["name"]: r for r in rep["layers"]}
    for n in SPARSE:
        r = rows[n]
        assert r["qualifies"] and r["runtime"] == "cocogen", r
        assert r["kind"] == ("csr_pointwise" if n.startswith("sp") else "csr_fc")
        assert 0.25 < r["density"] < 0.3 and 3.3 < r["macs_dense"] / r["macs_pruned"] < 4
    assert rows["sp2s2"]["spec"]["stride"] == 2 and rows["sp_sc"]["spec"]["stride"] == 2
    assert [rows[n]["fused_relu"] for n in SPARSE] == [True, True, False, False, True, False]
    stem = rows["stem"]
    assert (
        not stem["qualifies"] and "too dense for the unstructured-sparse kernel" in stem["reason"]
    )
    assert sorted(rep["delegate"]["layers"]) == sorted(SPARSE)


@pytest.mark.parametrize("threads", [1, 2])
def test_matches_stock_and_claims_csr_nodes(sp_build, threads):
    path = sp_build / dg.TFLITE_FILE
    d = dg.load(sp_build, num_threads=threads)
    it, ref = _interp(path, [d], threads), _interp(path, threads=threads)
    x = _inputs(it, 1, seed=threads)
    got, want = _run(it, x), _run(ref, x)
    assert np.max(np.abs(want)) > 1e-3
    assert rel_err(got, want) <= 1e-5
    s = dg.stats(sp_build, d)
    assert s["abi_failures"] == 0 and s["claimed"] == len(SPARSE)
    assert s["refused"] == _count_candidates(path) - s["claimed"] == 1  # stem
    assert s["layers"] == {n: 1 for n in SPARSE}


def test_batch_resize(sp_build):
    """Batch 3: as the block kind, the 1x1 kernels loop over images, the Dense ones over rows."""
    path = sp_build / dg.TFLITE_FILE
    d = dg.load(sp_build)
    it, ref = _interp(path, [d]), _interp(path)
    for i in (it, ref):
        i.resize_tensor_input(i.get_input_details()[0]["index"], [3, 12, 12, 8])
        i.allocate_tensors()
    for seed in range(2):
        x = _inputs(it, 3, seed)
        got = _run(it, x)
        assert got.shape == (3, 10)
        assert rel_err(got, _run(ref, x)) <= 1e-5
    s = dg.stats(sp_build, d)
    assert s["prepares"] == 2 and s["claimed"] == len(SPARSE)
    assert s["layers"]["logits"] == 2 and s["images"] >= 2 * 3 * len(SPARSE)


def test_other_support_is_not_claimed(sp_build, tmp_path):
    """Same shapes, other non-zeros: every node stays with the stock runtime."""
    from cocotune.cocogen.bench import tflite_bytes

    p = tmp_path / "other.tflite"
    p.write_bytes(tflite_bytes(_model(other_support=True), batch=1))
    d = dg.load(sp_build)
    it, ref = _interp(p, [d]), _interp(p)
    x = _inputs(it, 1, seed=3)
    assert rel_err(_run(it, x), _run(ref, x)) <= 1e-5
    s = dg.stats(sp_build, d)
    assert s["claimed"] == 0 and all(s["layers"][n] == 0 for n in SPARSE)


@pytest.mark.slow
def test_two_threads_big_layers(tmp_path):
    """Layers above the single-thread threshold: the (pixel chunk, channel block) items on the
    delegate's pool, at 2 threads, batch 2, stride 1 and 2, a 7x7 image (one tile split into
    channel blocks)."""
    import keras
    from keras import layers as L

    keras.utils.set_random_seed(4)
    inp = keras.Input((14, 14, 96))
    x = L.Conv2D(200, 1, activation="relu", name="a")(inp)
    x = L.Conv2D(256, 1, strides=2, name="b")(x)
    x = L.Conv2D(128, 1, activation="relu", name="c")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    m = keras.Model(inp, L.Dense(10, name="logits")(x))
    rng = np.random.default_rng(5)
    for n in ("a", "b", "c", "logits"):
        w = m.get_layer(n).get_weights()
        m.get_layer(n).set_weights([_magnitude_prune(w[0]), rng.normal(0, 0.1, w[1].shape)])
    m.save(tmp_path / "src.keras")
    b = _compile(tmp_path / "src.keras", tmp_path / "build")
    path = b / dg.TFLITE_FILE
    d = dg.load(b, num_threads=2)
    it, ref = _interp(path, [d], 2), _interp(path)
    for i in (it, ref):
        i.resize_tensor_input(i.get_input_details()[0]["index"], [2, 14, 14, 96])
        i.allocate_tensors()
    for seed in range(3):
        x = _inputs(ref, 2, seed)
        assert rel_err(_run(it, x), _run(ref, x)) <= 1e-5
    assert dg.stats(b, d)["layers"] == {"a": 3, "b": 3, "c": 3, "logits": 3}


@pytest.mark.slow
@pytest.mark.skipif(ASAN, reason="already the AddressSanitizer run")
def test_asan_build():
    """This file's tests again with the kernels and the delegate built with -fsanitize=address
    (the environment of tests/cocogen/test_delegate.py's AddressSanitizer run)."""
    from .test_delegate import asan_command

    cmd, env = asan_command()
    cmd = [a for a in cmd if not a.endswith(".py")] + [__file__]  # keeps -k "not asan"
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    tail = (r.stdout + r.stderr)[-3000:]
    assert r.returncode == 0, tail
    assert "AddressSanitizer" not in r.stderr, tail


@pytest.mark.slow
def test_tuned_compile(tmp_path):
    """`compile` with tuning times the CSR candidates and keeps one; the delegate runs it."""
    import keras

    from cocotune.cocogen.pipeline import compile_model

    keras.utils.set_random_seed(8)
    inp = keras.Input((10, 10, 32))
    x = keras.layers.Conv2D(48, 1, activation="relu", name="sp")(inp)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    m = keras.Model(inp, keras.layers.Dense(10, name="fc")(x))
    for n in ("sp", "fc"):
        w = m.get_layer(n).get_weights()
        m.get_layer(n).set_weights([_magnitude_prune(w[0]), w[1] + 0.1])
    m.save(tmp_path / "src.keras")
    compile_model(tmp_path / "src.keras", tmp_path / "b", tune=True, log=lambda *a: None)
    rows = {r["name"]: r for r in json.loads((tmp_path / "b" / "build.json").read_text())["layers"]}
    times = rows["sp"]["tuning_seconds"]
    assert len(times) >= 2 and rows["sp"]["kernel"] == min(times, key=times.get)
    d = dg.load(tmp_path / "b")
    it, ref = _interp(tmp_path / "b" / dg.TFLITE_FILE, [d]), _interp(
        tmp_path / "b" / dg.TFLITE_FILE
    )
    x = _inputs(it, 1)
    assert rel_err(_run(it, x), _run(ref, x)) <= 1e-5
    assert dg.stats(tmp_path / "b", d)["layers"] == {"sp": 1, "fc": 1}
