"""Pattern-pruned depthwise 3×3 convolutions through ``cocogen compile`` and the delegate.

One small MobileNetV2-like network (64×64×8 input): a dense 3×3 conv, then depthwise layers as
MobileNetV2 writes them — DepthwiseConv2D (no bias) → BatchNorm → ReLU6, stride 1 ('same') and
stride 2 (ZeroPadding2D ((0, 1), (0, 1)) + 'valid', which the converter folds into one 'same'
node) — one with a fused ReLU and a bias, one linear, and one left dense (stock runtime); 40
channels, so the last group of 16 is 8 wide. The pruned ones are projected with
``project_depthwise`` (what ``cocogen prune --depthwise`` converges to) and the BatchNorm
statistics are far from the identity, so folding changes every filter value but not the zeros.
The same ``model.tflite`` runs in the stock interpreter with and without the delegate; counters
prove which nodes ran through our kernels.
"""

import json

import numpy as np
import pytest

from cocotune.cocogen import delegate as dg

from .test_batchnorm import _randomise_bn
from .test_delegate import _compile, _inputs, _interp, _run

pytestmark = pytest.mark.slow

PRUNED = ("dw1", "dw2s2", "dw3", "dw4")


def _model(seed=0, pattern_seed=None, acts=False):
    """The network of the module docstring; ``pattern_seed``: dw1 gets the projection of other
    random weights (same shapes, another support); ``acts``: other activations around the same
    weights (no ReLU6 after bn1, a ReLU6 after dw4)."""
    import keras
    from keras import layers as L

    from cocotune.cocogen.depthwise import project_depthwise

    keras.utils.set_random_seed(seed)
    inp = keras.Input((64, 64, 8))
    x = L.Conv2D(40, 3, padding="same", name="c3")(inp)
    x = L.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw1")(x)
    x = L.BatchNormalization(name="bn1")(x)
    if not acts:
        x = L.ReLU(6.0, name="r1")(x)
    x = L.ZeroPadding2D(((0, 1), (0, 1)), name="pad2")(x)
    x = L.DepthwiseConv2D(3, strides=2, padding="valid", use_bias=False, name="dw2s2")(x)
    x = L.BatchNormalization(name="bn2")(x)
    x = L.ReLU(6.0, name="r2")(x)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu", name="dw3")(x)
    x = L.DepthwiseConv2D(3, padding="same", name="dw_dense")(x)
    x = L.DepthwiseConv2D(3, padding="same", name="dw4")(x)
    if acts:
        x = L.ReLU(6.0, name="r4")(x)
    g = L.GlobalAveragePooling2D(name="gap")(x)
    m = keras.Model(inp, L.Dense(10, name="logits")(g))
    _randomise_bn(m, seed + 1)
    rng = np.random.default_rng(seed)
    for n in PRUNED:
        layer = m.get_layer(n)
        w = layer.get_weights()
        k = w[0]
        if n == "dw1" and pattern_seed is not None:
            k = np.random.default_rng(pattern_seed).standard_normal(k.shape).astype(np.float32)
        w[0] = project_depthwise(k).kernel
        if len(w) > 1:
            w[1] = rng.normal(0, 0.1, w[1].shape).astype(np.float32)
        layer.set_weights(w)
    return m


@pytest.fixture(scope="module")
def dw_build(tmp_path_factory):
    d = tmp_path_factory.mktemp("delegate_depthwise")
    _model().save(d / "src.keras")
    return _compile(d / "src.keras", d / "build")


def _count_depthwise(path):
    it = _interp(path)
    return sum(o["op_name"] == "DEPTHWISE_CONV_2D" for o in it._get_ops_details())


def test_report_lists_depthwise_kernels(dw_build):
    rep = json.loads((dw_build / "build.json").read_text())
    rows = {r["name"]: r for r in rep["layers"]}
    for n in PRUNED:
        assert rows[n]["qualifies"] and rows[n]["kind"] == "depthwise", rows[n]
        assert rows[n]["macs_dense"] / rows[n]["macs_pruned"] == 2.25
    # ReLU6 through a BatchNorm; the layer's own ReLU; none
    assert [rows[n]["spec"]["act"] for n in PRUNED] == ["relu6", "relu6", "relu", "none"]
    s2 = rows["dw2s2"]
    assert s2["absorbs"] == "pad2"
    assert (s2["spec"]["h"], s2["spec"]["stride"], s2["spec"]["padding"]) == (64, 2, "same")
    assert not rows["dw_dense"]["qualifies"] and "more than 4 taps" in rows["dw_dense"]["reason"]
    assert not rows["c3"]["qualifies"]
    assert sorted(rep["delegate"]["layers"]) == sorted(PRUNED)


