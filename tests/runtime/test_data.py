"""Datasets: the fixed digits split, digits-hard, .npz and image folders, tf.data, MPI shards."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cocotune.errors import CocotuneError
from cocotune.runtime.data import (
    ResizedImages,
    load_dataset,
    load_digits_split,
    make_digits_hard,
    make_tf_dataset,
    split_for_ranks,
)


def nearest_centroid_accuracy(ds) -> float:
    """A classifier with no training loop: how separable the classes are, in milliseconds."""
    xtr = ds.x_train.reshape(len(ds.x_train), -1)
    xte = ds.x_test.reshape(len(ds.x_test), -1)
    centroids = np.stack([xtr[ds.y_train == k].mean(0) for k in range(10)])
    pred = np.argmin(((xte[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    return float((pred == ds.y_test).mean())


# ---------------------------------------------------------------------------------------------
# digits
# ---------------------------------------------------------------------------------------------


def test_digits_split_is_fixed_and_stratified():
    ds = load_dataset("digits", (8, 8, 1), 10, val_fraction=0)
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (1347, 0, 450)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    again = load_dataset("digits", (8, 8, 1), 10, seed=123, val_fraction=0)  # seed: no effect
    np.testing.assert_array_equal(ds.x_test, again.x_test)
    np.testing.assert_array_equal(ds.y_train, again.y_train)
    train_share = np.bincount(ds.y_train) / len(ds.y_train)
    test_share = np.bincount(ds.y_test) / len(ds.y_test)
    np.testing.assert_allclose(train_share, test_share, atol=0.005)
    assert "1347 train / 0 validation / 450 test images of 8x8x1" in ds.describe()


@pytest.mark.parametrize("shape", [(16, 16, 1), (28, 28, 3), (12, 10, 2), (8, 8, 3)])
def test_digits_refuse_another_input_shape_without_resize(shape):
    with pytest.raises(CocotuneError, match=r"digits are 8x8x1 images but the net takes") as e:
        load_dataset("digits", shape, 10)
    assert "--resize" in e.value.render()


@pytest.mark.parametrize("shape", [(8, 8, 1), (16, 16, 1), (28, 28, 3), (12, 10, 2)])
def test_digits_resize_fits_any_input_shape_lazily(shape):
    ds = load_dataset("digits", shape, 10, resize=True, val_fraction=0)
    assert ds.x_train.shape == (1347, *shape) and ds.x_test.shape == (450, *shape)
    assert ds.input_shape == shape
    part = ds.x_train[:40]
    assert isinstance(part, np.ndarray) and part.dtype == np.float32 and part.shape[0] == 40
    assert 0.0 <= part.min() and part.max() <= 1.0
    for ch in range(1, shape[2]):
        np.testing.assert_array_equal(part[..., ch], part[..., 0])
    if shape[:2] != (8, 8):
        assert isinstance(ds.x_train, ResizedImages)  # nothing resized until read
        assert any("resized from 8x8" in n for n in ds.notes)
    else:
        assert not any("resized" in n for n in ds.notes)


def test_digits_resize_is_tensorflows_bilinear():
    import tensorflow as tf

    x = load_digits_split()[0]
    ds = load_dataset("digits", (13, 21, 1), 10, resize=True, val_fraction=0)
    expected = tf.image.resize(x, (13, 21), method="bilinear").numpy()
    np.testing.assert_allclose(np.asarray(ds.x_train), expected, atol=1e-6)


def test_digits_class_count_checks():
    with pytest.raises(CocotuneError, match="10 classes but the net outputs only 5"):
        load_dataset("digits", (8, 8, 1), 5)
    ds = load_dataset("digits", (8, 8, 1), 12)
    assert "labels use only 0..9" in ds.describe()


def test_unknown_spec_suggests_a_builtin(tmp_path):
    with pytest.raises(CocotuneError, match="did you mean 'digits'"):
        load_dataset("digit", (8, 8, 1), 10)
    with pytest.raises(CocotuneError, match="not a built-in dataset, an .npz file or an image"):
        load_dataset(str(tmp_path / "nope.npz"), (8, 8, 1), 10)


def test_input_shape_must_be_an_image():
    with pytest.raises(CocotuneError, match=r"input \(64,\) is not an image"):
        load_dataset("digits", (64,), 10)


# ---------------------------------------------------------------------------------------------
# digits-hard
# ---------------------------------------------------------------------------------------------


def test_digits_hard_is_deterministic_and_sized():
    a = load_dataset("digits-hard", (8, 8, 1), 10)
    b = load_dataset("digits-hard", (8, 8, 1), 10)
    for key in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    assert (len(a.x_train), len(a.x_val), len(a.x_test)) == (1212 * 4, 135 * 4, 450 * 4)
    assert 0.0 <= a.x_train.min() and a.x_train.max() <= 1.0
    other = load_dataset("digits-hard", (8, 8, 1), 10, seed=1)
    assert not np.array_equal(a.x_train, other.x_train)
    np.testing.assert_array_equal(a.y_test, other.y_test)


def test_digits_hard_is_harder_than_digits():
    easy = nearest_centroid_accuracy(load_dataset("digits", (8, 8, 1), 10))
    hard = nearest_centroid_accuracy(load_dataset("digits-hard", (8, 8, 1), 10))
    assert easy > 0.88 and hard < easy - 0.2  # measured: 0.907 and 0.538


def test_digits_hard_keeps_test_images_out_of_training():
    x_tr, y_tr, x_te, y_te = make_digits_hard(difficulty=0.0, train_variants=2, test_variants=3)
    d_tr, dy_tr, d_te, dy_te = load_digits_split()
    np.testing.assert_array_equal(x_tr[::2], d_tr)  # difficulty 0: exact copies, image-major
    np.testing.assert_array_equal(x_te[::3], d_te)
    np.testing.assert_array_equal(y_te, np.repeat(dy_te, 3))


def test_digits_hard_options_in_the_spec():
    ds = load_dataset(
        "digits-hard:difficulty=0.5,train_variants=1,test_variants=2",
        (8, 8, 1),
        10,
        val_fraction=0,
    )
    assert (len(ds.x_train), len(ds.x_test)) == (1347, 900)
    assert "difficulty=0.5" in ds.describe()
    with pytest.raises(CocotuneError, match="unknown digits-hard option 'dificulty'.*'difficulty'"):
        load_dataset("digits-hard:dificulty=2", (8, 8, 1), 10)
    with pytest.raises(CocotuneError, match="train_variants='x' is not a number"):
        load_dataset("digits-hard:train_variants=x", (8, 8, 1), 10)
    with pytest.raises(CocotuneError, match="difficulty must be in"):
        load_dataset("digits-hard:difficulty=9", (8, 8, 1), 10)


# ---------------------------------------------------------------------------------------------
# .npz
# ---------------------------------------------------------------------------------------------


def save_npz(path, x_train, y_train, x_test, y_test, **extra):
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, **extra)
    return str(path)


def test_npz_nhwc_kept_as_stored(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(6, 5, 4, 3)).astype(np.uint8)
    path = save_npz(tmp_path / "d.npz", x, np.arange(6) % 3, x[:2], np.array([0, 2]))
    ds = load_dataset(path, (5, 4, 3), 3, val_fraction=0)
    np.testing.assert_array_equal(ds.x_train, x.astype(np.float32))
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.value_range == (float(x.min()), float(x.max()))
    assert not any("transposed" in n for n in ds.notes)
    assert "no mean or scale applied" in ds.describe()


def test_npz_nchw_is_transposed(tmp_path):
    x = np.arange(2 * 3 * 5 * 4, dtype=np.float32).reshape(2, 3, 5, 4)
    path = save_npz(tmp_path / "d.npz", x, [0, 1], x, [1, 0])
    ds = load_dataset(path, (5, 4, 3), 2, val_fraction=0)
    np.testing.assert_array_equal(ds.x_train, x.transpose(0, 2, 3, 1))
    assert any("NCHW" in n for n in ds.notes)


def test_npz_ambiguous_layout_prefers_nhwc_and_3d_means_one_channel(tmp_path):
    x = np.random.default_rng(0).random((2, 3, 3, 3)).astype(np.float32)
    ds = load_dataset(
        save_npz(tmp_path / "a.npz", x, [0, 1], x, [1, 1]), (3, 3, 3), 2, val_fraction=0
    )
    np.testing.assert_array_equal(ds.x_train, x)
    gray = np.zeros((4, 6, 6), np.float32)
    ds = load_dataset(
        save_npz(tmp_path / "g.npz", gray, [0] * 4, gray, [0] * 4), (6, 6, 1), 2, val_fraction=0
    )
    assert ds.x_train.shape == (4, 6, 6, 1)


def test_npz_wrong_shape_names_layout_and_net(tmp_path):
    x = np.zeros((4, 3, 32, 32), np.uint8)
    path = save_npz(tmp_path / "c.npz", x, [0] * 4, x, [0] * 4)
    with pytest.raises(CocotuneError) as err:
        load_dataset(path, (28, 28, 1), 10)
    assert err.value.message == (
        f"'{path}': x_train has shape (N, 3, 32, 32) (NCHW) but the net takes 28x28x1"
    )
    assert "(N, 28, 28, 1) (NHWC) or (N, 1, 28, 28) (NCHW)" in err.value.notes[0]


@pytest.mark.parametrize(
    "labels, message",
    [
        (
            [0, 1, 10, 2],
            r"y_train\[2\] = 10 is not a class of the net \(it outputs 10 classes: 0..9\)",
        ),
        ([0, -1, 1, 2], r"y_train\[1\] = -1 is not a class"),
        ([0.0, 1.5, 1.0, 2.0], r"y_train\[1\] = 1.5 is not an integer class index"),
        (np.eye(4, 10), r"labels must be one index per image \(one-hot\? store y.argmax"),
        (["a", "b", "c", "d"], "labels must be integer class indices"),
        ([0, 1, 2], "x_train has 4 images but y_train has 3 labels"),
    ],
)
def test_npz_label_errors(tmp_path, labels, message):
    x = np.zeros((4, 8, 8, 1), np.float32)
    path = save_npz(tmp_path / "l.npz", x, np.asarray(labels), x, [0, 1, 2, 3])
    with pytest.raises(CocotuneError, match=message):
        load_dataset(path, (8, 8, 1), 10)


def test_npz_float_labels_that_are_integers_are_accepted(tmp_path):
    x = np.zeros((2, 8, 8, 1), np.float32)
    ds = load_dataset(
        save_npz(tmp_path / "f.npz", x, [1.0, 3.0], x, [[0.0], [2.0]]), (8, 8, 1), 4, val_fraction=0
    )
    assert ds.y_train.tolist() == [1, 3] and ds.y_test.tolist() == [0, 2]


def test_npz_file_errors(tmp_path):
    x = np.zeros((2, 8, 8, 1), np.float32)
    np.savez(tmp_path / "m.npz", x_train=x, y_train=[0, 1])
    with pytest.raises(CocotuneError, match="lacks x_test, y_test"):
        load_dataset(str(tmp_path / "m.npz"), (8, 8, 1), 10)
    empty = np.zeros((0, 8, 8, 1), np.float32)
    path = save_npz(tmp_path / "e.npz", x, [0, 1], empty, np.zeros(0, np.int64))
    with pytest.raises(CocotuneError, match=r"e\.npz': x_test is empty"):
        load_dataset(path, (8, 8, 1), 10)
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(CocotuneError, match="cannot read .* as an .npz file"):
        load_dataset(str(tmp_path / "text.npz"), (8, 8, 1), 10)
    nan = x.copy()
    nan[1, 2, 3, 0] = np.nan
    with pytest.raises(CocotuneError, match=r"x_test\[1\] contains NaN"):
        load_dataset(save_npz(tmp_path / "n.npz", x, [0, 1], nan, [0, 1]), (8, 8, 1), 10)


# ---------------------------------------------------------------------------------------------
# image folders
# ---------------------------------------------------------------------------------------------


def write_png(path, rgb, size=(6, 5)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, rgb).save(path)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "imgs"
    colours = {"cat": (255, 0, 0), "dog": (0, 0, 255), "ant": (0, 255, 0)}
    for part, count in (("train", 2), ("test", 1)):
        for name, rgb in colours.items():
            for i in range(count):
                write_png(root / part / name / f"{i}.png", rgb)
    (root / "train" / "cat" / "notes.txt").write_text("ignored")
    return root


def test_image_folder_classes_sorted_and_bgr(folder):
    ds = load_dataset(str(folder), (4, 4, 3), 5, val_fraction=0)
    assert ds.class_names == ("ant", "cat", "dog")
    assert ds.y_train.tolist() == [0, 0, 1, 1, 2, 2] and ds.y_test.tolist() == [0, 1, 2]
    assert ds.x_train.shape == (6, 4, 4, 3) and ds.x_train.dtype == np.float32
    np.testing.assert_array_equal(ds.x_train[2, 0, 0], [0.0, 0.0, 255.0])  # red cat, as BGR
    np.testing.assert_array_equal(ds.x_test[2, 0, 0], [255.0, 0.0, 0.0])  # blue dog, as BGR
    assert ds.value_range == (0.0, 255.0)
    assert "classes: ant, cat, dog" in ds.describe()


def test_image_folder_gray_and_rgb_order(folder):
    gray = load_dataset(str(folder), (3, 3, 1), 3, val_fraction=0)
    assert gray.x_train.shape == (6, 3, 3, 1)
    assert gray.x_train[2, 0, 0, 0] == pytest.approx(255 * 0.299, abs=1)  # Pillow's L of red
    rgb = load_dataset(str(folder), (5, 6, 3), 3, channel_order="RGB", val_fraction=0)
    np.testing.assert_array_equal(rgb.x_train[2, 0, 0], [255.0, 0.0, 0.0])


def test_image_folder_errors(folder, tmp_path):
    with pytest.raises(CocotuneError, match="has 3 classes but the net outputs only 2"):
        load_dataset(str(folder), (4, 4, 3), 2)
    with pytest.raises(CocotuneError, match="1 \\(gray\\) or 3 \\(colour\\) channels .* takes 4"):
        load_dataset(str(folder), (4, 4, 4), 3)
    write_png(folder / "test" / "eel" / "0.png", (1, 2, 3))
    (folder / "train" / "bee").mkdir()
    with pytest.raises(CocotuneError, match=r"differ \(only in train: bee; only in test: eel\)"):
        load_dataset(str(folder), (4, 4, 3), 10)
    (folder / "test" / "bee").mkdir()
    write_png(folder / "train" / "eel" / "0.png", (1, 2, 3))
    with pytest.raises(CocotuneError, match="bee' has no images"):
        load_dataset(str(folder), (4, 4, 3), 10)
    write_png(folder / "train" / "bee" / "0.png", (1, 2, 3))
    (folder / "test" / "bee" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(CocotuneError, match="cannot read image .*broken.png"):
        load_dataset(str(folder), (4, 4, 3), 10)
    only_train = tmp_path / "half"
    write_png(only_train / "train" / "a" / "0.png", (0, 0, 0))
    with pytest.raises(CocotuneError, match="has no 'test' folder"):
        load_dataset(str(only_train), (4, 4, 3), 10)
    flat = tmp_path / "flat"
    write_png(flat / "train" / "0.png", (0, 0, 0))
    (flat / "test").mkdir()
    with pytest.raises(CocotuneError, match="train' has no class folders"):
        load_dataset(str(flat), (4, 4, 3), 10)


# ---------------------------------------------------------------------------------------------
# tf.data and MPI shards
# ---------------------------------------------------------------------------------------------


def batches(ds):
    return [(x.numpy(), y.numpy()) for x, y in ds]


def test_tf_dataset_batches_in_order_without_shuffle():
    x = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1)
    out = batches(make_tf_dataset(x, np.arange(10), 4, shuffle=False))
    assert [len(b[1]) for b in out] == [4, 4, 2]
    assert np.concatenate([b[1] for b in out]).tolist() == list(range(10))
    assert out[0][0].shape == (4, 1, 1, 1) and out[0][0].dtype == np.float32


def test_tf_dataset_shuffle_is_reproducible_and_reshuffles_each_epoch():
    x = np.arange(20, dtype=np.float32).reshape(20, 1, 1, 1)
    y = np.arange(20)

    def order(seed):
        ds = make_tf_dataset(x, y, 5, shuffle=True, seed=seed, repeat=True)
        return np.concatenate([b for _, b in batches(ds.take(8))])

    first, again = order(3), order(3)
    np.testing.assert_array_equal(first, again)
    assert sorted(first[:20]) == list(range(20)) and sorted(first[20:]) == list(range(20))
    assert not np.array_equal(first[:20], first[20:])
    assert not np.array_equal(first, order(4))


def test_tf_dataset_applies_preprocess_to_batches():
    x = np.ones((6, 2, 2, 1), np.float32)
    out = batches(make_tf_dataset(x, np.zeros(6), 3, shuffle=False, preprocess=lambda b: b * 2))
    assert all(np.all(b == 2.0) for b, _ in out)


@pytest.mark.parametrize("n, size", [(10, 3), (3, 5), (0, 2), (100, 1), (7, 7)])
def test_split_for_ranks_covers_everything_once(n, size):
    parts = [split_for_ranks(n, r, size) for r in range(size)]
    covered = [i for p in parts for i in range(n)[p]]
    assert covered == list(range(n))
    lengths = [len(range(n)[p]) for p in parts]
    assert max(lengths) - min(lengths) <= 1


def test_split_for_ranks_rejects_bad_ranks():
    with pytest.raises(ValueError, match="rank 3 is not in"):
        split_for_ranks(10, 3, 3)
    with pytest.raises(ValueError, match="size must be positive"):
        split_for_ranks(10, 0, 0)
