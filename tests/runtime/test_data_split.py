"""The validation split of every data source: deterministic, disjoint, stratified, grouped."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cocotune.errors import CocotuneError
from cocotune.runtime.data import (
    VAL_SPLIT_SEED,
    ImageFiles,
    load_dataset,
    load_digits_split,
    make_tf_dataset,
    validation_split,
)


def rows(x) -> set[bytes]:
    x = np.asarray(x, np.float32)
    return {r.tobytes() for r in x.reshape(len(x), -1)}


# ---------------------------------------------------------------------------------------------
# validation_split itself
# ---------------------------------------------------------------------------------------------


def test_split_is_stratified_deterministic_and_a_partition():
    y = np.repeat(np.arange(4), [50, 30, 15, 5])
    train, val = validation_split(y, 0.2)
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(len(y)))
    assert len(val) == 20 and np.bincount(y[val]).tolist() == [10, 6, 3, 1]
    again = validation_split(y, 0.2)
    assert np.array_equal(val, again[1])
    other = validation_split(y, 0.2, seed=VAL_SPLIT_SEED + 1)[1]
    assert not np.array_equal(val, other)


def test_split_keeps_groups_whole_and_every_class_in_training():
    y = np.repeat([0, 0, 1, 1, 1, 2], 3)  # six groups of three items
    groups = np.repeat(np.arange(6), 3)
    train, val = validation_split(y, 0.4, groups)
    assert set(groups[train]).isdisjoint(groups[val])
    assert len(val) % 3 == 0 and len(val) > 0
    assert set(y[train]) == {0, 1, 2}  # class 2's only group stays in training
    with pytest.raises(CocotuneError, match="mixes labels"):
        validation_split(np.array([0, 1]), 0.5, np.array([7, 7]))
    with pytest.raises(CocotuneError, match=r"in \[0, 1\)"):
        validation_split(y, 1.0)


def test_tiny_sets_still_get_one_validation_item():
    train, val = validation_split(np.array([0, 0, 1, 1]), 0.1)
    assert len(val) == 1 and len(train) == 3


# ---------------------------------------------------------------------------------------------
# digits and digits-hard
# ---------------------------------------------------------------------------------------------


def test_digits_validation_is_carved_from_train_only_and_fixed():
    x_tr, y_tr, x_te, y_te = load_digits_split()
    ds = load_dataset("digits", (8, 8, 1), 10)
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (1212, 135, 450)
    np.testing.assert_array_equal(ds.x_test, x_te)  # test untouched
    train, val = validation_split(y_tr, 0.1)
    np.testing.assert_array_equal(ds.x_val, x_tr[val])
    np.testing.assert_array_equal(ds.x_train, x_tr[train])
    assert set(train).isdisjoint(val)
    assert np.bincount(ds.y_val, minlength=10).min() >= 12  # every class validated
    other_seed = load_dataset("digits", (8, 8, 1), 10, seed=7)
    np.testing.assert_array_equal(other_seed.x_val, ds.x_val)
    assert "1212 train / 135 validation / 450 test" in ds.describe()
    assert load_dataset("digits", (8, 8, 1), 10, val_fraction=0.2).y_val.size == 269


def test_digits_hard_variants_never_straddle_train_and_validation():
    easy = load_dataset("digits", (8, 8, 1), 10)
    spec = "digits-hard:difficulty=0,train_variants=3,test_variants=1"
    ds = load_dataset(spec, (8, 8, 1), 10)  # difficulty 0: variants are exact copies
    assert len(ds.x_val) == 3 * len(easy.x_val)
    for k in range(3):  # variants of one source image are consecutive, all on one side
        np.testing.assert_array_equal(ds.x_val[k::3], easy.x_val)
        np.testing.assert_array_equal(ds.x_train[k::3], easy.x_train)
    perturbed = load_dataset("digits-hard", (8, 8, 1), 10)
    assert rows(perturbed.x_val).isdisjoint(rows(perturbed.x_train))
    assert rows(perturbed.x_val).isdisjoint(rows(perturbed.x_test))
    np.testing.assert_array_equal(perturbed.y_val, np.repeat(easy.y_val, 4))


def test_fingerprint_is_stable_and_tracks_what_changes_the_data():
    a = load_dataset("digits", (8, 8, 1), 10).fingerprint()
    assert a == load_dataset("digits", (8, 8, 1), 10, seed=3).fingerprint()
    assert a != load_dataset("digits", (8, 8, 1), 10, val_fraction=0.2).fingerprint()
    assert a != load_dataset("digits", (8, 8, 3), 10, resize=True).fingerprint()
    h0 = load_dataset("digits-hard:train_variants=1,test_variants=1", (8, 8, 1), 10)
    h1 = load_dataset("digits-hard:train_variants=1,test_variants=1", (8, 8, 1), 10, seed=1)
    assert h0.fingerprint() != h1.fingerprint() and len(h0.fingerprint()) == 16


# ---------------------------------------------------------------------------------------------
# .npz
# ---------------------------------------------------------------------------------------------


def ids_as_images(ids) -> np.ndarray:
    """One image per id whose pixels all equal the id, so content identifies the image."""
    return np.asarray(ids, np.float32)[:, None, None, None] * np.ones((1, 2, 2, 1), np.float32)


def test_npz_carved_validation_is_disjoint_and_deterministic(tmp_path):
    ids = np.arange(100)
    path = tmp_path / "d.npz"
    np.savez(
        path,
        x_train=ids_as_images(ids),
        y_train=ids % 5,
        x_test=ids_as_images(ids[:20] + 1000),
        y_test=ids[:20] % 5,
    )
    a = load_dataset(str(path), (2, 2, 1), 5)
    b = load_dataset(str(path), (2, 2, 1), 5, seed=9)
    np.testing.assert_array_equal(a.x_val, b.x_val)
    val_ids = set(a.x_val[:, 0, 0, 0].tolist())
    train_ids = set(a.x_train[:, 0, 0, 0].tolist())
    assert len(val_ids) == 10 and val_ids.isdisjoint(train_ids)
    assert val_ids | train_ids == set(range(100))
    assert np.bincount(a.y_val).tolist() == [2] * 5


def test_npz_explicit_validation_is_used_as_given(tmp_path):
    path = tmp_path / "v.npz"
    x = ids_as_images(range(8))
    np.savez(
        path,
        x_train=x,
        y_train=np.arange(8) % 2,
        x_test=x[:2],
        y_test=[0, 1],
        x_val=x[:3] + 50,
        y_val=[1, 0, 1],
    )
    ds = load_dataset(str(path), (2, 2, 1), 2, val_fraction=0.5)
    assert len(ds.x_train) == 8 and ds.y_val.tolist() == [1, 0, 1]
    assert ds.x_val[0, 0, 0, 0] == 50 and "x_val/y_val from the file" in ds.describe()
    half = tmp_path / "half.npz"
    np.savez(half, x_train=x, y_train=np.zeros(8), x_test=x, y_test=np.zeros(8), x_val=x)
    with pytest.raises(CocotuneError, match="lacks y_val"):
        load_dataset(str(half), (2, 2, 1), 2)


def test_npz_mean_and_scale_apply_in_caffes_order(tmp_path):
    path = tmp_path / "m.npz"
    x = np.full((4, 2, 2, 3), 100, np.uint8)
    np.savez(path, x_train=x, y_train=[0, 1, 0, 1], x_test=x, y_test=[0, 1, 0, 1])
    ds = load_dataset(str(path), (2, 2, 3), 2, mean=[10, 20, 30], scale=0.5, val_fraction=0)
    np.testing.assert_array_equal(ds.x_test[0, 0, 0], [45.0, 40.0, 35.0])
    assert ds.value_range == (100.0, 100.0) and "mean 10,20,30 × 0.5" in ds.describe()
    with pytest.raises(CocotuneError, match="--mean gives 2 values but the net takes 3"):
        load_dataset(str(path), (2, 2, 3), 2, mean=[1, 2])


# ---------------------------------------------------------------------------------------------
# image folders
# ---------------------------------------------------------------------------------------------


def make_folder(root, parts, per_class=10, size=(6, 6)):
    """Each image's red channel is a unique id (0..), so content identifies the file."""
    next_id = 0
    for part in parts:
        for name in ("a", "b"):
            for i in range(per_class):
                path = root / part / name / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", size, (next_id, 0, 0)).save(path)
                next_id += 1
    return root


