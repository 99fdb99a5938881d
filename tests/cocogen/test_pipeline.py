"""cocogen compile: qualifying layers, build report, whole model through the kernels vs Keras."""

import json

import numpy as np
import pytest

from cocotune.cocogen.errors import NoQualifyingLayerError
from cocotune.cocogen.pipeline import compile_model, load_build

from .conftest import rel_err


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory, projected_model_path):
    out = tmp_path_factory.mktemp("build")
    compile_model(projected_model_path, out, max_patterns=8, tune=True, log=lambda *a: None)
    return out


def test_report_lists_kernels_and_stock_layers(build_dir):
    rep = json.loads((build_dir / "build.json").read_text())
    names = {r["name"]: r for r in rep["layers"]}
    assert [n for n, r in names.items() if r["qualifies"]] == ["conv1", "conv2", "conv3"]
    assert set(rep["stock_layers"]) == {"pool", "relu3", "gap", "logits"}
    assert "not block-pruned" in names["logits"]["reason"]  # a dense Dense layer
    for n in ("conv1", "conv2", "conv3"):
        r = names[n]
        assert (build_dir / r["fkw"]).is_file()
        assert r["fkw_bytes"] < r["csr_bytes"]
        assert r["kernel"].startswith("cocogen_conv3x3s1")
        assert r["tuning_seconds"]
    assert (build_dir / "libcocogen_model.so").is_file()


def test_whole_model_matches_keras(build_dir, digits):
    import keras

    b = load_build(build_dir)
    x = digits[2][:5]
    ref = keras.models.load_model(build_dir / "model.keras")(x)
    for threads in (1, 2):
        assert rel_err(b.run(x, threads), ref) <= 1e-4


def test_each_kernel_matches_keras_layer(build_dir, digits):
    import keras

    b = load_build(build_dir)
    m = keras.models.load_model(build_dir / "model.keras")
    conv2 = m.get_layer("conv2")
    feat = keras.Model(m.inputs[0], conv2.input)(digits[2][:1])
    ref = np.asarray(conv2(feat))[0]
    out = b.kernels["conv2"](np.ascontiguousarray(np.asarray(feat)[0].transpose(2, 0, 1)))
    assert rel_err(out.transpose(1, 2, 0), ref) <= 1e-4


def test_dense_model_is_refused_with_reasons(tmp_path, trained_model_path):
    with pytest.raises(NoQualifyingLayerError) as e:
        compile_model(trained_model_path, tmp_path / "b", tune=False)
    text = e.value.render()
    assert "no layer" in text
    assert "conv1 (Conv2D):" in text and "more than 4 non-zero taps" in text
    assert "logits (Dense): 100% of its" in text and "not block-pruned" in text


def test_functional_model_with_residual_and_stride2(tmp_path):
    """Not a chain: kernels are still built for every qualifying conv, and match Keras."""
    import keras

    from cocotune.cocogen.patterns import project_layer, select_library

    keras.utils.set_random_seed(1)
    inp = keras.Input((9, 9, 3))
    a = keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="down")(inp)
    b = keras.layers.Conv2D(6, 3, padding="same", name="res")(a)
    out = keras.layers.Add(name="add")([a, b])
    m = keras.Model(inp, out)
    convs = [m.get_layer("down"), m.get_layer("res")]
    lib = select_library([c.get_weights()[0] for c in convs], 4)
    for c in convs:
        w = c.get_weights()
        c.set_weights([project_layer(w[0], lib, 1.5).kernel, w[1]])
    path = tmp_path / "res.keras"
    m.save(path)
    rep = compile_model(path, tmp_path / "b", tune=False)
    assert rep["chain"] is False and rep["stock_layers"] == ["add"]
    b = load_build(tmp_path / "b")
    x = np.random.default_rng(0).standard_normal((1, 9, 9, 3)).astype(np.float32)
    down = b.kernels["down"](np.ascontiguousarray(x[0].transpose(2, 0, 1)))
    ref = keras.Model(inp, a)(x)
    assert rel_err(down.transpose(1, 2, 0)[None], ref) <= 1e-4
    with pytest.raises(Exception, match="not a chain"):
        b.run(x)
