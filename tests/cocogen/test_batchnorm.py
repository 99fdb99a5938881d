"""Conv + BatchNorm (+ Scale, ReLU) networks through the delegate.

The TFLite converter folds each BatchNorm (and a Caffe Scale, which our converter merges into
the BatchNorm) into the preceding convolution's filter and bias: the filter the interpreter
holds is not the Keras kernel, but it has the same zeros. The delegate matches layers by shape
and support and gathers its weights from the node's own filter, so every compiled layer is
claimed and the outputs equal the stock runtime's.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cocotune.cocogen import delegate as dg
from cocotune.cocogen.pipeline import compile_model

from .conftest import rel_err
from .test_delegate import _count_candidates, _inputs, _interp, _run

ROOT = Path(__file__).resolve().parents[2]


def _project_3x3(model, patterns=4, rate=2.0, seed=0):
    """Project every 3x3 Conv2D kernel of ``model`` onto ``patterns`` patterns (in place)."""

    from cocotune.cocogen.patterns import project_layer, select_library

    convs = [
        l for l in model.layers if type(l).__name__ == "Conv2D" and tuple(l.kernel_size) == (3, 3)
    ]
    lib = select_library([l.get_weights()[0] for l in convs], patterns)
    for l in convs:
        w = l.get_weights()
        w[0] = project_layer(w[0], lib, rate).kernel
        l.set_weights(w)
    return [l.name for l in convs]


def _randomise_bn(model, seed=1):
    """Moving statistics, gamma and beta far from the identity, so folding changes filters."""
    rng = np.random.default_rng(seed)
    for l in model.layers:
        if type(l).__name__ == "BatchNormalization":
            n = l.get_weights()[0].shape[0]
            vals = []
            for w in l.weights:
                nm = w.path.split("/")[-1]
                if nm == "gamma":
                    vals.append(rng.uniform(0.5, 2.0, n))
                elif nm == "beta":
                    vals.append(rng.normal(0, 0.3, n))
                elif nm == "moving_mean":
                    vals.append(rng.normal(0, 0.5, n))
                else:  # moving_variance
                    vals.append(rng.uniform(0.3, 3.0, n))
            l.set_weights([v.astype(np.float32) for v in vals])


def _bn_cnn():
    import keras

    L = keras.layers
    keras.utils.set_random_seed(4)
    inp = keras.Input((12, 12, 3))
    x = L.Conv2D(8, 3, padding="same", use_bias=False, name="c1")(inp)
    x = L.BatchNormalization(name="bn1")(x)
    x = L.ReLU()(x)
    y = L.Conv2D(8, 3, padding="same", name="c2")(x)  # conv bias + BN
    y = L.BatchNormalization(name="bn2")(y)
    y = L.ReLU()(y)
    y = L.Conv2D(8, 3, padding="same", name="c3")(y)  # BN, no ReLU, then a residual add
    y = L.BatchNormalization(name="bn3")(y)
    x = L.ReLU()(L.Add()([x, y]))
    x = L.Conv2D(16, 3, strides=2, padding="same", use_bias=False, name="c4")(x)
    x = L.BatchNormalization(name="bn4")(x)
    x = L.ReLU()(x)
    x = L.Conv2D(16, 1, name="pw")(x)  # 1x1: stays with the stock runtime
    x = L.BatchNormalization(name="bn5")(x)
    x = L.Flatten()(x)
    return keras.Model(inp, L.Dense(5, name="fc")(x))


def _check_build(build, expect_folded=True):
    """Delegate vs stock on the build's model.tflite: every compiled layer claimed, outputs equal,
    static shapes (batch 1). Returns the stats."""
    rep = json.loads((build / "build.json").read_text())
    compiled = [r["name"] for r in rep["layers"] if r["qualifies"]]
    assert compiled
    n_conv = _count_candidates(build / dg.TFLITE_FILE)
    ref = _interp(build / dg.TFLITE_FILE)
    assert list(ref.get_input_details()[0]["shape_signature"])[0] == 1  # static batch
    if expect_folded:
        # the converter folded BatchNorm: some filter in the .tflite is not the Keras kernel
        import keras

        m = keras.models.load_model(build / "model.keras", compile=False)
        kernels = [
            np.ascontiguousarray(m.get_layer(n).get_weights()[0].transpose(3, 0, 1, 2))
            for n in compiled
        ]
        filters = [
            ref.get_tensor(op["inputs"][1])
            for op in ref._get_ops_details()
            if op["op_name"] == "CONV_2D"
        ]
        same = [any(f.shape == k.shape and np.array_equal(f, k) for f in filters) for k in kernels]
        assert not all(same), "no BatchNorm was folded: the test would not test folding"
    for threads in (1, 2):
        d = dg.load(build, num_threads=threads)
        it = _interp(build / dg.TFLITE_FILE, [d], threads)
        x = _inputs(it, 1, seed=threads)
        assert rel_err(_run(it, x), _run(ref, x)) <= 1e-4
        s = dg.stats(build, d)
        assert s["abi_failures"] == 0
        assert s["claimed"] == len(compiled), s
        assert s["refused"] == n_conv - len(compiled)
        assert s["layers"] == {n: 1 for n in compiled}
    return s


def test_keras_batchnorm_network(tmp_path):
    m = _bn_cnn()
    pruned = _project_3x3(m)
    _randomise_bn(m)
    m.save(tmp_path / "m.keras")
    compile_model(tmp_path / "m.keras", tmp_path / "b", tune=False, log=lambda *a: None)
    rep = json.loads((tmp_path / "b" / "build.json").read_text())
    assert [r["name"] for r in rep["layers"] if r["qualifies"]] == pruned
    _check_build(tmp_path / "b")


def test_unpruned_batchnorm_network_is_not_claimed(tmp_path):
    """The build of the pruned network on the same network with dense filters (BN folded too):
    shapes match, supports do not, nothing is claimed and the outputs are stock's."""
    from cocotune.cocogen.bench import tflite_bytes

    m = _bn_cnn()
    _randomise_bn(m)
    dense = tmp_path / "dense.tflite"
    dense.write_bytes(tflite_bytes(m, batch=1))
    _project_3x3(m)
    m.save(tmp_path / "m.keras")
    compile_model(tmp_path / "m.keras", tmp_path / "b", tune=False, log=lambda *a: None)
    d = dg.load(tmp_path / "b")
    it, ref = _interp(dense, [d]), _interp(dense)
    x = _inputs(it, 1, seed=3)
    np.testing.assert_array_equal(_run(it, x), _run(ref, x))
    s = dg.stats(tmp_path / "b", d)
    assert s["claimed"] == 0 and s["invokes"] == 0


