"""CaffeTransform against a numpy transcription of Caffe's DataTransformer, plus TRAIN properties.

``caffe_transform_test`` below follows ``DataTransformer<Dtype>::Transform(const Datum&,
Dtype*)`` (BVLC ``src/caffe/data_transformer.cpp``) loop for loop, on one CHW image, for the
deterministic TEST phase: mean at the source index, integer centre offset, float32 arithmetic.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from cocotune._proto import caffe_pb2
from cocotune.errors import CocotuneError
from cocotune.runtime.data import make_tf_dataset
from cocotune.runtime.preprocess import CaffeTransform, read_mean_file


def caffe_transform_test(datum, scale=1.0, crop_size=0, mean=None, mean_values=()):
    """Caffe's TEST-phase Transform for one (C, H, W) datum, written like the C++ loops."""
    channels, datum_height, datum_width = datum.shape
    scale = np.float32(scale)
    mean_values = [np.float32(v) for v in mean_values]
    if channels > 1 and len(mean_values) == 1:
        mean_values = mean_values * channels
    height, width, h_off, w_off = datum_height, datum_width, 0, 0
    if crop_size:
        height = width = crop_size
        h_off = (datum_height - crop_size) // 2
        w_off = (datum_width - crop_size) // 2
    out = np.zeros((channels, height, width), np.float32)
    for c in range(channels):
        for h in range(height):
            for w in range(width):
                element = np.float32(datum[c, h_off + h, w_off + w])
                if mean is not None:
                    out[c, h, w] = (element - np.float32(mean[c, h_off + h, w_off + w])) * scale
                elif mean_values:
                    out[c, h, w] = (element - mean_values[c]) * scale
                else:
                    out[c, h, w] = element * scale
    return out


def reference_batch(x_nhwc, **kwargs):
    return np.stack(
        [caffe_transform_test(im.transpose(2, 0, 1), **kwargs) for im in x_nhwc]
    ).transpose(0, 2, 3, 1)


def write_mean(path, mean_chw, legacy=False, double=False):
    blob = caffe_pb2.BlobProto()
    c, h, w = mean_chw.shape
    if legacy:
        blob.num, blob.channels, blob.height, blob.width = 1, c, h, w
    else:
        blob.shape.dim.extend([1, c, h, w])
    (blob.double_data if double else blob.data).extend(mean_chw.ravel().tolist())
    path.write_bytes(blob.SerializeToString())
    return path


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(5, 7, 8, 3)).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# TEST phase == Caffe, exactly
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"scale": 0.00390625},
        {"mean_values": [104.0, 117.0, 123.0]},
        {"mean_values": [127.5], "scale": 0.0078125},
        {"crop_size": 5},  # odd differences: (7-5)/2 = 1, (8-5)/2 = 1
        {"crop_size": 4, "mean_values": [10.0, 20.0, 30.0], "scale": 0.1},  # offsets 1 and 2
        {"crop_size": 6, "scale": 1.7},  # offsets 0 and 1
        {"crop_size": 7},
    ],
    ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()) or "plain",
)
def test_test_phase_matches_caffe(images, kwargs):
    fields = dict(kwargs)
    if "mean_values" in fields:
        fields["mean_value"] = fields.pop("mean_values")
    got = CaffeTransform(phase="TEST", **fields)(images).numpy()
    np.testing.assert_array_equal(got, reference_batch(images, **kwargs))


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("crop", [0, 3, 4, 5])
def test_mean_file_is_cropped_at_the_data_offset(tmp_path, images, legacy, crop):
    mean = np.random.default_rng(1).uniform(0, 255, size=(3, 7, 8)).astype(np.float32)
    path = write_mean(tmp_path / "mean.binaryproto", mean, legacy=legacy)
    t = CaffeTransform(mean_file=str(path), crop_size=crop, scale=0.5, phase="TEST")
    np.testing.assert_array_equal(
        t(images).numpy(), reference_batch(images, scale=0.5, crop_size=crop, mean=mean)
    )
    assert t.output_shape((7, 8, 3)) == ((crop, crop, 3) if crop else (7, 8, 3))


def test_mean_path_overrides_mean_file_location(tmp_path, images):
    mean = np.full((3, 7, 8), 5.0, np.float32)
    path = write_mean(tmp_path / "m.binaryproto", mean, double=True)
    param = caffe_pb2.TransformationParameter(mean_file="relative/to/prototxt.binaryproto")
    t = CaffeTransform(param, phase="TEST", mean_path=path)
    np.testing.assert_array_equal(t(images).numpy(), images.astype(np.float32) - 5.0)
    assert read_mean_file(path).shape == (7, 8, 3)


