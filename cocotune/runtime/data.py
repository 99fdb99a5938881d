"""Datasets for training and evaluating a generated model: built-in digits, ``.npz``, image folders.

Every loader returns a :class:`Dataset` with three disjoint parts, train, validation and test,
whose images are float32 NHWC already shaped for the net's input ``(H, W, C)`` and whose labels
are int64 class indices in ``[0, num_classes)``. Doing every check here, once, means a wrong
``--data`` fails in a second with one sentence instead of an hour into training with a Keras
shape error (or 22 GB of resized images).

Specs understood by :func:`load_dataset`:

``digits``
    scikit-learn's bundled 8×8 digits (no download), values scaled from 0..16 to [0, 1], with a
    fixed stratified split of 1347 train / 450 test images (``train_test_split(random_state=0)``),
    so accuracies are comparable between runs, machines and MPI ranks.
``digits-hard`` (or ``digits-hard:difficulty=0.8,train_variants=4,test_variants=4``)
    the same split, each image turned into several perturbed variants (rotation, scaling,
    sub-pixel shift, contrast, occlusion, noise) by a seeded generator, so that a small ResNet
    no longer saturates at ~99% and pruned configurations can be told apart. See
    :func:`make_digits_hard`.
``PATH.npz``
    arrays ``x_train, y_train, x_test, y_test`` and optionally ``x_val, y_val``; images NHWC or
    NCHW (detected against the net), values kept as stored unless ``mean``/``scale`` are given.
``DIR``
    an image folder ``DIR/train/<class>/*.png|jpg|...``, ``DIR/test/<class>/*`` and optionally
    ``DIR/val/<class>/*``; class names sorted as strings give the label indices.

Validation split (what every decision of the explorer is made on; test data only report):
an explicit ``x_val, y_val`` (``.npz``) or ``val/`` folder is used as is; otherwise
``val_fraction`` (default 0.1) of the training set is held out, stratified by class, by a
generator with the fixed seed :data:`VAL_SPLIT_SEED` that ``--seed`` does not move, so every
run and every MPI rank holds out the same images. ``digits-hard`` holds out whole source images:
all perturbed variants of one digit are on the same side, and it holds out the same source
images as ``digits``.

Shapes: data must already fit the net. The built-in 8×8×1 digits on a net with another input
are refused unless ``resize=True`` (``--resize``): an ImageNet net fed upscaled 8×8 digits is
almost never what was meant, and costs ~800× the compute per image; with ``resize=True`` the
images are resized (bilinear, as ``tf.image.resize``) batch by batch as they are read, never as a
whole resized copy in memory. ``.npz`` arrays must have the net's shape. Folder images, whose
sizes vary by nature, are resized to the net's H×W (or centre-cropped with ``crop=True``); the
notes say how many actually were.

Memory: image folders whose decoded images would take more than ``memory_limit_mb`` (default
1024) are streamed from disk (:class:`ImageFiles`, read batch by batch); smaller ones are read
once into memory. Consumers use only ``len(x)``, ``x[a:b]`` (float32 NHWC) and ``x.shape``, which
numpy arrays and the lazy arrays here both support; :func:`make_tf_dataset` streams lazy ones.
Loading needs no TensorFlow; only :func:`make_tf_dataset` imports it.

Pixel values: ``.npz`` images and folder images are kept as stored (uint8 0..255 becomes float32
0..255), as Caffe's data layers feed raw values and leave scaling to the layer's
``transform_param`` (see :mod:`cocotune.runtime.preprocess`). A deploy net (``input:`` only) has
no ``transform_param``: give its preprocessing as ``mean`` (one value per channel, in the
channel order fed to the net) and ``scale``, applied as Caffe does: ``(pixel - mean) * scale``.
Built-in digits are in [0, 1]; :attr:`Dataset.value_range` records the range as loaded (before
mean/scale).

Channel order: Caffe nets trained from LMDB/ImageData see BGR. Folder images are therefore
returned in BGR by default (``channel_order="BGR"``, as OpenCV-based Caffe reads them); for
``.npz`` files the order is the user's responsibility.
"""

from __future__ import annotations

import difflib
import hashlib
import inspect
import json
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cocotune.errors import CocotuneError

__all__ = [
    "BUILTIN",
    "DEFAULT_VAL_FRACTION",
    "Dataset",
    "IMAGE_EXTENSIONS",
    "ImageFiles",
    "ResizedImages",
    "VAL_SPLIT_SEED",
    "load_dataset",
    "load_digits_split",
    "make_digits_hard",
    "make_tf_dataset",
    "read_npz",
    "split_for_ranks",
    "validation_split",
]

BUILTIN = ("digits", "digits-hard")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff")
_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
_HARD_KEYS = ("difficulty", "train_variants", "test_variants")
_FOLDER_KEYS = ("channel_order", "crop", "memory_limit_mb")
_TRANSFORM_KEYS = ("mean", "scale")

#: Seeds the validation hold-out. Fixed (not ``--seed``) so that every run, every seed and every
#: MPI rank decide on the very same validation images.
VAL_SPLIT_SEED = 20180618
DEFAULT_VAL_FRACTION = 0.1


