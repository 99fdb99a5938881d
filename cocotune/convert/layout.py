"""How each Caffe blob is laid out inside TensorFlow, and Caffe axes → TensorFlow axes.

Caffe blobs are NCHW; the generated model is NHWC (what Keras and TensorFlow's CPU kernels
are fast at). A rank-4 blob is therefore held transposed. A rank-4 blob flattened without a
transpose keeps its values in (H, W, C) order instead of Caffe's (C, H, W): that is fine as
long as the only reader is an InnerProduct, whose weight columns are permuted once at import
(no transpose at run time). Every other blob is held exactly as Caffe holds it.
"""

from __future__ import annotations

from dataclasses import dataclass

NCHW_TO_NHWC_AXIS = {0: 0, 1: 3, 2: 1, 3: 2}


@dataclass(frozen=True)
class Layout:
    """``kind``: "nhwc" (rank-4, transposed), "plain" (Caffe order) or "hwc_flat".

    ``chw`` is the (C, H, W) a "hwc_flat" blob was flattened from.
    """

    kind: str
    chw: tuple[int, int, int] | None = None


NHWC = Layout("nhwc")
PLAIN = Layout("plain")


def layout_for_shape(shape: tuple[int, ...]) -> Layout:
    """The layout a blob of this Caffe shape has when a layer produces it normally."""
    return NHWC if len(shape) == 4 else PLAIN


def tf_axis(caffe_axis: int, layout: Layout, rank: int) -> int:
    """The TensorFlow axis holding Caffe axis ``caffe_axis`` of a blob with this layout."""
    axis = caffe_axis % rank
    if layout.kind == "nhwc":
        return NCHW_TO_NHWC_AXIS[axis]
    return axis


def tf_shape(shape: tuple[int, ...], layout: Layout) -> tuple[int, ...]:
    """The TensorFlow shape of a Caffe blob (batch axis included)."""
    if layout.kind == "nhwc":
        n, c, h, w = shape
        return (n, h, w, c)
    return tuple(shape)
