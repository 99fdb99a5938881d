"""Fields that Caffe forks added to caffe.proto and BVLC Caffe (our schema) does not have.

A field in this table is not a typo: the file was written for a fork (SSD, Faster R-CNN, ...)
whose training nets cocotune cannot run. The frontend skips such a field, keeps reading, and
reports every one of them (with the fork that defines it) together with the unsupported layer
types, so that one run of ``cocotune check`` tells the user everything the file needs.
"""

from __future__ import annotations

from cocotune.errors import UnsupportedLayerError

SSD = "SSD fork (weiliu89/caffe)"
FASTER_RCNN = "Faster R-CNN fork (rbgirshick/caffe-fast-rcnn)"
RFCN = "R-FCN fork (daijifeng001/caffe-rfcn)"
SEGNET = "SegNet fork (alexgkendall/caffe-segnet)"
DEEPLAB = "DeepLab/PSPNet forks"
YOLO = "YOLO forks"

# (message type in caffe.proto, field name) -> the fork that defines the field.
FORK_FIELDS: dict[tuple[str, str], str] = {
    **{
        ("LayerParameter", name): SSD
        for name in (
            "annotated_data_param",
            "multibox_loss_param",
            "permute_param",
            "prior_box_param",
            "detection_output_param",
            "detection_evaluate_param",
            "norm_param",
            "video_data_param",
        )
    },
    ("LayerParameter", "normalize_param"): "SSD-style forks",
    ("LayerParameter", "roi_pooling_param"): FASTER_RCNN,
    ("LayerParameter", "smooth_l1_loss_param"): FASTER_RCNN,
    ("LayerParameter", "proposal_param"): "Faster R-CNN C++ forks",
    ("LayerParameter", "psroi_pooling_param"): RFCN,
    ("LayerParameter", "box_annotator_ohem_param"): RFCN,
    ("LayerParameter", "interp_param"): DEEPLAB,
    ("LayerParameter", "upsample_param"): SEGNET,
    ("LayerParameter", "bn_param"): SEGNET,
    ("LayerParameter", "reorg_param"): YOLO,
    ("LayerParameter", "region_loss_param"): YOLO,
    **{
        ("TransformationParameter", name): SSD
        for name in (
            "resize_param",
            "noise_param",
            "emit_constraint",
            "distort_param",
            "expand_param",
            "crop_h",
            "crop_w",
        )
    },
    ("DropoutParameter", "scale_train"): FASTER_RCNN,
    **{
        ("SolverParameter", name): SSD
        for name in (
            "eval_type",
            "ap_version",
            "show_per_class_result",
        )
    },
}


def fork_of(message: str, field: str) -> str | None:
    """The fork that defines ``message.field``, or None when no fork we know of has it."""
    return FORK_FIELDS.get((message, field))


class ForkFieldError(UnsupportedLayerError):
    """A field only a Caffe fork defines: not a typo, but cocotune cannot honour it."""

    field_name: str  # the fork field (set by cocotune.frontend.to_proto)
