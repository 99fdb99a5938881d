"""The generated kernels inside stock TensorFlow Lite through our external delegate.

Two builds: the digits CNN (conv1/conv2 fused ReLU, conv3 linear + a separate ReLU layer that
the converter fuses into the CONV_2D) and a "mixed" model (36×36 input: a row-mode kernel,
stride 2 'same', 'valid', no activation, plus a dense 3×3 conv and a 5×5 conv that stay with
the stock runtime). Counters read from the delegate library prove which nodes ran.

With ``COCOGEN_ASAN=1`` the builds are compiled with AddressSanitizer (the process must preload
libasan, see :func:`test_asan_build`, which reruns this file that way).
"""

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from cocotune.cocogen import delegate as dg
from cocotune.cocogen.pipeline import compile_model

from .conftest import rel_err

ASAN = os.environ.get("COCOGEN_ASAN") == "1"
ASAN_CFLAGS = "-fsanitize=address -fno-omit-frame-pointer"
ROOT = Path(__file__).resolve().parents[2]


def _compile(model_path, out):
    old = os.environ.get("COCOGEN_CFLAGS")
    if ASAN:
        os.environ["COCOGEN_CFLAGS"] = ASAN_CFLAGS
    try:
        compile_model(model_path, out, tune=False, log=lambda *a: None)
    finally:
        if ASAN:
            if old is None:
                del os.environ["COCOGEN_CFLAGS"]
            else:
                os.environ["COCOGEN_CFLAGS"] = old
    if ASAN:
        assert b"__asan_" in (out / dg.DELEGATE_LIB).read_bytes()
    return out


@pytest.fixture(scope="module")
def digits_build(tmp_path_factory, projected_model_path):
    return _compile(projected_model_path, tmp_path_factory.mktemp("delegate_digits"))


def _mixed_model():
    import keras

    from cocotune.cocogen.patterns import project_layer, select_library

    keras.utils.set_random_seed(3)
    m = keras.Sequential(
        [
            keras.Input((36, 36, 2)),
            keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="row_s1"),
            keras.layers.Conv2D(6, 3, strides=2, padding="same", name="s2_linear"),
            keras.layers.Conv2D(5, 3, padding="valid", activation="relu", name="valid_relu"),
            keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="dense3x3"),
            keras.layers.Conv2D(3, 5, padding="same", name="five"),
            keras.layers.GlobalAveragePooling2D(),
        ]
    )
    pruned = ("row_s1", "s2_linear", "valid_relu")
    lib = select_library([m.get_layer(n).get_weights()[0] for n in pruned], 4)
    rng = np.random.default_rng(5)
    for n in pruned:
        layer = m.get_layer(n)
        w = layer.get_weights()
        w[0] = project_layer(w[0], lib, 1.5).kernel
        w[1] = rng.standard_normal(w[1].shape).astype(np.float32) * 0.1
        layer.set_weights(w)
    return m


@pytest.fixture(scope="module")
def mixed_build(tmp_path_factory):
    d = tmp_path_factory.mktemp("delegate_mixed")
    _mixed_model().save(d / "src.keras")
    return _compile(d / "src.keras", d / "build")


def _threaded_model():
    """Layers big enough (>= 2^20 pruned MACs each) that the delegate runs them on every thread:
    odd width, row mode with 5 blocks of 8 filters, stride 2 'valid', filter counts that are not
    multiples of 8 (the NHWC output's scalar edges)."""
    import keras

    from cocotune.cocogen.patterns import project_layer, select_library

    keras.utils.set_random_seed(4)
    m = keras.Sequential(
        [
            keras.Input((33, 47, 24)),
            keras.layers.Conv2D(40, 3, padding="same", activation="relu", name="wide_s1"),
            keras.layers.Conv2D(32, 3, strides=2, padding="valid", name="s2_valid"),
            keras.layers.Conv2D(36, 3, padding="same", activation="relu", name="odd_cout"),
        ]
    )
    names = ("wide_s1", "s2_valid", "odd_cout")
    lib = select_library([m.get_layer(n).get_weights()[0] for n in names], 8)
    rng = np.random.default_rng(6)
    for n in names:
        layer = m.get_layer(n)
        w = layer.get_weights()
        w[0] = project_layer(w[0], lib, 1.5).kernel
        w[1] = rng.standard_normal(w[1].shape).astype(np.float32) * 0.1
        layer.set_weights(w)
        out = layer.output.shape
        assert np.count_nonzero(w[0]) * out[1] * out[2] >= 2**20
    return m


