"""``cocogen prune --depthwise`` → ``compile`` → the delegate: the chain on a tiny MobileNet-like
network on digits (3×3 conv, DepthwiseConv2D → BatchNorm → ReLU6 at stride 1 and 2, 24
channels so the last group of 16 is 8 wide)."""

import json

import numpy as np
import pytest

from cocotune.cocogen import delegate as dg
from cocotune.cocogen.admm import ADMMConfig, admm_prune
from cocotune.cocogen.depthwise import group_patterns

from .test_commands import run
from .test_delegate import _inputs, _interp, _run

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


def test_prune_compile_delegate_chain(tmp_path, capsys):
    """The CLI: ``prune --depthwise`` on digits, ``compile``, then the delegate."""
    import keras

    _mobile().save(tmp_path / "dense.keras")
    pruned = tmp_path / "pruned"
    argv = ["cocogen", "prune", str(tmp_path / "dense.keras"), "--data", "digits", "--depthwise"]
    argv += ["--patterns", "4", "--admm-epochs", "2", "--retrain-epochs", "1", "-o", str(pruned)]
    assert run(argv) == 0
    assert "depthwise 3x3 layers: 2 pruned" in capsys.readouterr().out
    info = json.loads((pruned / "pruning.json").read_text())
    assert set(info["depthwise"]) == {"dw1", "dw2"}
    assert all(v["rate"] >= 2.25 for v in info["depthwise"].values())
    m = keras.models.load_model(pruned / "model.keras")
    masks = np.load(pruned / "masks.npz")
    for n in ("dw1", "dw2"):
        k = np.asarray(m.get_layer(n).kernel)
        pats = group_patterns(k)
        assert pats is not None and len(pats) == 2  # 16 + 8 channels
        assert np.all(k[~masks[n]] == 0)  # retraining kept the zeros
        assert np.count_nonzero(k) <= 4 * 24
    build = tmp_path / "build"
    assert (
        run(["cocogen", "compile", str(pruned / "model.keras"), "-o", str(build), "--no-tune"]) == 0
    )
    out = capsys.readouterr().out
    assert out.count("over groups of 16 channels, 4 of 9 taps; delegate only") == 2
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


def test_admm_report_lists_depthwise(digits):
    m = _mobile(1)
    cfg = ADMMConfig(patterns=4, connectivity=2.0, admm_epochs=1, retrain_epochs=1, depthwise=True)
    rep = admm_prune(
        m,
        (digits[0][:200], digits[1][:200], digits[2][:100], digits[3][:100]),
        cfg,
        log=lambda *a: None,
    )
    assert rep.layers == ["c3"] and set(rep.depthwise_kept) == {"dw1", "dw2"}
    assert set(rep.masks) == {"c3", "dw1", "dw2"}
    for n in ("dw1", "dw2"):
        assert rep.to_json()["depthwise"][n]["rate"] >= 2.25
    off = admm_prune(
        _mobile(1),
        (digits[0][:200], digits[1][:200], digits[2][:100], digits[3][:100]),
        ADMMConfig(patterns=4, admm_epochs=1, retrain_epochs=0),
        log=lambda *a: None,
    )
    assert off.depthwise_kept == {}
    assert group_patterns(np.asarray(_mobile(1).get_layer("dw1").kernel)) is None  # dense