@dataclass
class Dataset:
    """Train, validation and test images for one net, ready to feed.

    Attributes:
        name: what was loaded (``digits``, ``digits-hard``, a path).
        x_train, x_val, x_test: float32 ``(N, H, W, C)`` arrays, or array-likes
            (:class:`ImageFiles`, :class:`ResizedImages`) with ``len``, slicing and ``shape``.
        y_train, y_val, y_test: int64 ``(N,)`` class indices.
        num_classes: outputs of the net the data was checked against.
        class_names: folder names for image folders, else ``None`` (index = name).
        value_range: ``(min, max)`` of the pixel values as loaded (before mean/scale).
        notes: what was done to fit the net (resizing, channel repetition, layout transposes).
        params: what identifies the data besides its name (split, options, transform), for
            :meth:`fingerprint` and logs.
    """

    name: str
    x_train: Images
    y_train: np.ndarray
    x_test: Images
    y_test: np.ndarray
    num_classes: int
    class_names: tuple[str, ...] | None = None
    value_range: tuple[float, float] = (0.0, 1.0)
    notes: list[str] = field(default_factory=list)
    x_val: Images | None = None
    y_val: np.ndarray | None = None
    params: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.x_val is None:
            self.x_val = np.zeros((0, *self.x_train.shape[1:]), np.float32)
            self.y_val = np.zeros((0,), np.int64)

    def _validation(self) -> tuple[Images, np.ndarray]:
        """``(x_val, y_val)``, never None: __post_init__ fills in an empty part when none is
        given, and a carved or folder part replaces both together."""
        assert self.x_val is not None and self.y_val is not None, "validation part unset"
        return self.x_val, self.y_val

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.x_train.shape[1:])  # type: ignore[return-value]

    def describe(self) -> str:
        """One paragraph for logs and READMEs: sizes, shape, classes, value range, notes."""
        h, w, c = self.input_shape
        x_val, y_val = self._validation()
        labels = [np.unique(np.asarray(y)) for y in (self.y_train, y_val, self.y_test)]
        present = len(np.unique(np.concatenate(labels)))
        lo, hi = self.value_range
        text = (
            f"{self.name}: {len(self.x_train)} train / {len(x_val)} validation / "
            f"{len(self.x_test)} test images of {h}x{w}x{c}, {present} classes present "
            f"(net outputs {self.num_classes}), values in [{lo:g}, {hi:g}]"
        )
        if self.params.get("mean") is not None or self.params.get("scale") is not None:
            text += " before mean/scale"
        if self.class_names is not None:
            shown = ", ".join(self.class_names[:12]) + (
                ", ..." if len(self.class_names) > 12 else ""
            )
            text += f"; classes: {shown}"
        return text + "".join(f"\n  - {n}" for n in self.notes)

    def fingerprint(self) -> str:
        """A short hash of what identifies the data: spec, sizes, split, options, content sample.

        Two loads with the same fingerprint feed the same images in the same parts; results
        recorded under one fingerprint are never reused for another. Content enters through all
        labels and the first 16 images of each part (cheap even for streamed folders).
        """
        digest = hashlib.sha256()
        x_val, y_val = self._validation()
        meta = {
            "name": self.name,
            "shape": list(self.input_shape),
            "sizes": [len(self.x_train), len(x_val), len(self.x_test)],
            "num_classes": self.num_classes,
            "params": self.params,
        }
        digest.update(json.dumps(meta, sort_keys=True, default=str).encode())
        for x, y in (
            (self.x_train, self.y_train),
            (x_val, y_val),
            (self.x_test, self.y_test),
        ):
            digest.update(np.ascontiguousarray(np.asarray(y, np.int64)).tobytes())
            digest.update(np.ascontiguousarray(np.asarray(x[:16], np.float32)).tobytes())
        return digest.hexdigest()[:16]


# ----------------------------------------------------------------------------------------------
# Validation split
# ----------------------------------------------------------------------------------------------