def red_ids(x) -> set[int]:
    return set(np.asarray(x)[:, 0, 0, 2].astype(int).tolist())  # BGR: red is channel 2


def test_folder_carved_validation_is_disjoint_and_deterministic(tmp_path):
    root = make_folder(tmp_path / "f", ("train", "test"))
    a = load_dataset(str(root), (6, 6, 3), 2, val_fraction=0.2)
    b = load_dataset(str(root), (6, 6, 3), 2, val_fraction=0.2, seed=4)
    assert (len(a.x_train), len(a.x_val), len(a.x_test)) == (16, 4, 20)
    assert red_ids(a.x_val) == red_ids(b.x_val)
    assert red_ids(a.x_val).isdisjoint(red_ids(a.x_train))
    assert red_ids(a.x_val) | red_ids(a.x_train) == set(range(20))
    assert red_ids(a.x_test) == set(range(20, 40))
    assert np.bincount(a.y_val).tolist() == [2, 2]
    assert "all 40 images are 6x6 already (none resized)" in a.describe()


def test_folder_val_directory_is_used_as_given(tmp_path):
    root = make_folder(tmp_path / "f", ("train", "test", "val"), per_class=3)
    ds = load_dataset(str(root), (6, 6, 3), 2)
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (6, 6, 6)
    assert red_ids(ds.x_val) == set(range(12, 18)) and "the val/ folder" in ds.describe()
    (root / "val" / "c").mkdir()
    with pytest.raises(CocotuneError, match=r"differ \(only in val: c\)"):
        load_dataset(str(root), (6, 6, 3), 3)


