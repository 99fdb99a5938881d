"""Caffe types cocotune recognises but does not support, and why (reported all at once).

Registered in the catalogue with ``unsupported=`` and no shape rule, so that
:mod:`cocotune.frontend.problems` lists every such layer of a net in one report, with the
reason, instead of failing on the first unknown type. Mostly fork layers (SSD, Faster R-CNN,
YOLO...) and recurrent layers. Kept apart from the rules: nothing here computes a shape.
"""

from __future__ import annotations

from cocotune.ir.catalogue import register

for _type, _why in {
    "AnnotatedData": "SSD fork (weiliu89/caffe): reads images with boxes, samples and distorts them",
    "VideoData": "SSD fork (weiliu89/caffe): reads frames from a video or webcam",
    "PriorBox": "SSD fork (weiliu89/caffe): generates the default (prior) boxes",
    "Permute": "SSD fork (weiliu89/caffe): axis permutation of box predictions",
    "Normalize": "SSD fork (weiliu89/caffe): L2 normalisation with a learned scale",
    "MultiBoxLoss": "SSD fork (weiliu89/caffe): box matching, hard negative mining, SSD loss",
    "DetectionOutput": "SSD fork (weiliu89/caffe): box decoding and non-maximum suppression",
    "DetectionEvaluate": "SSD fork (weiliu89/caffe): detection mAP metric",
    "ROIPooling": "Faster R-CNN fork (rbgirshick/caffe-fast-rcnn): region-of-interest pooling",
    "SmoothL1Loss": "Faster R-CNN fork (rbgirshick/caffe-fast-rcnn): box regression loss",
    "Proposal": "Faster R-CNN C++ forks: region proposals with NMS",
    "PSROIPooling": "R-FCN fork (daijifeng001/caffe-rfcn): position-sensitive ROI pooling",
    "Python": "Python layer: runs user code that cocotune cannot see",
    "Interp": "DeepLab/PSPNet forks: bilinear interpolation",
    "Upsample": "SegNet fork (alexgkendall/caffe-segnet): unpooling",
    "Reorg": "YOLO forks: space-to-depth reorganisation",
    "Region": "YOLO forks: region (box) output",
    "HDF5Output": "writes blobs to disk (no forward result)",
    "Im2col": "im2col (internal helper layer)",
    "SPP": "spatial pyramid pooling",
    "Recurrent": "recurrent layer",
    "RNN": "recurrent layer",
    "LSTM": "recurrent layer",
    "LSTMUnit": "recurrent layer",
    "BatchReindex": "batch reindexing",
    "Filter": "batch filtering",
    "Parameter": "parameter blob layer",
}.items():
    register(_type, unsupported=_why)