def validation_split(
    y: np.ndarray,
    fraction: float,
    groups: np.ndarray | None = None,
    seed: int = VAL_SPLIT_SEED,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, val)`` (each sorted) holding out ``fraction`` of ``y``, by class.

    ``groups`` (one id per item, default: each item its own group) keeps items together: a
    group is held out whole or not at all (perturbed variants of one image, frames of one
    video). The number held out is ``round(fraction × groups)``, at least one when
    ``fraction > 0``, spread over the classes in proportion to their group counts (largest
    remainders first) and never a class's last group, so every class keeps training data.

    Raises:
        CocotuneError: ``fraction`` outside ``[0, 1)``, or a group whose items differ in label.
    """
    if not 0.0 <= float(fraction) < 1.0:
        raise CocotuneError(f"--val-fraction must be in [0, 1), not {fraction}")
    y = np.asarray(y).reshape(-1)
    groups = np.arange(len(y)) if groups is None else np.asarray(groups).reshape(-1)
    if len(groups) != len(y):
        raise ValueError(f"{len(groups)} groups for {len(y)} labels")
    if fraction == 0 or len(y) == 0:
        return np.arange(len(y)), np.zeros(0, np.int64)
    ids, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    group_label = y[first]
    if np.any(y != group_label[inverse]):
        raise CocotuneError("a group of items for the validation split mixes labels")
    classes = np.unique(group_label)
    counts = np.array([np.sum(group_label == c) for c in classes])
    target = max(1, int(round(fraction * len(ids))))
    quota = fraction * counts
    take = np.minimum(np.floor(quota).astype(int), counts - 1)
    order = np.argsort(-(quota - np.floor(quota)), kind="stable")
    while take.sum() < target and np.any(take < counts - 1):
        for i in order:
            if take.sum() >= target:
                break
            if take[i] < counts[i] - 1:
                take[i] += 1
    rng = np.random.default_rng(int(seed))
    held = np.zeros(len(ids), bool)
    for c, k in zip(classes, take):
        members = np.flatnonzero(group_label == c)
        held[rng.permutation(members)[:k]] = True
    is_val = held[inverse]
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def _take(x, idx: np.ndarray):
    """``x[idx]`` for numpy arrays and the lazy arrays below."""
    return x.take(idx) if isinstance(x, (ImageFiles, ResizedImages)) else x[idx]


def _carve_validation(ds: Dataset, fraction: float, groups: np.ndarray | None = None) -> Dataset:
    if fraction == 0:
        ds.notes.append("validation: none (--val-fraction 0)")
        ds.params.update(val_fraction=0.0, val="none")
        return ds
    train, val = validation_split(ds.y_train, fraction, groups)
    ds.x_val, ds.y_val = _take(ds.x_train, val), ds.y_train[val]
    ds.x_train, ds.y_train = _take(ds.x_train, train), ds.y_train[train]
    if groups is None:
        how = f"{len(val)} of the training images"
    else:
        how = f"{len(val)} training images, whole source images with all their variants,"
    ds.notes.append(
        f"validation: {how} held out ({fraction:g}, stratified by class, fixed seed "
        f"{VAL_SPLIT_SEED}: the same on every run)"
    )
    ds.params.update(val_fraction=float(fraction), val_seed=VAL_SPLIT_SEED, val="carved")
    return ds


# ----------------------------------------------------------------------------------------------
# Lazy image arrays
# ----------------------------------------------------------------------------------------------


class _LazyImages:
    """Shared array-like behaviour: ``len``, ``shape``, ``x[i]``, ``x[a:b]``, ``x[[i, j]]``."""

    dtype = np.dtype(np.float32)
    ndim = 4
    # Set by each subclass's __init__: the positions this view holds, and (H, W, C).
    _index: np.ndarray
    _item_shape: tuple[int, int, int]

    def __len__(self) -> int:
        return len(self._index)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self), *self._item_shape)

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return self._read(self._index[[int(key)]])[0]
        if isinstance(key, slice):
            return self._read(self._index[key])
        if isinstance(key, tuple):
            first = self[key[0]]
            rest = key[1:] if isinstance(key[0], (int, np.integer)) else (slice(None), *key[1:])
            return first[rest]
        return self._read(self._index[np.asarray(key)])

    def __array__(self, dtype=None, copy=None):
        out = self._read(self._index)
        return out if dtype is None else out.astype(dtype)

    def take(self, idx: np.ndarray):
        """A lazy view holding ``idx`` (nothing is read)."""
        view = object.__new__(type(self))
        view.__dict__.update(self.__dict__)
        view._index = self._index[np.asarray(idx, np.int64)]
        return view


#: What a :class:`Dataset` holds images in: an array, or a lazy array-like read when sliced.
Images = np.ndarray | _LazyImages


class ResizedImages(_LazyImages):
    """Small in-memory images resized (bilinear) and channel-repeated only when read.

    The built-in 8×8 digits fed to a 224×224×3 net would take 1347 × 224 × 224 × 3 × 4 bytes =
    811 MB for train alone if resized up front; resizing each batch as it is read keeps memory
    at the 8×8 originals plus one batch.
    """

    def __init__(self, source: np.ndarray, h: int, w: int, c: int) -> None:
        self._source = source
        self._item_shape = (int(h), int(w), int(c))
        self._index = np.arange(len(source))

    def _read(self, idx: np.ndarray) -> np.ndarray:
        h, w, c = self._item_shape
        x = self._source[idx]
        if x.shape[1:3] != (h, w):
            x = _resize(x, h, w)
        if x.shape[3] != c:
            x = np.repeat(x, c, axis=3)
        return x.astype(np.float32, copy=False)


class ImageFiles(_LazyImages):
    """Image files read (and resized or centre-cropped, then mean/scale applied) when sliced.

    Used for image folders too big to hold in memory; each ``x[a:b]`` decodes ``b - a`` files.
    """

    def __init__(
        self,
        files: Sequence[Path],
        h: int,
        w: int,
        c: int,
        order: str = "BGR",
        crop: bool = False,
        mean: Sequence[float] | None = None,
        scale: float | None = None,
    ) -> None:
        self._files = [Path(f) for f in files]
        self._item_shape = (int(h), int(w), int(c))
        self._index = np.arange(len(self._files))
        self._order, self._crop = order, bool(crop)
        self._mean, self._scale = mean, scale

    @property
    def files(self) -> list[Path]:
        return [self._files[i] for i in self._index]

    def _read(self, idx: np.ndarray) -> np.ndarray:
        h, w, c = self._item_shape
        out = np.empty((len(idx), h, w, c), np.float32)
        for k, i in enumerate(idx):
            out[k] = _read_image(self._files[int(i)], h, w, c, self._order, self._crop)
        return _apply_mean_scale(out, self._mean, self._scale)


def _apply_mean_scale(x: np.ndarray, mean, scale) -> np.ndarray:
    if mean is not None:
        x = x - np.asarray(mean, np.float32)
    if scale is not None:
        x = x * np.float32(scale)
    return x.astype(np.float32, copy=False)


# ----------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------


def load_dataset(
    spec: str,
    input_shape: Sequence[int],
    num_classes: int,
    seed: int = 0,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    **options,
) -> Dataset:
    """Load ``spec`` (see the module docstring), check it against the net, split validation.

    Parameters:
        spec: ``digits``, ``digits-hard[:key=value,...]``, an ``.npz`` path or a folder.
        input_shape: the net's input ``(H, W, C)`` (NHWC, without the batch axis).
        num_classes: the number of outputs of the net's classifier.
        seed: seeds ``digits-hard``'s generator (the splits never change with it).
        val_fraction: share of the training set held out for validation when the data bring
            no explicit validation part (``x_val``/``val/``); 0 gives an empty validation set.
        options: ``difficulty``/``train_variants``/``test_variants`` for ``digits-hard``,
            ``resize`` for the built-ins; ``channel_order``, ``crop``, ``memory_limit_mb`` for
            folders; ``mean`` and ``scale`` for ``.npz`` files and folders. ``None`` values
            mean "not given".

    Raises:
        CocotuneError: unknown spec, unreadable file, or data that does not fit the net.
    """
    shape = _check_input_shape(input_shape)
    if int(num_classes) < 1:
        raise CocotuneError(f"the net must output at least one class, not {num_classes}")
    num_classes = int(num_classes)
    if not 0.0 <= float(val_fraction) < 1.0:
        raise CocotuneError(f"--val-fraction must be in [0, 1), not {val_fraction}")
    options = {k: v for k, v in options.items() if v is not None and v is not False}
    name, _, args = str(spec).partition(":")
    if name in BUILTIN and (name == "digits-hard" or not args):
        resize = bool(options.pop("resize", False))
        given = sorted(set(options) & set(_TRANSFORM_KEYS + _FOLDER_KEYS))
        if given:
            raise CocotuneError(
                f"{', '.join(given)} do(es) not apply to the built-in {name} "
                "(their values are already in [0, 1])"
            )
        if name == "digits":
            if options:
                raise CocotuneError(f"unknown digits option {sorted(options)[0]!r}")
            x_tr, y_tr, x_te, y_te = load_digits_split()
            _check_digits_classes(num_classes)
            ds = Dataset("digits", x_tr, y_tr, x_te, y_te, num_classes, value_range=(0.0, 1.0))
            groups = None
        else:
            kwargs = {**_parse_hard_args(args), **options}
            unknown = sorted(set(kwargs) - set(_HARD_KEYS))
            if unknown:
                raise CocotuneError(
                    f"unknown digits-hard option {unknown[0]!r}",
                    notes=[f"known: {', '.join(_HARD_KEYS)}"],
                )
            x_tr, y_tr, x_te, y_te = make_digits_hard(seed=seed, **kwargs)
            _check_digits_classes(num_classes)
            ds = Dataset("digits-hard", x_tr, y_tr, x_te, y_te, num_classes, value_range=(0.0, 1.0))
            settings = {**_hard_defaults(), **kwargs}
            ds.notes.append(
                "digits-hard: "
                + ", ".join(f"{k}={v}" for k, v in settings.items())
                + f", seed={seed}"
            )
            ds.params.update(settings, seed=int(seed))
            # make_digits_hard is image-major: rows i*v .. i*v+v-1 are variants of image i.
            groups = np.arange(len(x_tr) // settings["train_variants"]).repeat(
                settings["train_variants"]
            )
        _carve_validation(ds, val_fraction, groups)
        return _fit_builtin(ds, shape, resize)
    path = Path(spec)
    if "resize" in options:
        raise CocotuneError(
            "--resize applies to the built-in digits only; image folders are always resized "
            "(or centre-cropped with --crop) to the net's input, .npz arrays must fit it"
        )
    if path.is_dir():
        return load_image_folder(path, shape, num_classes, val_fraction=val_fraction, **options)
    if path.is_file():
        extra = sorted(set(options) - set(_TRANSFORM_KEYS))
        if extra:
            raise CocotuneError(f"options {extra} do not apply to an .npz file")
        return load_npz(path, shape, num_classes, val_fraction=val_fraction, **options)
    close = difflib.get_close_matches(str(spec), BUILTIN, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise CocotuneError(
        f"data '{spec}' is not a built-in dataset, an .npz file or an image folder{hint}",
        notes=[
            f"built-in: {', '.join(BUILTIN)}; otherwise a path to x_train/y_train/x_test/y_test"
            " .npz or to a folder with train/<class>/ and test/<class>/ images"
        ],
    )


def _check_input_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    dims = tuple(input_shape)
    if len(dims) != 3 or not all(isinstance(d, (int, np.integer)) and d > 0 for d in dims):
        raise CocotuneError(
            f"the net's input {dims} is not an image (H, W, C); only image classifiers can be "
            "trained with --data"
        )
    return tuple(int(d) for d in dims)  # type: ignore[return-value]


def _shape_str(shape: Sequence[int]) -> str:
    return "x".join(str(d) for d in shape)


def _check_mean_scale(mean, scale, c: int) -> tuple[list[float] | None, float | None]:
    if mean is not None:
        mean = [float(v) for v in (mean if isinstance(mean, (list, tuple)) else [mean])]
        if len(mean) not in (1, c):
            raise CocotuneError(
                f"--mean gives {len(mean)} values but the net takes {c} channels "
                f"(give 1 value or {c}, in the channel order fed to the net)"
            )
        if not all(np.isfinite(mean)):
            raise CocotuneError("--mean values must be finite numbers")
    if scale is not None:
        scale = float(scale)
        if not np.isfinite(scale) or scale == 0:
            raise CocotuneError(f"--scale must be a finite non-zero number, not {scale}")
    return mean, scale


def _mean_scale_note(mean, scale) -> str:
    if mean is None and scale is None:
        return "no mean or scale applied (pass --mean/--scale if the net expects normalised input)"
    parts = []
    if mean is not None:
        parts.append("- mean " + ",".join(f"{v:g}" for v in mean))
    if scale is not None:
        parts.append(f"× {scale:g}")
    return "values: pixel " + " ".join(parts) + " (Caffe's order: mean first, then scale)"


# ----------------------------------------------------------------------------------------------
# Built-in digits
# ----------------------------------------------------------------------------------------------


def load_digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's 8×8 digits in [0, 1], as ``(N, 8, 8, 1)``, split 1347/450.

    The split is stratified and fixed (``random_state=0``) rather than seeded, because every
    configuration explored, on every MPI rank, must be scored on the very same test images.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images.astype(np.float32) / np.float32(16.0))[..., None]
    y = d.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=450, random_state=0, stratify=y)
    return x_tr, y_tr, x_te, y_te


def _check_digits_classes(num_classes: int) -> None:
    if num_classes < 10:
        raise CocotuneError(
            f"the digits datasets have 10 classes but the net outputs only {num_classes}"
        )


def _fit_builtin(ds: Dataset, shape: tuple[int, int, int], resize: bool) -> Dataset:
    """Refuse, or (``resize``) lazily resize and repeat channels, when the net is not 8×8×1."""
    h, w, c = shape
    src = ds.input_shape
    if (h, w, c) != src:
        if not resize:
            raise CocotuneError(
                f"the built-in {ds.name} are {_shape_str(src)} images but the net takes "
                f"{_shape_str(shape)}",
                notes=[
                    "give --data an .npz or an image folder that fits the net, or pass --resize "
                    f"to resize the digits to {h}x{w} (bilinear, batch by batch as read)"
                    + (f" and repeat their channel {c} times" if c != src[2] else "")
                    + " for a smoke test"
                ],
            )
        for part in ("train", "val", "test"):
            setattr(ds, f"x_{part}", ResizedImages(getattr(ds, f"x_{part}"), h, w, c))
        if (h, w) != src[:2]:
            ds.notes.append(
                f"resized from {src[0]}x{src[1]} to {h}x{w} (bilinear, --resize; batch by batch)"
            )
        if c != src[2]:
            ds.notes.append(f"the single channel repeated {c} times (--resize)")
        ds.params["resize"] = True
    if ds.num_classes > 10:
        ds.notes.append(f"the net has {ds.num_classes} outputs; labels use only 0..9")
    return ds


def _resize(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """``tf.image.resize(x, (h, w), "bilinear")`` in numpy, so loading data needs no TensorFlow.

    Same maths as TensorFlow's (half-pixel centres, edge clamping, no antialiasing), as one
    interpolation matrix per axis.
    """
    rows, cols = _interpolation_matrix(x.shape[1], h), _interpolation_matrix(x.shape[2], w)
    return np.einsum("hi,nijc,wj->nhwc", rows, x.astype(np.float64), cols).astype(np.float32)


def _interpolation_matrix(n_in: int, n_out: int) -> np.ndarray:
    pos = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    floor = np.floor(pos)
    lerp = pos - floor
    lower = np.clip(floor, 0, n_in - 1).astype(int)
    upper = np.clip(np.ceil(pos), 0, n_in - 1).astype(int)
    m = np.zeros((n_out, n_in))
    np.add.at(m, (np.arange(n_out), lower), 1.0 - lerp)
    np.add.at(m, (np.arange(n_out), upper), lerp)
    return m


def _hard_defaults() -> dict:
    return {"difficulty": 1.0, "train_variants": 4, "test_variants": 4}


def _parse_hard_args(args: str) -> dict:
    """``difficulty=0.8,train_variants=3`` → dict, with errors a user can act on."""
    out: dict = {}
    for item in filter(None, (a.strip() for a in args.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq:
            raise CocotuneError(f"digits-hard option {item!r} must be key=value")
        if key not in _HARD_KEYS:
            close = difflib.get_close_matches(key, _HARD_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise CocotuneError(f"unknown digits-hard option {key!r}{hint}")
        try:
            out[key] = float(value) if key == "difficulty" else int(value)
        except ValueError:
            raise CocotuneError(f"digits-hard option {key}={value!r} is not a number") from None
    return out


def make_digits_hard(
    difficulty: float = 1.0, train_variants: int = 4, test_variants: int = 4, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A harder, fully deterministic digits task for telling pruned networks apart.

    Plain digits is too easy: a ~170k-parameter ResNet reaches ~98.5% and every pruned
    configuration ties with it. Here each image of the fixed digits split becomes
    ``train_variants`` (resp. ``test_variants``) variants, each made by, in order:

    1. an affine warp about the centre: rotation ±12°·d, scale 1 ± 0.09·d and a sub-pixel
       shift of up to ±0.9·d px per axis (bilinear, zeros outside): strokes partly leave the
       8×8 frame;
    2. contrast ×U(1 − 0.3·d, 1) and a background offset U(0, 0.15·d);
    3. with probability 0.36·d, an occluding rectangle of 2–3 × 2–4 px of a random grey;
    4. Gaussian noise with σ = 0.072·d, then clipping to [0, 1];

    where ``d = difficulty`` (0 gives exact copies; the default 1 is the calibrated level).
    Variants of a test image never appear in training (the split is made before augmenting),
    and train and test use independent streams of ``numpy.random.default_rng((seed, split))``,
    so the data are identical on every run and every MPI rank.

    Calibration (Adam 2e-3 with cosine decay, batch 64, 30 epochs, no augmentation): a
    176k-parameter 6-module ResNet like ``examples/resnet_digits`` scores 88.8% (data seed 0)
    and 89.3% (seed 1) on the 1800 test images, against 98.4% on plain digits; difficulty 0.5
    gives 92.1%, 0.7 gives 84.5%. A 10k-parameter two-convolution CNN scores 86.4% (97.8% on
    plain digits).

    Returns:
        ``(x_train, y_train, x_test, y_test)``: ``(N, 8, 8, 1)`` float32 in [0, 1], int64 labels.
    """
    from scipy import ndimage

    if not 0.0 <= float(difficulty) <= 3.0:
        raise CocotuneError(f"digits-hard difficulty must be in [0, 3], not {difficulty}")
    for key, v in (("train_variants", train_variants), ("test_variants", test_variants)):
        if int(v) < 1:
            raise CocotuneError(f"digits-hard {key} must be at least 1, not {v}")
    d = float(difficulty)
    x_tr, y_tr, x_te, y_te = load_digits_split()

    def perturb(x: np.ndarray, y: np.ndarray, variants: int, stream: int):
        rng = np.random.default_rng((int(seed), stream))
        n = len(x)
        out = np.empty((n * variants, 8, 8, 1), np.float32)
        centre = np.array([3.5, 3.5])
        k = 0
        for i in range(n):  # image-major: variants of one image stay together
            for _ in range(variants):
                angle = np.deg2rad(rng.uniform(-12.0, 12.0) * d)
                zoom = 1.0 + rng.uniform(-0.09, 0.09) * d
                shift = rng.uniform(-0.9, 0.9, size=2) * d
                rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
                matrix = rot / zoom  # output → input coordinates
                offset = centre - matrix @ (centre + shift)
                img = ndimage.affine_transform(
                    x[i, :, :, 0], matrix, offset=offset, order=1, mode="constant", cval=0.0
                )
                img = img * rng.uniform(1.0 - 0.3 * d, 1.0) + rng.uniform(0.0, 0.15 * d)
                occlude, oh, ow = rng.random() < 0.36 * d, rng.integers(2, 4), rng.integers(2, 5)
                oy, ox, grey = (
                    rng.integers(0, 8 - oh + 1),
                    rng.integers(0, 8 - ow + 1),
                    rng.random(),
                )
                if occlude:
                    img[oy : oy + oh, ox : ox + ow] = grey
                img = img + rng.normal(0.0, 0.072 * d, size=img.shape) if d > 0 else img
                out[k, :, :, 0] = np.clip(img, 0.0, 1.0)
                k += 1
        return out, np.repeat(y, variants)

    xa, ya = perturb(x_tr, y_tr, int(train_variants), 1)
    xb, yb = perturb(x_te, y_te, int(test_variants), 2)
    return xa, ya, xb, yb


