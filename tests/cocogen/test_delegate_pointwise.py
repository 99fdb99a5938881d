"""Block-pruned 1×1 convolutions and Dense layers through the delegate.

One small BatchNorm network (12×12×8 input): a 3×3 pattern conv, 1×1 convs with BatchNorm +
ReLU (stride 1), stride 2 with a fused ReLU and a stride-2 shortcut into an Add (no ReLU), a
dense 1×1 conv that stays with the stock runtime, a Dense on 4-D activations (the converter
writes a FULLY_CONNECTED with keep_num_dims), global pooling, a hidden Dense with ReLU and the
classifier. The 1×1 / Dense kernels are projected with ``project_pointwise`` (what ``cocogen
prune --pointwise`` converges to), BatchNorm statistics far from the identity so folding changes
the filters. The same ``model.tflite`` runs in the stock interpreter with and without the
delegate; counters prove which nodes ran through our kernels.
"""

import json

import numpy as np
import pytest

from cocotune.cocogen import delegate as dg

from .conftest import rel_err
from .test_batchnorm import _randomise_bn
from .test_delegate import _compile, _count_candidates, _inputs, _interp, _run

POINTWISE = ("pw1", "pw2s2", "pw_sc", "fc4d", "fc1", "logits")


def _model(seed=0, block_seed=None):
    """The network of the module docstring; ``block_seed`` picks other kept blocks (same
    shapes, another support) by projecting randomised weights."""
    import keras
    from keras import layers as L

    from cocotune.cocogen.patterns import project_layer, select_library
    from cocotune.cocogen.pointwise import project_pointwise

    keras.utils.set_random_seed(seed)
    inp = keras.Input((12, 12, 8))
    x = L.Conv2D(16, 3, padding="same", name="c3")(inp)
    x = L.BatchNormalization(name="bn0")(x)
    x = L.ReLU(name="r0")(x)
    y = L.Conv2D(40, 1, name="pw1")(x)
    y = L.BatchNormalization(name="bn1")(y)
    y = L.ReLU(name="r1")(y)
    y = L.Conv2D(32, 1, strides=2, activation="relu", name="pw2s2")(y)
    z = L.Conv2D(32, 1, strides=2, name="pw_sc")(x)
    z = L.BatchNormalization(name="bn_sc")(z)
    y = L.Add(name="add")([y, z])
    y = L.Conv2D(24, 1, name="dense1x1")(y)
    y = L.Dense(20, name="fc4d")(y)
    g = L.GlobalAveragePooling2D(name="gap")(y)
    h = L.Dense(48, activation="relu", name="fc1")(g)
    m = keras.Model(inp, L.Dense(10, name="logits")(h))
    _randomise_bn(m, seed + 1)
    w = m.get_layer("c3").get_weights()
    lib = select_library([w[0]], 4)
    w[0] = project_layer(w[0], lib, 2.0).kernel
    m.get_layer("c3").set_weights(w)
    rng = np.random.default_rng(seed if block_seed is None else block_seed)
    for n in POINTWISE:
        layer = m.get_layer(n)
        w = layer.get_weights()
        k = w[0] if block_seed is None else rng.standard_normal(w[0].shape).astype(np.float32)
        w[0] = project_pointwise(k, 3.6).kernel
        w[1] = rng.normal(0, 0.1, w[1].shape).astype(np.float32)
        layer.set_weights(w)
    return m


@pytest.fixture(scope="module")
def pw_build(tmp_path_factory):
    d = tmp_path_factory.mktemp("delegate_pointwise")
    _model().save(d / "src.keras")
    return _compile(d / "src.keras", d / "build")


def test_report_lists_pointwise_kernels(pw_build):
    rep = json.loads((pw_build / "build.json").read_text())
    rows = {r["name"]: r for r in rep["layers"]}
    assert rows["c3"]["qualifies"] and "kind" not in rows["c3"]
    for n in POINTWISE:
        assert rows[n]["qualifies"] and rows[n]["runtime"] == "cocogen"
        assert rows[n]["kind"] == ("pointwise" if n.startswith("pw") else "fc")
        assert (pw_build / rows[n]["pwb"]).is_file()
        assert rows[n]["pwb_bytes"] < rows[n]["csr_bytes"]
        assert 2 < rows[n]["macs_dense"] / rows[n]["macs_pruned"] < 4.5  # 1 in 3.6 blocks kept
    assert rows["pw2s2"]["spec"]["stride"] == 2 and rows["pw_sc"]["spec"]["stride"] == 2
    # ReLU through a BatchNorm (pw1), a fused one (pw2s2, fc1); none into the Add (pw_sc)
    assert [rows[n]["fused_relu"] for n in ("pw1", "pw2s2", "pw_sc", "fc1", "logits")] == [
        True,
        True,
        False,
        True,
        False,
    ]
    assert not rows["dense1x1"]["qualifies"] and "not block-pruned" in rows["dense1x1"]["reason"]
    assert sorted(rep["delegate"]["layers"]) == sorted(["c3", *POINTWISE])
    assert (pw_build / "cocogen_pw_weights.bin").is_file()


