"""ADMM pruning: the distance to the constraint set falls, masked retraining keeps zeros zero."""

import numpy as np

from cocotune.cocogen.admm import ADMMConfig, admm_prune, constraint_distance, prunable_layers
from cocotune.cocogen.patterns import kernels_of


def _small(digits, n=600):
    xtr, ytr, xte, yte = digits
    return xtr[:n], ytr[:n], xte[:200], yte[:200]


def test_admm_reduces_distance_and_keeps_zeros(trained_model_path, digits):
    import keras

    m = keras.models.load_model(trained_model_path)
    cfg = ADMMConfig(
        patterns=4, connectivity=2.0, admm_epochs=3, retrain_epochs=1, rho0=1e-2, rho_mult=3.0
    )
    rep = admm_prune(m, _small(digits), cfg, log=lambda *a: None)
    assert rep.distance_history[-1] < rep.distance_before
    assert rep.layers == ["conv1", "conv2", "conv3"]
    for i, layer in enumerate(prunable_layers(m)):
        w = np.asarray(layer.kernel)
        mask = rep.masks[layer.name]
        assert np.all(w[~mask] == 0)  # retraining kept pruned weights at exactly zero
        assert constraint_distance([w], rep.library, cfg.rate_for(i)) < 1e-6
        assert (kernels_of(w) != 0).sum(-1).max() <= 4
    # the first layer has patterns only (9/4), the others patterns and connectivity (9/4 x 2)
    assert np.count_nonzero(rep.masks["conv1"]) == 4 * 8
    assert np.count_nonzero(rep.masks["conv2"]) == 4 * 64
    assert 0.0 <= rep.acc_after_retrain <= 1.0
    js = rep.to_json()
    assert set(js["accuracy"]) == {"before", "after_admm", "after_retrain"}
    assert 2.25 < rep.compression < 4.5


def test_first_layer_modes(trained_model_path, digits):
    import keras

    for mode, first_nnz in (("prune", 4 * 4), ("skip", None)):
        m = keras.models.load_model(trained_model_path)
        cfg = ADMMConfig(
            patterns=4, connectivity=2.0, admm_epochs=1, retrain_epochs=0, first_layer=mode
        )
        rep = admm_prune(m, _small(digits, 200), cfg, log=lambda *a: None)
        if first_nnz is None:
            assert "conv1" not in rep.masks and rep.layers == ["conv2", "conv3"]
        else:
            assert np.count_nonzero(rep.masks["conv1"]) == first_nnz


def test_pointwise_layers_are_pruned_too(digits):
    from cocotune.cocogen.pointwise import infer_blocks

    """1x1 convs and hidden Dense layers join ADMM with the block-column constraint; the
    classifier and the 3x3 pattern constraint are unchanged; retraining keeps their zeros."""
    import keras

    keras.utils.set_random_seed(0)
    m = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c3"),
            keras.layers.Conv2D(16, 1, activation="relu", name="pw"),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="c3b"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(32, activation="relu", name="hidden"),
            keras.layers.Dense(10, name="logits"),
        ]
    )
    cfg = ADMMConfig(patterns=4, connectivity=2.0, admm_epochs=2, retrain_epochs=1, pointwise=4.0)
    rep = admm_prune(m, _small(digits, 300), cfg, log=lambda *a: None)
    assert rep.layers == ["c3", "c3b"]
    assert set(rep.pointwise_kept) == {"pw", "hidden"}
    for name in ("pw", "hidden"):
        w = np.asarray(m.get_layer(name).kernel)
        assert np.count_nonzero(w) <= round(w.size / 4)
        assert np.all(w[~rep.masks[name]] == 0)
        assert infer_blocks(w, max_density=0.25)[0] is not None  # compile reads it as blocks
    assert np.count_nonzero(np.asarray(m.get_layer("logits").kernel)) == 32 * 10
    assert "pointwise" in rep.to_json() and rep.to_json()["pointwise"]["pw"]["rate"] >= 4