# ----------------------------------------------------------------------------------------------
# .npz
# ----------------------------------------------------------------------------------------------


def read_npz(
    path: str | Path,
    input_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], list[str]]:
    """The parts of an ``.npz`` dataset, checked: ``(images, labels, notes)``, each dict keyed
    by part (``"train"``, ``"test"`` and, when the file has them, ``"val"``).

    The one set of rules for every command that reads ``.npz`` data (``--data`` of the
    generated scripts through :func:`load_npz`, ``cocotune cocogen prune/evaluate`` through
    :func:`cocotune.cocogen.data.load_data`), so a file one command accepts the other accepts
    too. The file holds ``x_train, y_train, x_test, y_test`` and optionally both ``x_val,
    y_val``. Images are numbers, finite, cast to float32 NHWC and kept as stored otherwise;
    labels are one integer class index per image (a float that is an integer, or an ``(N, 1)``
    column, is accepted), as many as the images, none empty. Every error names the file and the
    key.

    Parameters:
        path: the ``.npz`` file.
        input_shape: the net's input ``(H, W, C)``: images may then be NHWC ``(N, H, W, C)``,
            NCHW ``(N, C, H, W)`` (transposed to NHWC) or, for one channel, ``(N, H, W)``; when
            both layouts match (e.g. 3×3×3) NHWC is assumed. ``None`` (the net is not known
            yet): ``(N, H, W)`` or NHWC ``(N, H, W, C)``, the same shape in every part.
        num_classes: labels must be in ``[0, num_classes)``; ``None``: non-negative.

    Raises:
        CocotuneError: the file cannot be read or breaks a rule above.
    """
    shape = _check_input_shape(input_shape) if input_shape is not None else None
    shown = str(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in _NPZ_KEYS if k not in z.files]
            half_val = ("x_val" in z.files) != ("y_val" in z.files)
            if missing or half_val:
                lacks = missing or [k for k in ("x_val", "y_val") if k not in z.files]
                raise CocotuneError(
                    f"'{shown}' lacks {', '.join(lacks)}",
                    notes=[
                        f"an .npz dataset holds {', '.join(_NPZ_KEYS)} and optionally both "
                        f"x_val, y_val; it has {', '.join(z.files) or 'nothing'}"
                    ],
                )
            parts = ("train", "val", "test") if "x_val" in z.files else ("train", "test")
            arrays = {k: z[k] for p in parts for k in (f"x_{p}", f"y_{p}")}
    except CocotuneError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise CocotuneError(f"cannot read '{shown}' as an .npz file: {exc}") from None
    notes: list[str] = []
    xs, ys = {}, {}
    for part in parts:
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        xs[part], layout = _npz_images(x, f"x_{part}", shape, shown)
        if layout != "NHWC":
            notes.append(f"x_{part} is {layout}; transposed to NHWC")
        if shape is None and xs[part].shape[1:] != xs["train"].shape[1:]:
            raise CocotuneError(
                f"'{shown}': x_{part} holds {_shape_str(xs[part].shape[1:])} images but x_train "
                f"holds {_shape_str(xs['train'].shape[1:])} images"
            )
        ys[part] = _npz_labels(y, f"y_{part}", num_classes, shown)
        if len(xs[part]) == 0:
            raise CocotuneError(f"'{shown}': x_{part} is empty")
        if len(xs[part]) != len(ys[part]):
            raise CocotuneError(
                f"'{shown}': x_{part} has {len(xs[part])} images but y_{part} has "
                f"{len(ys[part])} labels"
            )
    return xs, ys, notes