def test_large_folders_stream_from_disk_and_feed_tf_data(tmp_path):
    root = make_folder(tmp_path / "f", ("train", "test"), per_class=4, size=(9, 7))
    memory = load_dataset(str(root), (4, 4, 3), 2, val_fraction=0.25)
    streamed = load_dataset(str(root), (4, 4, 3), 2, val_fraction=0.25, memory_limit_mb=0)
    assert isinstance(streamed.x_train, ImageFiles) and isinstance(memory.x_train, np.ndarray)
    assert streamed.x_train.shape == memory.x_train.shape == (6, 4, 4, 3)
    np.testing.assert_array_equal(streamed.x_val[0:2], memory.x_val[0:2])
    np.testing.assert_array_equal(np.asarray(streamed.x_test), memory.x_test)
    assert "streamed from disk" in streamed.describe() and "16 of 16 images resized" in (
        streamed.describe()
    )
    got = [
        (x.numpy(), y.numpy())
        for x, y in make_tf_dataset(streamed.x_train, streamed.y_train, 4, True, seed=2)
    ]
    want = [
        (x.numpy(), y.numpy())
        for x, y in make_tf_dataset(memory.x_train, memory.y_train, 4, True, seed=2)
    ]
    assert [len(y) for _, y in got] == [4, 2]
    for (gx, gy), (wx, wy) in zip(got, want):
        np.testing.assert_array_equal(gx, wx)
        np.testing.assert_array_equal(gy, wy)


def test_folder_crop_mean_and_scale(tmp_path):
    root = tmp_path / "c"
    for part in ("train", "test"):
        for name in ("a", "b"):
            img = Image.new("RGB", (6, 6), (0, 0, 0))
            img.putpixel((2, 2), (200, 100, 50))  # the centre 2x2 crop starts at (2, 2)
            path = root / part / name / "0.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            img.save(path)
    ds = load_dataset(
        str(root), (2, 2, 3), 2, crop=True, mean=[50, 100, 200], scale=2, val_fraction=0
    )
    np.testing.assert_array_equal(ds.x_train[0, 0, 0], [0.0, 0.0, 0.0])  # BGR minus mean
    np.testing.assert_array_equal(ds.x_train[0, 1, 1], [-100.0, -200.0, -400.0])
    assert "4 of 4 images centre-cropped to 2x2" in ds.describe()
    with pytest.raises(CocotuneError, match="smaller than the net's 8x8"):
        load_dataset(str(root), (8, 8, 3), 2, crop=True)
    with pytest.raises(CocotuneError, match="--resize applies to the built-in digits only"):
        load_dataset(str(root), (8, 8, 3), 2, resize=True)


def test_lazy_arrays_index_like_numpy():
    from cocotune.runtime.data import ResizedImages

    src = np.random.default_rng(0).random((5, 8, 8, 1)).astype(np.float32)
    lazy, full = ResizedImages(src, 8, 8, 3), np.repeat(src, 3, axis=3)
    assert lazy.shape == full.shape and len(lazy) == 5 and lazy.dtype == np.float32
    np.testing.assert_array_equal(lazy[1:4], full[1:4])
    np.testing.assert_array_equal(lazy[2], full[2])
    np.testing.assert_array_equal(lazy[[4, 0]], full[[4, 0]])
    np.testing.assert_array_equal(lazy[:, 0, 0, 2], full[:, 0, 0, 2])
    np.testing.assert_array_equal(lazy[1, 0], full[1, 0])
    view = lazy.take(np.array([3, 1]))
    np.testing.assert_array_equal(np.asarray(view), full[[3, 1]])