@pytest.mark.parametrize("threads", [1, 2])
def test_matches_stock_and_claims_depthwise_nodes(dw_build, threads):
    path = dw_build / dg.TFLITE_FILE
    assert _count_depthwise(path) == 5  # the pad folded into dw2s2
    d = dg.load(dw_build, num_threads=threads)
    it, ref = _interp(path, [d], threads), _interp(path, threads=threads)
    for seed in range(2):
        x = _inputs(it, 1, seed=seed + threads)
        got, want = _run(it, x), _run(ref, x)
        assert np.max(np.abs(want)) > 1e-3
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    s = dg.stats(dw_build, d)
    assert s["abi_failures"] == 0 and s["claimed"] == len(PRUNED)
    assert s["layers"] == {n: 2 for n in PRUNED}


def test_intermediate_outputs_equal_stock(dw_build, tmp_path):
    """Each depthwise layer's own output (the layer as the model's output): within 1e-5."""
    import keras

    from cocotune.cocogen.bench import tflite_bytes

    m = keras.models.load_model(dw_build / "model.keras")
    sub = keras.Model(m.input, m.get_layer("r2").output)
    p = tmp_path / "sub.tflite"
    p.write_bytes(tflite_bytes(sub, batch=1))
    d = dg.load(dw_build)
    it, ref = _interp(p, [d]), _interp(p)
    x = _inputs(it, 1, seed=5)
    got, want = _run(it, x), _run(ref, x)
    assert got.shape == (1, 32, 32, 40) and np.max(want) > 1.0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    s = dg.stats(dw_build, d)
    assert s["claimed"] == 2 and s["layers"]["dw1"] == 1 and s["layers"]["dw2s2"] == 1


def test_batch_resize(dw_build):
    path = dw_build / dg.TFLITE_FILE
    d = dg.load(dw_build)
    it, ref = _interp(path, [d]), _interp(path)
    for i in (it, ref):
        i.resize_tensor_input(i.get_input_details()[0]["index"], [2, 64, 64, 8])
        i.allocate_tensors()
    x = _inputs(it, 2, 4)
    np.testing.assert_allclose(_run(it, x), _run(ref, x), rtol=1e-5, atol=1e-5)
    assert dg.stats(dw_build, d)["images"] == 2 * len(PRUNED)


def test_changed_filter_is_not_claimed(dw_build, tmp_path):
    """dw1 with other patterns (same shapes): it stays with the stock runtime, the rest match."""
    from cocotune.cocogen.bench import tflite_bytes

    p = tmp_path / "other.tflite"
    p.write_bytes(tflite_bytes(_model(pattern_seed=7), batch=1))
    d = dg.load(dw_build, verbose=1)
    it, ref = _interp(p, [d]), _interp(p)
    x = _inputs(it, 1, seed=3)
    np.testing.assert_allclose(_run(it, x), _run(ref, x), rtol=1e-5, atol=1e-5)
    s = dg.stats(dw_build, d)
    assert s["claimed"] == len(PRUNED) - 1 and s["layers"]["dw1"] == 0
    assert s["refused"] >= 2  # dw1 and dw_dense


def test_activation_mismatch(dw_build, tmp_path):
    """Same weights, other activations: dw1's kernel fuses ReLU6 but its node has none
    (refused); dw4's kernel fuses none, its node has ReLU6 (claimed, applied after)."""
    from cocotune.cocogen.bench import tflite_bytes

    p = tmp_path / "acts.tflite"
    p.write_bytes(tflite_bytes(_model(acts=True), batch=1))
    d = dg.load(dw_build)
    it, ref = _interp(p, [d]), _interp(p)
    x = _inputs(it, 1, seed=6)
    np.testing.assert_allclose(_run(it, x), _run(ref, x), rtol=1e-5, atol=1e-5)
    s = dg.stats(dw_build, d)
    assert s["layers"]["dw1"] == 0 and s["layers"]["dw4"] == 1
    assert s["claimed"] == len(PRUNED) - 1


def test_support_hash_matches_the_delegate(dw_build):
    import ctypes

    import keras

    from cocotune.cocogen.depthwise_compile import support_fnv1a64

    rep = json.loads((dw_build / "build.json").read_text())
    m = keras.models.load_model(dw_build / "model.keras")
    lib = ctypes.CDLL(str(dw_build / dg.DELEGATE_LIB))
    fn = lib.cocogen_support_fnv1a64
    fn.restype = ctypes.c_uint64
    fn.argtypes = [ctypes.c_void_p, ctypes.c_uint64]
    for n in PRUNED:
        k = m.get_layer(n).get_weights()[0]
        tfl = np.ascontiguousarray(k.reshape(1, 3, 3, -1))  # TFLite's [1][3][3][C]
        row = next(r for r in rep["layers"] if r["name"] == n)
        assert row["support_fnv1a64"] == f"{support_fnv1a64(k):016x}"
        assert fn(tfl.ctypes.data, tfl.size) == support_fnv1a64(k)
        # a per-channel factor (a folded BatchNorm) keeps the support
        assert support_fnv1a64(k * np.linspace(0.5, 2, k.shape[2])[:, None]) == support_fnv1a64(k)