def load_npz(
    path: str | Path,
    input_shape: Sequence[int],
    num_classes: int,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    mean: Sequence[float] | float | None = None,
    scale: float | None = None,
) -> Dataset:
    """``x_train, y_train, x_test, y_test`` (and ``x_val, y_val``) from an ``.npz``, checked
    against the net by :func:`read_npz`.

    Values are kept as stored, cast to float32, unless ``mean``/``scale`` are given. Without
    ``x_val, y_val``, ``val_fraction`` of the training images are held out for validation.
    """
    shape = _check_input_shape(input_shape)
    mean, scale = _check_mean_scale(mean, scale, shape[2])
    shown = str(path)
    xs, ys, notes = read_npz(path, shape, num_classes)
    lo = float(min(x.min() for x in xs.values()))
    hi = float(max(x.max() for x in xs.values()))
    notes.append(_mean_scale_note(mean, scale))
    for part in xs:
        xs[part] = _apply_mean_scale(xs[part], mean, scale)
    ds = Dataset(
        shown,
        xs["train"],
        ys["train"],
        xs["test"],
        ys["test"],
        int(num_classes),
        value_range=(lo, hi),
        notes=notes,
        params={"mean": mean, "scale": scale},
    )
    if "val" in xs:
        ds.x_val, ds.y_val = xs["val"], ys["val"]
        ds.notes.append(f"validation: x_val/y_val from the file ({len(ys['val'])} images)")
        ds.params["val"] = "file"
        return ds
    return _carve_validation(ds, val_fraction)