@pytest.fixture(scope="module")
def threaded_build(tmp_path_factory):
    d = tmp_path_factory.mktemp("delegate_threaded")
    _threaded_model().save(d / "src.keras")
    return _compile(d / "src.keras", d / "build")


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_nhwc_kernels_on_threads_match_stock(threaded_build, threads):
    """The kernels' NHWC entry points straight on TFLite's tensors, batch 2, 1-3 threads."""
    b = threaded_build
    d = dg.load(b, num_threads=threads)
    it, ref = _interp(b / dg.TFLITE_FILE, [d], threads), _interp(b / dg.TFLITE_FILE)
    for i in (it, ref):
        i.resize_tensor_input(i.get_input_details()[0]["index"], [2, 33, 47, 24])
        i.allocate_tensors()
    for seed in range(2):
        x = _inputs(it, 2, seed)
        got = _run(it, x)
        assert got.shape == (2, 16, 23, 36)
        assert rel_err(got, _run(ref, x)) <= 1e-4
    s = dg.stats(b, d)
    assert s["claimed"] == 3 and s["invokes"] == 6 and s["images"] == 12
    # time is counted per compiled layer, for every layer that ran (and only those)
    assert set(s["layer_seconds"]) == set(s["layers"])
    assert all((t > 0) == (s["layers"][n] > 0) for n, t in s["layer_seconds"].items())


def test_one_delegate_shared_by_two_interpreters_at_once(threaded_build):
    """Both interpreters hold the same delegate and its one thread pool: a call that finds the
    pool busy runs on its own thread; every output stays exact."""
    b = threaded_build
    d = dg.load(b, num_threads=2)
    its = [_interp(b / dg.TFLITE_FILE, [d], 2) for _ in range(2)]
    ref = _interp(b / dg.TFLITE_FILE)
    xs = [_inputs(ref, 1, s) for s in range(3)]
    want = [_run(ref, x) for x in xs]
    _run_concurrently(its, xs, want, rounds=4)
    assert dg.stats(b, d)["invokes"] == 2 * 4 * 3 * 3


def _interp(path, delegates=(), threads=1):
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        it = tf.lite.Interpreter(
            model_path=str(path), experimental_delegates=list(delegates), num_threads=threads
        )
    it.allocate_tensors()
    return it


def _run(it, x):
    it.set_tensor(it.get_input_details()[0]["index"], np.asarray(x, np.float32))
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"]).copy()


def _run_concurrently(its, xs, want, rounds: int) -> None:
    """Each interpreter on its own thread, all at once, ``rounds`` times over ``xs``: every
    output must match ``want`` (a failure on a thread is re-raised here)."""
    errors = []

    def work(it):
        try:
            for _ in range(rounds):
                for x, w in zip(xs, want):
                    assert rel_err(_run(it, x), w) <= 1e-4
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(it,)) for it in its]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def _count_candidates(tflite_path):
    """CONV_2D and FULLY_CONNECTED ops (the nodes the delegate considers) in a .tflite file."""
    it = _interp(tflite_path)
    return sum(o["op_name"] in ("CONV_2D", "FULLY_CONNECTED") for o in it._get_ops_details())


def _inputs(it, n, seed=0):
    shape = list(it.get_input_details()[0]["shape"])
    shape[0] = n
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("build", ["digits_build", "mixed_build"])
@pytest.mark.parametrize("threads", [1, 2])
def test_matches_stock_and_claims_compiled_convs(build, threads, request):
    b = request.getfixturevalue(build)
    import json

    rep = json.loads((b / "build.json").read_text())
    compiled = [r["name"] for r in rep["layers"] if r["qualifies"]]
    n_conv = _count_candidates(b / dg.TFLITE_FILE)
    d = dg.load(b, num_threads=threads)
    it = _interp(b / dg.TFLITE_FILE, [d], threads)
    ref = _interp(b / dg.TFLITE_FILE, threads=threads)
    x = _inputs(it, 1)
    assert rel_err(_run(it, x), _run(ref, x)) <= 1e-4
    s = dg.stats(b, d)
    assert s["abi_failures"] == 0 and s["prepares"] == 1
    assert s["claimed"] == len(compiled)  # every compiled layer is a CONV_2D we claimed
    assert s["refused"] == n_conv - len(compiled)
    assert s["invokes"] == len(compiled) and s["images"] == len(compiled)
    assert s["layers"] == {n: 1 for n in compiled}


def test_mixed_build_leaves_unsupported_convs_to_stock(mixed_build):
    import json

    rep = json.loads((mixed_build / "build.json").read_text())
    stock = {r["name"] for r in rep["layers"] if not r["qualifies"]}
    assert {"dense3x3", "five"} <= stock
    kernels = {r["name"]: r["spec"]["tile"]["mode"] for r in rep["layers"] if r["qualifies"]}
    assert kernels["row_s1"] == "row"  # both workspace layouts go through the delegate


