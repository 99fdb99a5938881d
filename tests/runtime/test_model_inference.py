"""Compiled, bounded-batch inference (cocotune.runtime.model): same outputs, no kept models."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from cocotune.runtime.model import (  # noqa: E402
    eval_batch_size,
    inference_fn,
    predict_outputs,
)


def _two_output_model():
    x_in = keras.Input((6, 6, 2))
    h = keras.layers.Conv2D(3, 3, padding="same", name="c")(x_in)
    h = keras.layers.BatchNormalization(name="bn")(h)
    logits = keras.layers.Dense(4, name="fc")(keras.layers.Flatten()(h))
    per_sample = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(x_in, [logits, per_sample])


def test_eval_batch_size_bounded_by_image_size():
    assert eval_batch_size((224, 224, 3)) == 27  # 2**22 values
    assert eval_batch_size((8, 8, 1)) == 256  # capped
    assert eval_batch_size((32, 32, 3)) == 256
    assert eval_batch_size((2048, 2048, 3)) == 1  # never zero
    assert eval_batch_size((224, 224, 3), cap=8) == 8


def test_predict_outputs_matches_eager_call_in_any_batch_size():
    keras.utils.set_random_seed(0)
    model = _two_output_model()
    x = np.random.default_rng(0).normal(size=(11, 6, 6, 2)).astype(np.float32)
    eager = [np.asarray(o) for o in model(x, training=False)]
    for batch_size in (None, 1, 4, 11, 64):
        outs = predict_outputs(model, x, batch_size=batch_size)
        assert [o.shape for o in outs] == [(11, 4), (11, 3)]
        for got, want in zip(outs, eager):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert predict_outputs(model, x[:0]) == []


def test_single_output_and_lazy_array_input():
    keras.utils.set_random_seed(1)
    x_in = keras.Input((4, 4, 1))
    model = keras.Model(x_in, keras.layers.Dense(2)(keras.layers.Flatten()(x_in)))

    class Lazy:  # what streamed image folders offer: len, slices, shape
        def __init__(self, a):
            self.a, self.shape = a, a.shape

        def __len__(self):
            return len(self.a)

        def __getitem__(self, s):
            return self.a[s]

    x = np.arange(5 * 16, dtype=np.float32).reshape(5, 4, 4, 1) / 80
    (out,) = predict_outputs(model, Lazy(x), batch_size=2)
    np.testing.assert_allclose(out, np.asarray(model(x)), rtol=1e-5, atol=1e-6)


def test_compiled_function_is_cached_on_the_model_and_does_not_keep_it_alive(tmp_path):
    model = _two_output_model()
    fn = inference_fn(model)
    assert inference_fn(model) is fn
    assert inference_fn(model, training=True) is not fn
    predict_outputs(model, np.zeros((2, 6, 6, 2), np.float32))
    model.save(tmp_path / "m.keras")  # the cached function is not part of the saved state
    ref = weakref.ref(model)
    del model, fn
    gc.collect()
    assert ref() is None