def _guess_layout(dims: tuple[int, ...]) -> str:
    """For messages only: which layout an image shape that fits nothing most resembles."""
    if len(dims) != 4:
        return f"{len(dims)}-D"
    if dims[1] in (1, 3, 4) and dims[3] not in (1, 3, 4):
        return "NCHW"
    return "NHWC"


def _npz_images(
    x: np.ndarray, key: str, shape: tuple[int, int, int] | None, file: str
) -> tuple[np.ndarray, str]:
    if x.dtype.kind not in "biuf":
        raise CocotuneError(f"'{file}': {key} has dtype {x.dtype}; images must be numbers")
    dims = tuple(int(d) for d in x.shape)
    shown = "(N, " + ", ".join(str(d) for d in dims[1:]) + ")" if dims else "()"
    if shape is None:
        if len(dims) == 3:
            out, layout = x.astype(np.float32)[..., None], "NHW"
        elif len(dims) == 4:
            out, layout = x.astype(np.float32), "NHWC"
        else:
            raise CocotuneError(
                f"'{file}': {key} has shape {shown}; images must be (N, H, W) or (N, H, W, C)"
            )
    else:
        h, w, c = shape
        if len(dims) == 3 and c == 1 and dims[1:] == (h, w):
            out, layout = x.astype(np.float32)[..., None], "NHW"
        elif len(dims) == 4 and dims[1:] == (h, w, c):
            out, layout = x.astype(np.float32), "NHWC"
        elif len(dims) == 4 and dims[1:] == (c, h, w):
            layout = "NCHW"
            out = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).astype(np.float32)
        else:
            raise CocotuneError(
                f"'{file}': {key} has shape {shown} ({_guess_layout(dims)}) but the net takes "
                f"{_shape_str(shape)}",
                notes=[f"expected (N, {h}, {w}, {c}) (NHWC) or (N, {c}, {h}, {w}) (NCHW)"],
            )
    if not np.all(np.isfinite(out)):
        idx = int(np.argwhere(~np.isfinite(out))[0][0])
        raise CocotuneError(f"'{file}': {key}[{idx}] contains NaN or infinity")
    return out, layout


