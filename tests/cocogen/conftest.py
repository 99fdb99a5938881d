"""Shared fixtures: a small CNN on scikit-learn's digits, trained briefly (CPU-light)."""

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def make_digits_cnn(seed: int = 0):
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1"),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2"),
            keras.layers.MaxPooling2D(2, name="pool"),
            keras.layers.Conv2D(16, 3, padding="valid", name="conv3"),
            keras.layers.ReLU(name="relu3"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(10, name="logits"),
        ]
    )


@pytest.fixture(scope="session")
def digits():
    from cocotune.cocogen.data import load_data

    return load_data("digits")


@pytest.fixture(scope="session")
def trained_model_path(tmp_path_factory, digits):
    import keras

    xtr, ytr, _, _ = digits
    m = make_digits_cnn()
    m.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    m.fit(xtr, ytr, epochs=3, batch_size=64, verbose=0)
    p = tmp_path_factory.mktemp("model") / "model.keras"
    m.save(p)
    return p


@pytest.fixture(scope="session")
def projected_model_path(tmp_path_factory, trained_model_path):
    """The trained model with every 3x3 conv projected onto 4 patterns at connectivity 2 (no retraining)."""
    import keras

    from cocotune.cocogen.patterns import project_layer, select_library

    m = keras.models.load_model(trained_model_path)
    convs = [l for l in m.layers if isinstance(l, keras.layers.Conv2D)]
    lib = select_library([l.get_weights()[0] for l in convs], 4)
    for l in convs:
        w = l.get_weights()
        w[0] = project_layer(w[0], lib, 2.0).kernel
        l.set_weights(w)
    p = tmp_path_factory.mktemp("projected") / "model.keras"
    m.save(p)
    return p


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1.0)))