def test_accepts_a_parsed_transform_param_and_phase_enums(images):
    param = caffe_pb2.TransformationParameter(scale=0.5, crop_size=3, mirror=True)
    t = CaffeTransform(param, phase=caffe_pb2.TEST)
    assert t.phase == "TEST"
    out = t(images).numpy()  # TEST: centre crop, no mirror
    np.testing.assert_array_equal(out, images[:, 2:5, 2:5].astype(np.float32) * 0.5)


def test_graph_safe_with_unknown_batch_size(images):
    t = CaffeTransform(crop_size=4, mean_value=[1.0], scale=2.0, mirror=True, phase="TEST")
    fn = tf.function(
        lambda x: t(x, training=False), input_signature=[tf.TensorSpec([None, 7, 8, 3])]
    )
    np.testing.assert_array_equal(
        fn(images.astype(np.float32)).numpy(),
        reference_batch(images, crop_size=4, mean_values=[1.0], scale=2.0),
    )
    train_fn = tf.function(
        lambda x: t(x, training=True), input_signature=[tf.TensorSpec([None, 7, 8, 3])]
    )
    assert train_fn(images.astype(np.float32)).shape == (5, 4, 4, 3)


def test_force_color_and_force_gray():
    gray = np.arange(12, dtype=np.float32).reshape(1, 2, 2, 3)[..., :1]
    out = CaffeTransform(force_color=True, phase="TEST")(gray).numpy()
    np.testing.assert_array_equal(out, np.repeat(gray, 3, axis=-1))
    bgr = np.array([[[[100.0, 50.0, 200.0]]]], np.float32)
    out = CaffeTransform(force_gray=True, phase="TEST")(bgr).numpy()
    assert out.shape == (1, 1, 1, 1)
    assert out[0, 0, 0, 0] == pytest.approx(0.114 * 100 + 0.587 * 50 + 0.299 * 200, rel=1e-6)


def test_identity_and_describe(tmp_path):
    assert CaffeTransform().is_identity
    assert CaffeTransform().describe() == "Caffe transform_param (TRAIN): identity"
    t = CaffeTransform(mean_value=[104, 117, 123], crop_size=24, mirror=True, scale=0.5)
    assert not t.is_identity
    text = t.describe()
    order = ["mean_value 104, 117, 123", "crop 24x24", "mirror (training only)", "scale by 0.5"]
    assert [text.index(s) for s in order] == sorted(text.index(s) for s in order)


# ---------------------------------------------------------------------------------------------
# TRAIN phase: properties
# ---------------------------------------------------------------------------------------------


def position_images(n=300, h=9, w=11):
    """Pixel value encodes (row, column): 100 * row + column, the same in every image."""
    grid = 100 * np.arange(h)[:, None] + np.arange(w)[None, :]
    return np.broadcast_to(grid[None, :, :, None], (n, h, w, 1)).astype(np.float32)


def test_random_crop_stays_in_bounds_and_varies():
    x = position_images()
    out = CaffeTransform(crop_size=5, seed=3)(x, training=True).numpy()
    assert out.shape == (300, 5, 5, 1)
    offsets = set()
    for img in out[..., 0]:
        top, left = divmod(int(img[0, 0]), 100)
        assert 0 <= top <= 9 - 5 and 0 <= left <= 11 - 5
        np.testing.assert_array_equal(img, x[0, top : top + 5, left : left + 5, 0])
        offsets.add((top, left))
    assert len(offsets) == 5 * 7  # every one of Rand(5) x Rand(7) offsets occurs


def test_mirror_flips_about_half_and_only_when_training():
    x = position_images(n=400)
    t = CaffeTransform(mirror=True, seed=1)
    out = t(x).numpy()  # phase TRAIN → training by default
    flipped = np.array([np.array_equal(o, x[0, :, ::-1]) for o in out])
    kept = np.array([np.array_equal(o, x[0]) for o in out])
    assert np.all(flipped | kept)
    assert 0.4 < flipped.mean() < 0.6
    np.testing.assert_array_equal(t(x, training=False).numpy(), x)
    at_test = CaffeTransform(mirror=True, seed=1, mirror_at_test=True)(x, training=False).numpy()
    assert 0 < np.mean([np.array_equal(o, x[0, :, ::-1]) for o in at_test]) < 1