@pytest.mark.parametrize("threads", [1, 2])
def test_matches_stock_and_claims_pointwise_nodes(pw_build, threads):
    path = pw_build / dg.TFLITE_FILE
    d = dg.load(pw_build, num_threads=threads)
    it, ref = _interp(path, [d], threads), _interp(path, threads=threads)
    x = _inputs(it, 1, seed=threads)
    got, want = _run(it, x), _run(ref, x)
    assert np.max(np.abs(want)) > 1e-3  # not a trivially zero output
    assert rel_err(got, want) <= 1e-4
    s = dg.stats(pw_build, d)
    assert s["abi_failures"] == 0 and s["claimed"] == 1 + len(POINTWISE)
    assert s["refused"] == _count_candidates(path) - s["claimed"] == 1  # dense1x1
    assert s["layers"] == {n: 1 for n in ("c3", *POINTWISE)}


def test_batch_resize(pw_build):
    """Batch 3: the 1x1 kernels loop over images, the fully connected ones over rows."""
    path = pw_build / dg.TFLITE_FILE
    d = dg.load(pw_build)
    it, ref = _interp(path, [d]), _interp(path)
    for i in (it, ref):
        i.resize_tensor_input(i.get_input_details()[0]["index"], [3, 12, 12, 8])
        i.allocate_tensors()
    for seed in range(2):
        x = _inputs(it, 3, seed)
        got = _run(it, x)
        assert got.shape == (3, 10)
        assert rel_err(got, _run(ref, x)) <= 1e-4
    s = dg.stats(pw_build, d)
    assert s["prepares"] == 2 and s["claimed"] == 1 + len(POINTWISE)
    assert s["layers"]["logits"] == 2 and s["images"] >= 2 * 3 * len(POINTWISE)


def test_other_blocks_are_not_claimed(pw_build, tmp_path):
    """Same shapes, other kept blocks: the pointwise nodes stay with the stock runtime."""
    from cocotune.cocogen.bench import tflite_bytes

    p = tmp_path / "other.tflite"
    p.write_bytes(tflite_bytes(_model(block_seed=7), batch=1))
    d = dg.load(pw_build, verbose=1)
    it, ref = _interp(p, [d]), _interp(p)
    x = _inputs(it, 1, seed=3)
    assert rel_err(_run(it, x), _run(ref, x)) <= 1e-4
    s = dg.stats(pw_build, d)
    assert s["claimed"] == 1 and s["layers"]["c3"] == 1  # only the unchanged 3x3 conv
    assert all(s["layers"][n] == 0 for n in POINTWISE)


def test_support_hash_matches_the_delegate(pw_build):
    import ctypes

    import keras

    from cocotune.cocogen.pointwise import matrix_of
    from cocotune.cocogen.pointwise_compile import support_fnv1a64

    rep = json.loads((pw_build / "build.json").read_text())
    m = keras.models.load_model(pw_build / "model.keras")
    lib = ctypes.CDLL(str(pw_build / dg.DELEGATE_LIB))
    fn = lib.cocogen_support_fnv1a64
    fn.restype = ctypes.c_uint64
    fn.argtypes = [ctypes.c_void_p, ctypes.c_uint64]
    for n in POINTWISE:
        mat = matrix_of(m.get_layer(n).get_weights()[0])
        tfl = np.ascontiguousarray(mat.T)  # [Cout][Cin], as TFLite stores both kinds
        row = next(r for r in rep["layers"] if r["name"] == n)
        assert row["support_fnv1a64"] == f"{support_fnv1a64(mat):016x}"
        assert fn(tfl.ctypes.data, tfl.size) == support_fnv1a64(mat)
        # a per-output-channel factor (a folded BatchNorm) keeps the support
        assert support_fnv1a64(mat * np.linspace(0.5, 2, mat.shape[1])) == support_fnv1a64(mat)


def test_corrupt_pointwise_weights_are_refused(pw_build, tmp_path):
    import shutil

    import tensorflow as tf

    for f in (dg.WEIGHTS_FILE, "cocogen_pw_weights.bin"):
        shutil.copy(pw_build / f, tmp_path / f)
    raw = bytearray((tmp_path / "cocogen_pw_weights.bin").read_bytes())
    # the first layer's first gather index (after magic, header, hash, 4 lengths): out of range
    off = 8 + 8 + 8 + 32
    raw[off : off + 4] = np.int32(1 << 30).tobytes()
    (tmp_path / "cocogen_pw_weights.bin").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="index out of range"):
        tf.lite.experimental.load_delegate(
            str(pw_build / dg.DELEGATE_LIB), {"model_dir": str(tmp_path)}
        )
    (tmp_path / "cocogen_pw_weights.bin").write_bytes(bytes(raw[:100]))
    with pytest.raises(ValueError, match="truncated"):
        tf.lite.experimental.load_delegate(
            str(pw_build / dg.DELEGATE_LIB), {"model_dir": str(tmp_path)}
        )


