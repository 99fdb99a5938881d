"""Caffe's ``transform_param`` (TransformationParameter) as TensorFlow ops on NHWC batches.

A Caffe data layer hands every image to ``DataTransformer::Transform`` (BVLC
``src/caffe/data_transformer.cpp``), which computes, per element of the output::

    out[c, h, w'] = (in[c, h_off + h, w_off + w] - mean[c, h_off + h, w_off + w]) * scale
    w' = width - 1 - w if mirrored else w

so the order is: subtract the mean *at the source pixel* (a ``mean_file`` image is therefore
cropped at the same offset as the data; ``mean_value`` is one value per channel, or one for all),
crop (``crop_size``: TRAIN picks ``Rand(H - crop + 1)`` per image, TEST takes the integer centre
``(H - crop) / 2``), mirror (``mirror: true``: each image flipped left-right with probability
1/2), then multiply by ``scale``. :class:`CaffeTransform` does the same, in float32, which gives
bit-identical results to Caffe's float arithmetic for the deterministic (TEST) path.

Two deliberate differences, both documented in :class:`CaffeTransform`:

* Caffe mirrors whenever ``mirror`` is set, in TEST as well (``do_mirror = mirror() &&
  Rand(2)`` has no phase check). We mirror only when training, unless ``mirror_at_test=True``:
  evaluation must be deterministic to compare pruned configurations, and a TEST layer with
  ``mirror: true`` is nearly always a copy of the TRAIN layer.
* ``force_color`` / ``force_gray`` act in Caffe only while decoding encoded (JPEG/PNG) datums.
  Our data are already decoded, so we apply them as a channel conversion: gray → 3 equal
  channels, or 3 channels → luminance assuming BGR order (OpenCV's weights 0.114 B + 0.587 G +
  0.299 R).

Caffe data usually come from an LMDB as uint8 **BGR**; we cannot reproduce the database, so the
channel order (and 0..255 vs 0..1 values) of the arrays fed here is the user's responsibility;
:mod:`cocotune.runtime.data` documents what each loader returns.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cocotune._proto import caffe_pb2
from cocotune.errors import CocotuneError

__all__ = ["CaffeTransform", "read_mean_file"]

_FIELDS = ("scale", "mirror", "crop_size", "mean_file", "mean_value", "force_color", "force_gray")
_BGR_TO_GRAY = (0.114, 0.587, 0.299)


def read_mean_file(path: str | Path) -> np.ndarray:
    """A ``mean_file`` (binaryproto ``BlobProto``, 1×C×H×W) as a float32 ``(H, W, C)`` image.

    Accepts the legacy ``num/channels/height/width`` fields and the newer ``shape`` (4-D with
    N = 1, or 3-D C×H×W), with values in ``data`` or ``double_data``, as ``Blob::FromProto``.
    """
    p = Path(path)
    if not p.is_file():
        what = "it is a directory" if p.is_dir() else "no such file"
        raise CocotuneError(f"cannot read mean_file '{path}': {what}")
    blob = caffe_pb2.BlobProto()
    try:
        blob.ParseFromString(p.read_bytes())
    except Exception as exc:  # protobuf raises DecodeError, or RuntimeWarning-ish subclasses
        raise CocotuneError(
            f"mean_file '{path}' is not a binaryproto BlobProto ({exc.__class__.__name__})"
        ) from None
    if blob.HasField("shape"):
        dims = tuple(int(d) for d in blob.shape.dim)
    else:
        dims = (blob.num, blob.channels, blob.height, blob.width)
    if len(dims) == 3:
        dims = (1, *dims)
    if len(dims) != 4 or dims[0] != 1 or min(dims) < 1:
        raise CocotuneError(
            f"mean_file '{path}' holds a blob of shape {dims}; a mean image is 1xCxHxW"
        )
    values = np.asarray(blob.data if len(blob.data) else blob.double_data, dtype=np.float32)
    if values.size != int(np.prod(dims)):
        raise CocotuneError(
            f"mean_file '{path}' declares shape {'x'.join(map(str, dims))} "
            f"({int(np.prod(dims))} values) but holds {values.size} values"
        )
    return np.ascontiguousarray(values.reshape(dims)[0].transpose(1, 2, 0))


class CaffeTransform:
    """Caffe's data transformation for NHWC batches, usable in ``tf.data`` and ``tf.function``.

    Parameters:
        param: a ``caffe_pb2.TransformationParameter`` (e.g. ``layer.transform_param``) or
            ``None`` to build one from ``fields``.
        phase: the phase the layer belongs to, ``"TRAIN"``/``"TEST"`` (or ``caffe_pb2.TRAIN``);
            it decides what a call without ``training=`` does.
        mean_path: where to read ``mean_file`` from. Caffe opens ``mean_file`` relative to its
            working directory; generated packages run elsewhere, so the caller resolves the path
            (e.g. relative to the prototxt) and passes it here. Given without ``mean_file`` in
            ``param``, it acts as one.
        seed: seeds the stateful generator used when a call passes no ``seed``.
        mirror_at_test: mirror randomly at evaluation too, exactly as Caffe does (default off:
            see the module docstring).
        fields: TransformationParameter fields (``scale=0.00390625, crop_size=24, ...``).

    Raises:
        CocotuneError: both ``mean_file`` and ``mean_value`` (Caffe: "Cannot specify mean_file
            and mean_value at the same time"), both ``force_color`` and ``force_gray``, an
            unreadable mean file, or an unknown field.

    Example:
        >>> t = CaffeTransform(scale=0.5, mean_value=[2.0], phase="TEST")
        >>> float(t(np.full((1, 2, 2, 1), 4.0, np.float32))[0, 0, 0, 0])
        1.0
    """

    def __init__(
        self,
        param: caffe_pb2.TransformationParameter | Mapping[str, Any] | None = None,
        phase: str | int = "TRAIN",
        mean_path: str | Path | None = None,
        seed: int = 0,
        mirror_at_test: bool = False,
        **fields: Any,
    ) -> None:
        if isinstance(param, Mapping):
            fields = {**param, **fields}
            param = None
        if param is not None and fields:
            raise TypeError("pass either a TransformationParameter or fields, not both")
        self.param = param if param is not None else _param_from_fields(fields)
        self.phase = _phase_name(phase)
        self.seed = int(seed)
        self.mirror_at_test = bool(mirror_at_test)
        p = self.param
        if p.force_color and p.force_gray:
            raise CocotuneError("transform_param: cannot set both force_color and force_gray")
        if p.crop_size < 0:  # uint32 in the schema; guard hand-built messages anyway
            raise CocotuneError(f"transform_param: crop_size must be >= 0, not {p.crop_size}")
        mean_source = mean_path if mean_path is not None else (p.mean_file or None)
        if mean_source is not None and len(p.mean_value):
            raise CocotuneError(
                "transform_param: cannot specify mean_file and mean_value at the same time"
            )
        self.mean_path = str(mean_source) if mean_source is not None else None
        self.mean_image = read_mean_file(mean_source) if mean_source is not None else None
        self.mean_values = [float(v) for v in p.mean_value]
        self._generator = None
        if p.mirror or p.crop_size:
            # Created here, eagerly: a tf.function or tf.data map may not create variables.
            import tensorflow as tf

            self._generator = tf.random.Generator.from_seed(self.seed)

    # ------------------------------------------------------------------------------------------
    @property
    def is_identity(self) -> bool:
        """True when the transform changes nothing (callers may then skip it)."""
        p = self.param
        return (
            p.scale == 1.0
            and not p.mirror
            and not p.crop_size
            and self.mean_image is None
            and not self.mean_values
            and not p.force_color
            and not p.force_gray
        )

    def output_shape(self, input_shape: Sequence[int]) -> tuple[int, int, int]:
        """``(H, W, C)`` after the transform, checking the input as Caffe's CHECKs do."""
        h, w, c = (int(d) for d in input_shape)
        p = self.param
        if p.force_color:
            c = 3 if c in (1, 3) else c
        elif p.force_gray:
            c = 1 if c in (1, 3) else c
        if (p.force_color or p.force_gray) and int(input_shape[2]) not in (1, 3):
            raise CocotuneError(
                "transform_param: force_color/force_gray need 1 or 3 channels, "
                f"not {input_shape[2]}"
            )
        crop = int(p.crop_size)
        if crop and (crop > h or crop > w):
            raise CocotuneError(
                f"transform_param: crop_size {crop} is larger than the {h}x{w} images"
            )
        if self.mean_image is not None and self.mean_image.shape != (h, w, c):
            mh, mw, mc = self.mean_image.shape
            raise CocotuneError(
                f"mean_file '{self.mean_path}' is {mc}x{mh}x{mw} (CxHxW) but the images are "
                f"{c}x{h}x{w}; Caffe subtracts the mean before cropping, so it must match the "
                "uncropped images"
            )
        if self.mean_values and len(self.mean_values) not in (1, c):
            raise CocotuneError(
                f"transform_param: specify either 1 mean_value or as many as channels ({c}), "
                f"not {len(self.mean_values)}"
            )
        return (crop, crop, c) if crop else (h, w, c)

    def describe(self) -> str:
        """The operations in Caffe's order, for logs and the generated README."""
        p = self.param
        steps = []
        if p.force_color:
            steps.append("gray -> 3 channels (force_color)")
        if p.force_gray:
            steps.append("BGR -> gray (force_gray)")
        if self.mean_image is not None:
            h, w, c = self.mean_image.shape
            steps.append(f"subtract mean image {self.mean_path} ({c}x{h}x{w})")
        elif self.mean_values:
            steps.append("subtract mean_value " + ", ".join(f"{v:g}" for v in self.mean_values))
        if p.crop_size:
            steps.append(f"crop {p.crop_size}x{p.crop_size} (training: random; else: centre)")
        if p.mirror:
            when = "training and evaluation" if self.mirror_at_test else "training only"
            steps.append(f"random left-right mirror ({when})")
        if p.scale != 1.0:
            steps.append(f"scale by {p.scale:g}")
        body = " -> ".join(steps) if steps else "identity"
        return f"Caffe transform_param ({self.phase}): {body}"

    def __repr__(self) -> str:
        return f"CaffeTransform({self.describe()!r})"

    # ------------------------------------------------------------------------------------------
    def __call__(self, x, training: bool | None = None, seed=None):
        """Transform a batch ``(N, H, W, C)``; returns float32 ``(N, H', W', C')``.

        Parameters:
            x: NHWC images (any numeric dtype; uint8 is converted as Caffe does, exactly).
            training: random crop and mirror (TRAIN) or centre crop and no mirror (TEST);
                a Python bool; ``None`` means ``phase == "TRAIN"``.
            seed: optional shape-[2] integer tensor; when given, randomness uses stateless
                ops seeded by it (what ``make_tf_dataset`` passes, one seed per batch), so
                results do not depend on call order. Otherwise a generator seeded with the
                constructor's ``seed`` is used.
        """
        import tensorflow as tf

        training = (self.phase == "TRAIN") if training is None else bool(training)
        x = tf.convert_to_tensor(x)
        if x.shape.rank != 4:
            raise ValueError(f"CaffeTransform expects an NHWC batch, got shape {x.shape}")
        x = tf.cast(x, tf.float32)
        static = x.shape[1:]
        if static.is_fully_defined():
            self.output_shape(static.as_list())
        p = self.param
        if p.force_color and x.shape[-1] == 1:
            x = tf.repeat(x, 3, axis=-1)
        elif p.force_gray and x.shape[-1] == 3:
            x = tf.reduce_sum(x * tf.constant(_BGR_TO_GRAY, tf.float32), axis=-1, keepdims=True)
        if self.mean_image is not None:
            x = x - tf.constant(self.mean_image)
        elif self.mean_values:
            x = x - tf.constant(np.asarray(self.mean_values, np.float32))
        do_mirror = bool(p.mirror) and (training or self.mirror_at_test)
        crop = int(p.crop_size)
        if crop or do_mirror:
            seeds = self._seeds(seed)
            if crop:
                x = self._crop(x, crop, training, seeds)
            if do_mirror:
                x = self._mirror(x, seeds)
        if p.scale != 1.0:
            x = x * tf.constant(p.scale, tf.float32)
        return x

    def _seeds(self, seed):
        """Three independent randomness sources (crop rows, crop columns, mirror)."""
        import tensorflow as tf

        if seed is not None:
            s = tf.cast(tf.convert_to_tensor(seed), tf.int64)
            return list(tf.unstack(tf.random.experimental.stateless_split(s, 3)))
        return [self._generator] * 3

    @staticmethod
    def _uniform_int(source, n, maxval):
        """Integers in ``[0, maxval)``, like Caffe's ``Rand(maxval)``, from a seed or generator."""
        import tensorflow as tf

        if isinstance(source, tf.random.Generator):
            return source.uniform([n], 0, maxval, dtype=tf.int32)
        return tf.random.stateless_uniform([n], tf.cast(source, tf.int64), 0, maxval, tf.int32)

    def _crop(self, x, crop: int, training: bool, seeds):
        import tensorflow as tf

        shape = tf.shape(x)
        n, h, w = shape[0], shape[1], shape[2]
        if not training:
            # Caffe: h_off = (datum_height - crop_size) / 2, integer division (floor).
            h_off, w_off = (h - crop) // 2, (w - crop) // 2
            return x[:, h_off : h_off + crop, w_off : w_off + crop, :]
        h_off = self._uniform_int(seeds[0], n, h - crop + 1)
        w_off = self._uniform_int(seeds[1], n, w - crop + 1)
        steps = tf.range(crop, dtype=tf.int32)
        rows = h_off[:, None] + steps[None, :]
        cols = w_off[:, None] + steps[None, :]
        x = tf.gather(x, rows, axis=1, batch_dims=1)
        return tf.gather(x, cols, axis=2, batch_dims=1)

    def _mirror(self, x, seeds):
        import tensorflow as tf

        flip = self._uniform_int(seeds[2], tf.shape(x)[0], 2) > 0
        return tf.where(flip[:, None, None, None], tf.reverse(x, axis=[2]), x)


def _phase_name(phase: str | int) -> str:
    if isinstance(phase, str) and phase.upper() in ("TRAIN", "TEST"):
        return phase.upper()
    if phase in (caffe_pb2.TRAIN, caffe_pb2.TEST) and not isinstance(phase, bool):
        return "TRAIN" if phase == caffe_pb2.TRAIN else "TEST"
    raise ValueError(f"phase must be 'TRAIN' or 'TEST', not {phase!r}")


def _param_from_fields(fields: Mapping[str, Any]) -> caffe_pb2.TransformationParameter:
    """Build a TransformationParameter, naming unknown fields with a suggestion."""
    param = caffe_pb2.TransformationParameter()
    for key, value in fields.items():
        if key not in _FIELDS:
            close = difflib.get_close_matches(key, _FIELDS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise CocotuneError(f"unknown transform_param field {key!r}{hint}")
        if value is None:
            continue
        if key == "mean_value":
            values: list[Any] = [value] if np.isscalar(value) else list(value)  # float() checks
            param.mean_value.extend(float(v) for v in values)
        else:
            try:
                setattr(param, key, value)
            except (TypeError, ValueError) as exc:
                raise CocotuneError(f"transform_param: bad {key} {value!r}: {exc}") from None
    return param