def test_train_path_subtracts_the_mean_before_cropping(tmp_path):
    x = position_images(n=50)
    mean = np.random.default_rng(2).uniform(size=(1, 9, 11)).astype(np.float32)
    path = write_mean(tmp_path / "mean.binaryproto", mean)
    out = CaffeTransform(mean_file=str(path), crop_size=4, scale=3.0, seed=0)(x).numpy()
    centred = (x - mean.transpose(1, 2, 0)[None]) * np.float32(3.0)
    for img, src in zip(out, centred):
        hits = [
            (a, b)
            for a in range(6)
            for b in range(8)
            if np.array_equal(img, src[a : a + 4, b : b + 4])
        ]
        assert hits, "crop of the mean-subtracted image expected"


def test_deterministic_with_a_seed():
    x = position_images(n=64)
    a = CaffeTransform(crop_size=5, mirror=True, seed=7)(x).numpy()
    b = CaffeTransform(crop_size=5, mirror=True, seed=7)(x).numpy()
    c = CaffeTransform(crop_size=5, mirror=True, seed=8)(x).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    t = CaffeTransform(crop_size=5, mirror=True)
    s1 = t(x, seed=tf.constant([1, 2])).numpy()
    np.testing.assert_array_equal(s1, t(x, seed=tf.constant([1, 2])).numpy())
    assert not np.array_equal(s1, t(x, seed=tf.constant([1, 3])).numpy())


def test_in_a_tf_data_pipeline_is_reproducible():
    x = position_images(n=40)
    y = np.arange(40)
    t = CaffeTransform(crop_size=6, mirror=True, scale=0.01)

    def run():
        ds = make_tf_dataset(x, y, 8, shuffle=True, seed=5, repeat=True, preprocess=t)
        return [(bx.numpy(), by.numpy()) for bx, by in ds.take(10)]

    first, second = run(), run()
    for (ax, ay), (bx, by) in zip(first, second):
        np.testing.assert_array_equal(ax, bx)
        np.testing.assert_array_equal(ay, by)
    assert first[0][0].shape == (8, 6, 6, 1)
    assert not np.array_equal(first[0][0], first[5][0][: len(first[0][0])])


# ---------------------------------------------------------------------------------------------
# Errors, like Caffe's CHECKs
# ---------------------------------------------------------------------------------------------


def test_mean_file_and_mean_value_together(tmp_path):
    path = write_mean(tmp_path / "m.binaryproto", np.zeros((1, 2, 2), np.float32))
    with pytest.raises(CocotuneError, match="cannot specify mean_file and mean_value"):
        CaffeTransform(mean_file=str(path), mean_value=[1.0])
    with pytest.raises(CocotuneError, match="cannot specify mean_file and mean_value"):
        CaffeTransform(mean_value=[1.0], mean_path=path)


def test_force_color_and_force_gray_together():
    with pytest.raises(CocotuneError, match="cannot set both force_color and force_gray"):
        CaffeTransform(force_color=True, force_gray=True)


def test_mean_value_count_must_be_one_or_channels(images):
    with pytest.raises(CocotuneError, match=r"either 1 mean_value or as many as channels \(3\)"):
        CaffeTransform(mean_value=[1.0, 2.0])(images)


def test_crop_larger_than_image(images):
    with pytest.raises(CocotuneError, match="crop_size 9 is larger than the 7x8 images"):
        CaffeTransform(crop_size=9, phase="TEST")(images)


def test_mean_file_shape_must_match_uncropped_images(tmp_path, images):
    path = write_mean(tmp_path / "m.binaryproto", np.zeros((3, 5, 5), np.float32))
    with pytest.raises(CocotuneError, match=r"is 3x5x5 \(CxHxW\) but the images are 3x7x8"):
        CaffeTransform(mean_file=str(path), crop_size=5)(images)


def test_bad_mean_files(tmp_path):
    with pytest.raises(CocotuneError, match="no such file"):
        CaffeTransform(mean_file=str(tmp_path / "missing.binaryproto"))
    junk = tmp_path / "junk.binaryproto"
    junk.write_bytes(b"\xff\xff\xff\xff garbage")
    with pytest.raises(CocotuneError, match="not a binaryproto BlobProto"):
        read_mean_file(junk)
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend([1, 1, 2, 2])
    blob.data.extend([1.0, 2.0])
    short = tmp_path / "short.binaryproto"
    short.write_bytes(blob.SerializeToString())
    with pytest.raises(CocotuneError, match="declares shape 1x1x2x2 .4 values. but holds 2"):
        read_mean_file(short)


def test_unknown_field_suggests_a_name():
    with pytest.raises(
        CocotuneError, match="unknown transform_param field 'crop' .did you mean 'crop_size'"
    ):
        CaffeTransform(crop=3)