def test_model_without_matching_nodes_runs_unchanged(digits_build, trained_model_path, tmp_path):
    """The delegate of the pruned build on the unpruned model: same shapes, other filters."""
    import keras

    from cocotune.cocogen.bench import tflite_bytes

    p = tmp_path / "dense.tflite"
    p.write_bytes(tflite_bytes(keras.models.load_model(trained_model_path)))
    d = dg.load(digits_build, verbose=1)
    it, ref = _interp(p, [d]), _interp(p)
    x = _inputs(it, 1, seed=4)
    np.testing.assert_array_equal(_run(it, x), _run(ref, x))
    s = dg.stats(digits_build, d)
    assert s["claimed"] == 0 and s["refused"] == 4 and s["invokes"] == 0  # 3 convs, the Dense


def test_batch_resize_and_repeated_invoke(digits_build):
    d = dg.load(digits_build)
    it, ref = _interp(digits_build / dg.TFLITE_FILE, [d]), _interp(digits_build / dg.TFLITE_FILE)
    for i in (it, ref):
        i.resize_tensor_input(i.get_input_details()[0]["index"], [5, 8, 8, 1])
        i.allocate_tensors()
    for seed in range(4):  # repeated invoke, new data every time
        x = _inputs(it, 5, seed)
        got = _run(it, x)
        assert got.shape == (5, 10)
        assert rel_err(got, _run(ref, x)) <= 1e-4
    s = dg.stats(digits_build, d)
    assert s["prepares"] == 2  # re-applied after the resize
    assert s["claimed"] == 3 and s["abi_failures"] == 0
    assert s["invokes"] == 12 and s["images"] == 60
    # back to batch 2, then a spatial size no kernel was compiled for: the stock runtime runs it
    for shape, claimed in (([2, 8, 8, 1], 3), ([1, 10, 10, 1], 0)):
        for i in (it, ref):
            i.resize_tensor_input(i.get_input_details()[0]["index"], shape)
            i.allocate_tensors()
        x = np.random.default_rng(9).standard_normal(shape).astype(np.float32)
        assert rel_err(_run(it, x), _run(ref, x)) <= 1e-4
        assert dg.stats(digits_build, d)["claimed"] == claimed


def test_two_interpreters_at_once(mixed_build):
    d1, d2 = dg.load(mixed_build), dg.load(mixed_build, num_threads=2)
    path = mixed_build / dg.TFLITE_FILE
    its = [_interp(path, [d1]), _interp(path, [d2], 2)]
    ref = _interp(path)
    xs = [_inputs(ref, 1, s) for s in range(6)]
    want = [_run(ref, x) for x in xs]
    _run_concurrently(its, xs, want, rounds=3)
    for d in (d1, d2):
        s = dg.stats(mixed_build, d)
        assert s["invokes"] == 3 * 6 * 3 and s["claimed"] == 3
    total = dg.stats(mixed_build)  # process-wide totals include both delegates
    assert total["invokes"] >= 2 * 3 * 6 * 3


def test_wrong_runtime_is_refused_with_a_message(digits_build):
    import tensorflow as tf

    lib = str(digits_build / dg.DELEGATE_LIB)
    with pytest.raises(ValueError, match="tensorflow-2.99.0.*not one whose TFLite ABI"):
        tf.lite.experimental.load_delegate(
            lib, {"model_dir": str(digits_build), "runtime": "tensorflow-2.99.0"}
        )
    assert dg.runtime_tag().startswith(dg.ACCEPTED_RUNTIMES)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"colour": "blue"}, "unknown option 'colour'"),
        ({"num_threads": "-1"}, "num_threads must be"),
        ({"verbose": "yes"}, "verbose must be 0 or 1"),
        ({"abi_tensor_bytes": "113"}, "abi_tensor_bytes must be"),
        ({"model_dir": "/nonexistent"}, "cannot open '/nonexistent/cocogen_weights.bin'"),
    ],
)
def test_bad_options_are_reported(digits_build, options, message):
    import tensorflow as tf

    opts = {"model_dir": str(digits_build), **options}
    with pytest.raises(ValueError, match=message):
        tf.lite.experimental.load_delegate(str(digits_build / dg.DELEGATE_LIB), opts)


@pytest.mark.parametrize("tensor_bytes", [104, 96, 56])
def test_abi_mismatch_falls_back_to_stock(digits_build, tensor_bytes, capfd):
    """The self-check sees another sizeof(TfLiteTensor): no node is claimed, with a message,
    and the stock runtime computes the same outputs."""
    d = dg.load(digits_build, abi_tensor_bytes=tensor_bytes)
    it, ref = _interp(digits_build / dg.TFLITE_FILE, [d]), _interp(digits_build / dg.TFLITE_FILE)
    x = _inputs(it, 1, 2)
    np.testing.assert_array_equal(_run(it, x), _run(ref, x))
    s = dg.stats(digits_build, d)
    assert s["abi_failures"] == 1 and s["claimed"] == 0 and s["invokes"] == 0
    assert "ABI self-check failed" in s["last_error"]
    assert f"sizeof(TfLiteTensor) = {tensor_bytes}" in s["last_error"]
    assert "claiming no nodes" in capfd.readouterr().err


