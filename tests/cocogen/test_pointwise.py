"""Block-column pruning of 1×1 / fully connected kernels and their PWB storage."""

import itertools

import numpy as np
import pytest

from cocotune.cocogen.errors import CocogenError
from cocotune.cocogen.pointwise import (
    block_norms,
    blocks_of,
    kept_block_count,
    matrix_of,
    project_pointwise,
)
from cocotune.cocogen.pointwise_storage import encode_pointwise, read_pwb, write_pwb


def _kernel(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize(
    "shape,group,rate",
    [((1, 1, 37, 48), 16, 3.6), ((64, 32), 8, 3.6), ((1, 1, 5, 20), 16, 2.0), ((9, 7), 8, 1.0)],
)
def test_projection_keeps_exactly_the_asked_blocks(shape, group, rate):
    k = _kernel(shape)
    p = project_pointwise(k, rate, group)
    cin, cout = matrix_of(k).shape
    ng = -(-cout // group)
    assert p.kernel.shape == k.shape and p.kernel.dtype == k.dtype and p.mask.shape == k.shape
    assert p.kept.shape == (ng, cin)
    assert p.kept.sum() == kept_block_count(ng * cin, rate) == max(1, round(ng * cin / rate))
    # kept weights equal the original, removed ones are exactly zero
    m, pm, mask = matrix_of(k), matrix_of(p.kernel), matrix_of(p.mask)
    assert np.array_equal(pm[mask], m[mask]) and not pm[~mask].any()
    assert np.array_equal(blocks_of(p.kernel, group), p.kept)
    if cout % group == 0:
        assert p.density == p.kept.sum() / (ng * cin)


def test_projection_keeps_the_largest_blocks_and_is_idempotent():
    k = _kernel((1, 1, 40, 64), 3)
    p = project_pointwise(k, 3.6, 16)
    n = block_norms(matrix_of(k), 16)
    assert n[p.kept].min() >= n[~p.kept].max()
    again = project_pointwise(p.kernel, 3.6, 16)
    assert np.array_equal(again.kernel, p.kernel)


def test_projection_is_the_nearest_point_brute_force():
    k = _kernel((3, 16), 5)  # group 8: 6 blocks, keep 2 at rate 3
    p = project_pointwise(k, 3.0, 8)
    best = np.inf
    for keep in itertools.combinations(range(6), 2):
        z = np.zeros_like(k)
        for b in keep:
            g, c = divmod(b, 3)
            z[c, g * 8 : (g + 1) * 8] = k[c, g * 8 : (g + 1) * 8]
        best = min(best, float(((k - z) ** 2).sum()))
    assert np.isclose(float(((k - p.kernel) ** 2).sum()), best)


@pytest.mark.parametrize(
    "kernel,kw,msg",
    [
        (np.zeros((3, 3, 2, 2)), {}, "kernel"),
        (np.zeros((4, 16)), {"rate": 0.5}, "rate"),
        (np.zeros((4, 16)), {"group": 12}, "group"),
    ],
)
def test_projection_rejects_bad_arguments(kernel, kw, msg):
    with pytest.raises(ValueError, match=msg):
        project_pointwise(kernel, **kw)


@pytest.mark.parametrize("shape,group", [((1, 1, 37, 48), 16), ((70, 1000), 16), ((9, 13), 8)])
def test_storage_round_trip_and_bytes(tmp_path, shape, group):
    k = project_pointwise(_kernel(shape, 1), 3.6, group).kernel
    b = _kernel(shape[-1:], 2)
    layer = encode_pointwise(k, b, group)
    assert np.array_equal(layer.to_matrix(), matrix_of(k))
    assert np.array_equal(layer.bias, b)
    counts = np.diff(layer.offset.astype(np.int64))
    assert np.all(counts[:-1] >= counts[1:])  # groups sorted by work
    assert sorted(layer.reorder.tolist()) == list(range(layer.n_groups))
    for i in range(layer.n_groups):
        ix = layer.index[layer.offset[i] : layer.offset[i + 1]]
        assert np.all(np.diff(ix.astype(np.int64)) > 0)
    assert layer.nnz == np.count_nonzero(k) == layer.macs_per_pixel
    assert layer.nbytes < 0.6 * layer.csr_nbytes
    path = tmp_path / "l.pwb"
    assert write_pwb(layer, path) == path.stat().st_size
    back = read_pwb(path)
    assert np.array_equal(back.to_matrix(), layer.to_matrix())
    assert np.array_equal(back.bias, b) and back.group == group


def test_read_pwb_errors(tmp_path):
    p = tmp_path / "x.pwb"
    p.write_bytes(b"NOPE1234")
    with pytest.raises(CocogenError, match="not a PWB"):
        read_pwb(p)
    layer = encode_pointwise(project_pointwise(_kernel((8, 16)), 2.0, 8).kernel, None, 8)
    write_pwb(layer, p)
    p.write_bytes(p.read_bytes()[:-5])
    with pytest.raises(CocogenError, match="truncated"):
        read_pwb(p)


def test_infer_blocks_reads_the_structure_from_zeros():
    from cocotune.cocogen.pointwise import infer_blocks

    k = _kernel((1, 1, 32, 48), 7)
    p = project_pointwise(k, 3.6)
    kept, why = infer_blocks(p.kernel)
    assert why == "" and np.array_equal(kept, p.kept)
    kept, why = infer_blocks(k)
    assert kept is None and "100% of its" in why
    assert infer_blocks(np.zeros((4, 16)))[1] == "every weight is zero"
    assert "not a Dense" in infer_blocks(np.zeros((3, 3, 2, 2)))[1]


@pytest.mark.slow
def test_pointwise_layers_of_a_keras_model():
    import keras

    from cocotune.cocogen.pointwise import pointwise_layers

    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="c3")(inp)
    x = keras.layers.Conv2D(16, 1, name="c1")(x)
    x = keras.layers.Conv2D(16, 1, strides=2, name="c1s2")(x)
    x = keras.layers.Conv2D(16, 1, dilation_rate=2, name="dil")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(12, name="fc1")(x)
    x = keras.layers.Dense(10, name="logits")(x)
    m = keras.Model(inp, x)
    assert [l.name for l in pointwise_layers(m)] == ["c1", "c1s2", "fc1", "logits"]
    assert [l.name for l in pointwise_layers(m, classifier=False)] == ["c1", "c1s2", "fc1"]
    # the projection takes and returns the layer's own kernel layout
    k = m.get_layer("c1").get_weights()[0]
    p = project_pointwise(k, 3.6, 8)
    m.get_layer("c1").set_weights([p.kernel, m.get_layer("c1").get_weights()[1]])
    assert np.array_equal(m.get_layer("c1").get_weights()[0], p.kernel)