def _big_model():
    """Layers above the delegate's single-thread threshold (2^19 MACs): 2 threads use the
    pointwise nodes' pool (stride 1 and stride 2, a last filter group 8 wide)."""
    import keras
    from keras import layers as L

    from cocotune.cocogen.pointwise import project_pointwise

    keras.utils.set_random_seed(5)
    inp = keras.Input((28, 28, 64))
    x = L.Conv2D(136, 1, activation="relu", name="big1")(inp)
    x = L.Conv2D(96, 1, strides=2, name="big2s2")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    m = keras.Model(inp, L.Dense(10, name="logits")(x))
    rng = np.random.default_rng(6)
    for n in ("big1", "big2s2", "logits"):
        layer = m.get_layer(n)
        w = layer.get_weights()
        w[0] = project_pointwise(w[0], 3.6).kernel
        w[1] = rng.normal(0, 0.1, w[1].shape).astype(np.float32)
        layer.set_weights(w)
    return m


@pytest.mark.slow
def test_thread_pool_two_threads_and_two_interpreters(tmp_path):
    """2 threads through the pool, repeated invokes with new data, batch 2, and two
    interpreters invoking at once (one of them finds the pool busy and runs on its own
    thread): always the stock interpreter's outputs."""
    import threading

    _big_model().save(tmp_path / "src.keras")
    b = _compile(tmp_path / "src.keras", tmp_path / "build")
    path = b / dg.TFLITE_FILE
    d1, d2 = dg.load(b, num_threads=2), dg.load(b, num_threads=2)
    its = [_interp(path, [d1], 2), _interp(path, [d2], 2)]
    ref = _interp(path)
    for i in (its[0], ref):
        i.resize_tensor_input(i.get_input_details()[0]["index"], [2, 28, 28, 64])
        i.allocate_tensors()
    for seed in range(5):
        x = _inputs(ref, 2, seed)
        assert rel_err(_run(its[0], x), _run(ref, x)) <= 1e-4
    ref1 = _interp(path)
    xs = [_inputs(ref1, 1, 10 + s) for s in range(8)]
    want = [_run(ref1, x) for x in xs]
    errors = []

    def worker(it, order):
        for i in order * 5:
            if rel_err(_run(it, xs[i]), want[i]) > 1e-4:
                errors.append(i)

    ts = [threading.Thread(target=worker, args=(its[1], list(range(8))))]
    ts.append(
        threading.Thread(target=worker, args=(_interp(path, [d1], 2), list(range(7, -1, -1))))
    )
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []
    s = dg.stats(b, d2)
    assert s["claimed"] == 3 and s["layers"] == {"big1": 40, "big2s2": 40, "logits": 40}


@pytest.mark.slow
def test_compile_command_lists_pointwise_layers(tmp_path, capsys):
    """`cocotune cocogen compile` (untuned) prints the pointwise kernels and the dense 1x1."""
    from .test_commands import run

    _model().save(tmp_path / "src.keras")
    assert (
        run(
            [
                "cocogen",
                "compile",
                str(tmp_path / "src.keras"),
                "-o",
                str(tmp_path / "b"),
                "--no-tune",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    for n in POINTWISE:
        line = next(l for l in out.splitlines() if l.strip().startswith(f"{n}:"))
        assert "blocks, PWB" in line and "delegate only" in line
    assert "dense1x1: stock runtime (100% of its" in out
    assert "TFLite external delegate for 7 layer(s)" in out


@pytest.mark.slow
def test_model_without_3x3_layers(tmp_path):
    """Only pointwise layers (an empty 3x3 descriptor table): compiled and claimed."""
    import keras

    from cocotune.cocogen.pointwise import project_pointwise

    keras.utils.set_random_seed(2)
    inp = keras.Input((4, 4, 16))
    x = keras.layers.Conv2D(32, 1, activation="relu", name="pw")(inp)
    x = keras.layers.Flatten(name="flat")(x)
    m = keras.Model(inp, keras.layers.Dense(16, name="fc")(x))
    for n in ("pw", "fc"):
        w = m.get_layer(n).get_weights()
        m.get_layer(n).set_weights([project_pointwise(w[0], 3.6).kernel, w[1] + 0.1])
    m.save(tmp_path / "src.keras")
    b = _compile(tmp_path / "src.keras", tmp_path / "build")
    d = dg.load(b)
    it, ref = _interp(b / dg.TFLITE_FILE, [d]), _interp(b / dg.TFLITE_FILE)
    x = _inputs(it, 1)
    assert rel_err(_run(it, x), _run(ref, x)) <= 1e-4
    assert dg.stats(b, d)["layers"] == {"pw": 1, "fc": 1}