def test_converted_caffe_resnet(tmp_path):
    """examples/resnet_digits (Convolution -> BatchNorm -> Scale -> ReLU), converted by
    `cocotune convert`, its 3x3 convolutions projected: all compiled layers are claimed."""
    out = tmp_path / "conv"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "cocotune",
            "convert",
            str(ROOT / "examples" / "resnet_digits" / "net.prototxt"),
            "-o",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    sys.path.insert(0, str(out))
    try:
        import importlib

        mod = importlib.import_module("model")
        importlib.reload(mod)
        m = mod.build_model("full")
    finally:
        sys.path.remove(str(out))
        sys.modules.pop("model", None)
    pruned = _project_3x3(m)
    _randomise_bn(m)
    assert any("bn" in l.name for l in m.layers)
    m.save(tmp_path / "m.keras")
    compile_model(tmp_path / "m.keras", tmp_path / "b", tune=False, log=lambda *a: None)
    rep = json.loads((tmp_path / "b" / "build.json").read_text())
    assert [r["name"] for r in rep["layers"] if r["qualifies"]] == pruned
    _check_build(tmp_path / "b")


@pytest.mark.slow
def test_keras_applications_resnet50(tmp_path):
    """keras.applications.ResNet50 (random weights, 32x32 input): its 16 3x3 convolutions,
    each followed by BatchNorm, compiled and claimed inside the whole network."""
    import keras

    keras.utils.set_random_seed(0)
    m = keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=10)
    pruned = _project_3x3(m, patterns=8, rate=3.6)
    assert len(pruned) == 16
    _randomise_bn(m)
    m.save(tmp_path / "m.keras")
    compile_model(tmp_path / "m.keras", tmp_path / "b", tune=False, log=lambda *a: None)
    _check_build(tmp_path / "b")
