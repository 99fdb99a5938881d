"""``cocogen prune --depthwise`` → ``compile`` → the delegate: the chain on a tiny MobileNet-like
network on digits (3×3 conv, DepthwiseConv2D → BatchNorm → ReLU6 at stride 1 and 2, 24
channels so the last group of 16 is 8 wide)."""

import json

import numpy as np
import pytest

from cocotune.cocogen import delegate as dg
from cocotune.cocogen.admm import ADMMConfig, admm_prune
from cocotune.cocogen.depthwise import group_patterns

from .test_delegate import _compile, _inputs, _interp, _run

pytestmark = pytest.mark.slow


def _mobile(seed=0):
    import keras
    from keras import layers as L

    keras.utils.set_random_seed(seed)
    inp = keras.Input((8, 8, 1))
    x = L.Conv2D(24, 3, padding="same", name="c3")(inp)
    x = L.BatchNormalization(name="bn0")(x)
    x = L.ReLU(name="r0")(x)  # the 3x3 kernels fuse ReLU (not ReLU6)
    x = L.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw1")(x)
    x = L.BatchNormalization(name="bn1")(x)
    x = L.ReLU(6.0, name="r1")(x)
    x = L.DepthwiseConv2D(3, strides=2, padding="same", use_bias=False, name="dw2")(x)
    x = L.BatchNormalization(name="bn2")(x)
    x = L.ReLU(6.0, name="r2")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inp, L.Dense(10, name="logits")(x))


def test_prune_compile_delegate_chain(digits, tmp_path):
    xtr, ytr, xte, yte = digits
    m = _mobile()
    cfg = ADMMConfig(patterns=4, connectivity=2.0, admm_epochs=2, retrain_epochs=1, depthwise=True)
    rep = admm_prune(m, (xtr[:400], ytr[:400], xte[:200], yte[:200]), cfg, log=lambda *a: None)
    assert rep.layers == ["c3"] and set(rep.depthwise_kept) == {"dw1", "dw2"}
    for n in ("dw1", "dw2"):
        k = np.asarray(m.get_layer(n).kernel)
        pats = group_patterns(k)
        assert pats is not None and len(pats) == 2  # 16 + 8 channels
        assert np.all(k[~rep.masks[n]] == 0)  # retraining kept the zeros
        assert np.count_nonzero(k) <= 4 * 24
        assert rep.to_json()["depthwise"][n]["rate"] >= 2.25
    m.save(tmp_path / "pruned.keras")
    build = _compile(tmp_path / "pruned.keras", tmp_path / "build")
    rows = {r["name"]: r for r in json.loads((build / "build.json").read_text())["layers"]}
    assert rows["dw1"]["kind"] == rows["dw2"]["kind"] == "depthwise"
    assert rows["dw1"]["spec"]["act"] == "relu6"
    d = dg.load(build)
    path = build / dg.TFLITE_FILE
    it, ref = _interp(path, [d]), _interp(path)
    x = _inputs(it, 1, seed=1)
    np.testing.assert_allclose(_run(it, x), _run(ref, x), rtol=1e-5, atol=1e-5)
    s = dg.stats(build, d)
    assert s["layers"]["dw1"] == 1 and s["layers"]["dw2"] == 1 and s["layers"]["c3"] == 1