def _npz_labels(y: np.ndarray, key: str, num_classes: int | None, file: str) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        hint = " (one-hot? store y.argmax(axis=1))" if y.ndim == 2 else ""
        raise CocotuneError(
            f"'{file}': {key} has shape {y.shape}; labels must be one index per image{hint}"
        )
    if y.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(y) | (y != np.round(y)))
        if bad.size:
            i = int(bad[0])
            raise CocotuneError(
                f"'{file}': {key}[{i}] = {y[i].item()!r} is not an integer class index"
            )
    elif y.dtype.kind not in "biu":
        raise CocotuneError(
            f"'{file}': {key} has dtype {y.dtype}; labels must be integer class indices"
        )
    top = num_classes if num_classes is not None else np.inf
    bad = np.flatnonzero((y < 0) | (y >= top))
    if bad.size:
        i = int(bad[0])
        value = y[i].item()
        value = int(value) if float(value).is_integer() else value
        what = (
            f"a class of the net (it outputs {num_classes} classes: 0..{num_classes - 1})"
            if num_classes is not None
            else "a class index (0, 1, ...)"
        )
        raise CocotuneError(
            f"'{file}': {key}[{i}] = {value} is not {what}",
            notes=[f"{bad.size} label(s) out of range"] if bad.size > 1 else None,
        )
    return y.astype(np.int64)


# ----------------------------------------------------------------------------------------------
# Image folders
# ----------------------------------------------------------------------------------------------