def test_weights_file_must_match_the_library(digits_build, mixed_build, tmp_path):
    import shutil

    import tensorflow as tf

    shutil.copy(mixed_build / dg.WEIGHTS_FILE, tmp_path / dg.WEIGHTS_FILE)
    with pytest.raises(ValueError, match="not the weights file of this library|does not match"):
        tf.lite.experimental.load_delegate(
            str(digits_build / dg.DELEGATE_LIB), {"model_dir": str(tmp_path)}
        )


def test_default_model_dir_is_the_library_directory(digits_build):
    import tensorflow as tf

    d = tf.lite.experimental.load_delegate(str(digits_build / dg.DELEGATE_LIB))
    it = _interp(digits_build / dg.TFLITE_FILE, [d])
    _run(it, _inputs(it, 1))
    assert dg.stats(digits_build, d)["invokes"] == 3


def test_ai_edge_litert(digits_build):
    pytest.importorskip("ai_edge_litert")
    from ai_edge_litert.interpreter import Interpreter

    d = dg.load(digits_build, runtime="ai_edge_litert")
    it = Interpreter(model_path=str(digits_build / dg.TFLITE_FILE), experimental_delegates=[d])
    it.allocate_tensors()
    ref = _interp(digits_build / dg.TFLITE_FILE)
    x = _inputs(ref, 1)
    assert rel_err(_run(it, x), _run(ref, x)) <= 1e-4
    assert dg.stats(digits_build, d)["claimed"] == 3


def asan_command() -> tuple[list[str], dict]:
    """The command and environment of the AddressSanitizer run (also what `make asan` runs)."""
    import shutil

    cc = shutil.which(os.environ.get("CC", "gcc")) or "gcc"

    def lib(name):
        return subprocess.run(
            [cc, f"-print-file-name={name}"], capture_output=True, text=True
        ).stdout.strip()

    env = dict(
        os.environ,
        COCOGEN_ASAN="1",
        LD_PRELOAD=f"{lib('libasan.so')} {lib('libstdc++.so')}",
        ASAN_OPTIONS="detect_leaks=0",
        TF_CPP_MIN_LOG_LEVEL="3",
    )
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-x",
        "-p",
        "no:cacheprovider",
        "--capture=sys",
        __file__,
        str(Path(__file__).with_name("test_delegate_pointwise.py")),
        "-k",
        "not asan",
    ]
    return cmd, env


@pytest.mark.slow
@pytest.mark.skipif(ASAN, reason="already the AddressSanitizer run")
def test_asan_build():
    """Every test above and in test_delegate_pointwise.py again, with the kernels and the
    delegate built with -fsanitize=address."""
    cmd, env = asan_command()
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    tail = (r.stdout + r.stderr)[-3000:]
    assert r.returncode == 0, tail
    assert "AddressSanitizer" not in r.stderr, tail


def test_report_and_filter_hashes(digits_build):
    """build.json names the delegate files; each layer's hash is FNV-1a 64 of its filter's support
    (OHWI, as the converted model stores it), the same in Python and in C."""
    import ctypes
    import json

    import keras

    rep = json.loads((digits_build / "build.json").read_text())
    assert rep["delegate"]["library"] == dg.DELEGATE_LIB
    assert rep["delegate"]["layers"] == ["conv1", "conv2", "conv3"]
    assert (digits_build / dg.TFLITE_FILE).is_file() and (digits_build / dg.WEIGHTS_FILE).is_file()
    m = keras.models.load_model(digits_build / "model.keras")
    lib = ctypes.CDLL(str(digits_build / dg.DELEGATE_LIB))
    assert dg.fnv1a64(b"a") == 0xAF63DC4C8601EC8C  # the published FNV-1a 64 test vector
    for row in rep["layers"]:
        if row["qualifies"]:
            k = m.get_layer(row["name"]).get_weights()[0]
            assert row["support_fnv1a64"] == f"{dg.support_fnv1a64(k):016x}"
            data = dg.filter_ohwi_bytes(k)
            assert dg.fnv1a64(data, lib) == dg.fnv1a64(data)
            ohwi = np.ascontiguousarray(k.transpose(3, 0, 1, 2))
            fn = lib.cocogen_support_fnv1a64
            fn.restype = ctypes.c_uint64
            fn.argtypes = [ctypes.c_void_p, ctypes.c_uint64]
            assert fn(ohwi.ctypes.data, ohwi.size) == dg.support_fnv1a64(k)
            # a per-output-channel factor (a folded BatchNorm) keeps the support
            assert dg.support_fnv1a64(k * np.linspace(0.5, 2, k.shape[3])) == dg.support_fnv1a64(k)