def load_image_folder(
    root: str | Path,
    input_shape: Sequence[int],
    num_classes: int,
    channel_order: str = "BGR",
    val_fraction: float = DEFAULT_VAL_FRACTION,
    crop: bool = False,
    mean: Sequence[float] | float | None = None,
    scale: float | None = None,
    memory_limit_mb: float = 1024,
) -> Dataset:
    """``root/train/<class>/*``, ``root/test/<class>/*`` (and ``root/val/<class>/*``).

    Class names are sorted as strings (``10`` before ``2``, as Keras'
    ``image_dataset_from_directory`` does) and become indices 0, 1, ... All parts must have the
    same class folders, so an index means the same class in each. Images are read with Pillow,
    converted to gray (C = 1) or colour (C = 3), resized to the net's H×W (bilinear) when their
    size differs — or, with ``crop``, centre-cropped to it (as Caffe's ``crop_size`` at test
    time; images must then be at least H×W) — and kept as 0..255 floats before ``mean`` and
    ``scale``; colour images come in ``channel_order`` (BGR by default, like Caffe's
    OpenCV-based ImageData layer). Every file's header is opened here, so an unreadable image
    or one too small to crop fails now, not mid-training. When the decoded images would take
    more than ``memory_limit_mb``, they stay on disk and are read batch by batch
    (:class:`ImageFiles`).
    """
    shape = _check_input_shape(input_shape)
    h, w, c = shape
    if c not in (1, 3):
        raise CocotuneError(
            f"image folders give 1 (gray) or 3 (colour) channels but the net takes {c}"
        )
    order = str(channel_order).upper()
    if order not in ("BGR", "RGB"):
        raise CocotuneError(f"channel_order must be 'BGR' or 'RGB', not {channel_order!r}")
    mean, scale = _check_mean_scale(mean, scale, c)
    root = Path(root)
    layout_note = (
        f"expected {root}/train/<class>/<image>, {root}/test/<class>/<image> and optionally "
        f"{root}/val/<class>/<image>"
    )
    parts = ["train", "test"] + (["val"] if (root / "val").is_dir() else [])
    classes: dict[str, list[str]] = {}
    for part in parts:
        sub = root / part
        if not sub.is_dir():
            raise CocotuneError(
                f"image folder '{root}' has no '{part}' folder", notes=[layout_note]
            )
        names = sorted(p.name for p in sub.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not names:
            raise CocotuneError(f"'{sub}' has no class folders", notes=[layout_note])
        classes[part] = names
    for part in parts[1:]:
        if classes[part] != classes["train"]:
            only_train = sorted(set(classes["train"]) - set(classes[part]))
            only_other = sorted(set(classes[part]) - set(classes["train"]))
            diffs = []
            if only_train:
                diffs.append(f"only in train: {', '.join(only_train)}")
            if only_other:
                diffs.append(f"only in {part}: {', '.join(only_other)}")
            raise CocotuneError(
                f"the class folders of '{root}/train' and '{root}/{part}' differ "
                f"({'; '.join(diffs)})"
            )
    names = classes["train"]
    if len(names) > num_classes:
        raise CocotuneError(
            f"image folder '{root}' has {len(names)} classes but the net outputs only "
            f"{num_classes}"
        )
    files: dict[str, list[Path]] = {}
    labels: dict[str, np.ndarray] = {}
    resized = 0
    for part in parts:
        found, found_labels = [], []
        for index, name in enumerate(names):
            folder = root / part / name
            images = sorted(
                p
                for p in folder.iterdir()
                if p.is_file()
                and p.suffix.lower() in IMAGE_EXTENSIONS
                and not p.name.startswith(".")
            )
            if not images:
                raise CocotuneError(
                    f"'{folder}' has no images",
                    notes=[f"image files end in {', '.join(IMAGE_EXTENSIONS)}"],
                )
            for file in images:
                iw, ih = _image_size(file)
                if crop and (ih < h or iw < w):
                    raise CocotuneError(
                        f"image '{file}' is {ih}x{iw}, smaller than the net's {h}x{w}: it "
                        "cannot be centre-cropped (--crop)",
                        notes=["resize the images, or drop --crop to have them resized"],
                    )
                resized += (ih, iw) != (h, w)
            found += images
            found_labels += [index] * len(images)
        files[part] = found
        labels[part] = np.asarray(found_labels, np.int64)
    total = sum(len(f) for f in files.values())
    stream = total * h * w * c * 4 > float(memory_limit_mb) * 2**20
    xs: dict[str, Images] = {
        p: ImageFiles(files[p], h, w, c, order, crop, mean, scale) for p in parts
    }
    if not stream:
        xs = {p: np.asarray(x) for p, x in xs.items()}
    if crop:
        fit = f"{resized} of {total} images centre-cropped to {h}x{w}"
    elif resized:
        fit = f"{resized} of {total} images resized to {h}x{w} (bilinear)"
    else:
        fit = f"all {total} images are {h}x{w} already (none resized)"
    notes = [fit, _mean_scale_note(mean, scale)]
    if c == 3:
        notes.append(f"colour channels in {order} order")
    mb = total * h * w * c * 4 / 2**20
    notes.append(
        f"streamed from disk batch by batch ({mb:.1f} MB decoded > --memory-limit-mb "
        f"{memory_limit_mb:g})"
        if stream
        else f"held in memory ({mb:.1f} MB)"
    )
    listing = hashlib.sha256(
        "\n".join(str(f.relative_to(root)) for p in parts for f in files[p]).encode()
    ).hexdigest()[:16]
    ds = Dataset(
        str(root),
        xs["train"],
        labels["train"],
        xs["test"],
        labels["test"],
        int(num_classes),
        class_names=tuple(names),
        value_range=(0.0, 255.0),
        notes=notes,
        params={
            "mean": mean,
            "scale": scale,
            "crop": bool(crop),
            "channel_order": order,
            "files": listing,
        },
    )
    if "val" in parts:
        ds.x_val, ds.y_val = xs["val"], labels["val"]
        ds.notes.append(f"validation: the val/ folder ({len(labels['val'])} images)")
        ds.params["val"] = "folder"
        return ds
    return _carve_validation(ds, val_fraction)


def _image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` from the file header (no decoding), or a clear error."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise CocotuneError(f"cannot read image '{path}': {exc}") from None


def _read_image(path: Path, h: int, w: int, c: int, order: str, crop: bool = False) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            im = opened.convert("L" if c == 1 else "RGB")
            if im.size != (w, h):
                if crop:
                    # Caffe's TEST-phase crop: integer centre offsets (floor).
                    left, top = (im.size[0] - w) // 2, (im.size[1] - h) // 2
                    im = im.crop((left, top, left + w, top + h))
                else:
                    im = im.resize((w, h), Image.Resampling.BILINEAR)
            arr = np.asarray(im, dtype=np.float32)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise CocotuneError(f"cannot read image '{path}': {exc}") from None
    if c == 1:
        return arr[..., None]
    return arr[..., ::-1] if order == "BGR" else arr


# ----------------------------------------------------------------------------------------------
# tf.data and MPI sharding
# ----------------------------------------------------------------------------------------------


def make_tf_dataset(
    x,
    y: np.ndarray,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    repeat: bool = False,
    preprocess: Callable | None = None,
):
    """A batched, prefetched ``tf.data.Dataset`` of ``(x, y)``, reproducible for a given seed.

    ``x`` is a numpy array or a lazy array (:class:`ImageFiles`, :class:`ResizedImages`), which
    is read batch by batch, never whole. Order: shuffle (whole set, fixed ``seed``, a new order
    every epoch) → repeat → batch →
    ``preprocess`` → prefetch. ``preprocess`` gets whole batches (e.g. a
    :class:`~cocotune.runtime.preprocess.CaffeTransform`). If it takes a ``seed`` keyword it
    receives a distinct stateless seed ``(seed, batch index)`` per batch, so random crops and
    mirrors are the same on every run even with parallel map calls.
    """
    import tensorflow as tf

    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be positive, not {batch_size}")
    if len(x) != len(y):
        raise ValueError(f"{len(x)} images but {len(y)} labels")
    if isinstance(x, np.ndarray):
        ds = tf.data.Dataset.from_tensor_slices((np.asarray(x, np.float32), np.asarray(y)))
        if shuffle:
            ds = ds.shuffle(len(x), seed=int(seed), reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat()
        ds = ds.batch(int(batch_size))
    else:
        ds = _streamed(x, np.asarray(y), int(batch_size), shuffle, int(seed), repeat)
    if preprocess is not None:
        if _accepts_seed(preprocess):
            base = tf.constant(int(seed), tf.int64)

            def apply_seeded(i, xy):
                return preprocess(xy[0], seed=tf.stack([base, i])), xy[1]

            ds = ds.enumerate().map(
                apply_seeded, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
            )
        else:
            ds = ds.map(
                lambda xb, yb: (preprocess(xb), yb),
                num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True,
            )
    return ds.prefetch(tf.data.AUTOTUNE)


def _streamed(x, y: np.ndarray, batch_size: int, shuffle: bool, seed: int, repeat: bool):
    """Batches of an array-like read on demand: indices are shuffled and batched, then each
    batch of indices is read with ``x[indices]`` (same order as the in-memory path for the
    same seed, since both shuffle ``range(len(x))`` with one shuffle buffer)."""
    import tensorflow as tf

    item_shape = tuple(int(d) for d in x.shape[1:])
    ds = tf.data.Dataset.range(len(y))
    if shuffle:
        ds = ds.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size)

    def read(idx):
        idx = np.asarray(idx, np.int64)
        return np.asarray(x[idx], np.float32), y[idx]

    def load(idx):
        xb, yb = tf.numpy_function(read, [idx], (tf.float32, tf.as_dtype(y.dtype)))
        xb.set_shape((None, *item_shape))
        yb.set_shape((None,))
        return xb, yb

    return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _accepts_seed(fn: Callable) -> bool:
    try:
        return "seed" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def split_for_ranks(n: int, rank: int, size: int) -> slice:
    """The contiguous part of ``range(n)`` that MPI rank ``rank`` of ``size`` handles.

    Contiguous, not strided, so that concatenating the parts in rank order gives back the
    original order and rank 0 can merge per-rank predictions without an index map. Part sizes
    differ by at most one (the first ``n % size`` ranks get one more); when ``n < size`` the
    last ranks get empty parts, so combine counts (correct, total), never per-rank accuracies.
    """
    if size < 1:
        raise ValueError(f"size must be positive, not {size}")
    if not 0 <= rank < size:
        raise ValueError(f"rank {rank} is not in [0, {size})")
    if n < 0:
        raise ValueError(f"n must be non-negative, not {n}")
    base, extra = divmod(int(n), int(size))
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))
