"""Every real Prototxt in ../shared/corpus checks cleanly or fails with its documented message.

Golden shapes come from the networks' publications (checked by hand, not by running our
code): AlexNet pool5 256x6x6 (Krizhevsky et al. 2012), GoogLeNet's table 1 (Szegedy et al.
2015), ResNet-50/152 table 1 (He et al. 2016), VGG-16 pool5 512x7x7, SqueezeNet table 1
(conv1 96x111x111, fire9 512x13x13), MobileNet table 1 (1024x7x7), DenseNet-121 table 1.
"""

from __future__ import annotations

import pytest

from cocotune.errors import CocotuneError
from cocotune.frontend.load import load_net, load_solver
from tests.conftest import corpus_file, corpus_files

# Nets whose data come from a database: the shape Caffe would read (batch from the file).
DATA_INPUTS = {
    "cifar10__BVLC__cifar10_full_sigmoid_train_test_bn.prototxt": {"data": (100, 3, 32, 32)},
    "cifar10__BVLC__cifar10_full_train_test.prototxt": {"data": (100, 3, 32, 32)},
    "lenet__BVLC__lenet_train_test.prototxt": {"data": (100, 1, 28, 28)},
    "siamese__BVLC__mnist_siamese_train_test.prototxt": {"pair_data": (100, 2, 28, 28)},
    "squeezenet__forresti__SqueezeNet_v1.1-train_val.prototxt": {"data": (25, 3, 227, 227)},
}
# The autoencoder's TEST data layers need a stage (Caffe fails the same way without one).
STAGES = {"autoencoder__BVLC__mnist_autoencoder.prototxt": ["test-on-test"]}

# Files that must fail, and the message they fail with.
EXPECTED_FAILURES = {
    # Two layers named "loss": Caffe tolerates it (names only matter for weight sharing), but
    # cocotune matches weights and Keras layers by name, so it must be unambiguous.
    "autoencoder__BVLC__mnist_autoencoder.prototxt": ["duplicate layer name 'loss'"],
    # One error for all 19 detection layers: each type once with a caret, the other layers of
    # that type in a note (12 Permute layers would otherwise fill the screen).
    "ssd__chuanqi305__MobileNetSSD_deploy.prototxt": [
        "unsupported type 'Permute' (SSD fork (weiliu89/caffe)",
        "unsupported type 'PriorBox' (SSD fork (weiliu89/caffe)",
        "unsupported type 'DetectionOutput' (SSD fork (weiliu89/caffe)",
        "note: 11 more 'Permute' layer(s): 'conv11_mbox_conf_perm' (line 1220)",
        "error: 19 problems (unsupported types: DetectionOutput (1 layer), Permute (12 layers), "
        "PriorBox (6 layers))",
    ],
    "fasterrcnn__rbgirshick__pascal_voc-VGG16-faster_rcnn_end2end-test.prototxt": [
        "unsupported type 'Python' (Python layer rpn.proposal_layer.ProposalLayer",
        "unsupported type 'ROIPooling' (Faster R-CNN fork (rbgirshick/caffe-fast-rcnn)",
        "error: 2 problems (unsupported types: Python (1 layer), ROIPooling (1 layer))",
    ],
}
DATA_INPUTS["autoencoder__BVLC__mnist_autoencoder.prototxt"] = {"data": (100, 1, 28, 28)}

NETS = [p for p in corpus_files() if not p.name.startswith("solver__")]
SOLVERS = corpus_files("solver__*.prototxt")


@pytest.mark.parametrize("path", NETS, ids=[p.name for p in NETS])
def test_corpus_net(path):
    if path.name in EXPECTED_FAILURES:
        with pytest.raises(CocotuneError) as info:
            load_net(path, input_shapes=DATA_INPUTS.get(path.name), stages=STAGES.get(path.name))
        text = info.value.render()
        for fragment in EXPECTED_FAILURES[path.name]:
            assert fragment in text
        return
    net = load_net(path, input_shapes=DATA_INPUTS.get(path.name), stages=STAGES.get(path.name))
    assert net.layers
    for blob in net.blobs:
        assert blob.shape is not None, f"blob {blob.name} has no shape"
        assert all(d > 0 for d in blob.shape), (blob.name, blob.shape)


def test_corpus_data_nets_ask_only_for_what_the_file_does_not_say():
    path = corpus_file("lenet__BVLC__lenet_train_test.prototxt")
    with pytest.raises(CocotuneError) as info:
        load_net(path)
    assert info.value.message == (
        "layer 'mnist' (Data) reads its data shape from its source; the file determines N=100 "
        "from data_param.batch_size (line 32); C, H, W are unknown (they are stored with the "
        "images in the database; one mean_value per channel would tell C; "
        "transform_param.crop_size would tell H and W): give --input-shape data=100,C,H,W"
    )
    with pytest.raises(CocotuneError) as info:
        load_net(path, phase="TRAIN")
    assert "N=64 from data_param.batch_size (line 15)" in info.value.message
    assert info.value.message.endswith("give --input-shape data=64,C,H,W")
    path = corpus_file("cifar10__BVLC__cifar10_full_train_test.prototxt")
    with pytest.raises(CocotuneError) as info:
        load_net(path)
    assert info.value.message.endswith("give --input-shape data=100,C,H,W")


@pytest.mark.parametrize(
    "name,phase,shape,said",
    [
        (
            "squeezenet__forresti__SqueezeNet_v1.1-train_val.prototxt",
            "TEST",
            (25, 3, 227, 227),
            "N=25 from data_param.batch_size (line 44); C=3 from 3 mean_value (line 38); "
            "H,W=227,227 from transform_param.crop_size (line 37)",
        ),
        (
            "squeezenet__forresti__SqueezeNet_v1.1-train_val.prototxt",
            "TRAIN",
            (32, 3, 227, 227),
            "N=32 from data_param.batch_size (line 24)",
        ),
        (
            "caffenet__BVLC__finetune_flickr_style-train_val.prototxt",
            "TEST",
            (50, 3, 227, 227),
            "N=50 from image_data_param.batch_size (line 37); C=3 from image_data_param.is_color "
            "(default true); H,W=227,227 from transform_param.crop_size (line 32)",
        ),
        (
            "caffenet__BVLC__finetune_flickr_style-train_val.prototxt",
            "TRAIN",
            (50, 3, 227, 227),
            "H,W=227,227 from transform_param.crop_size",
        ),
    ],
)
def test_corpus_data_shapes_inferred_from_the_file(name, phase, shape, said):
    net = load_net(corpus_file(name), phase=phase)
    assert net.final_blobs()["data"].shape == shape
    assert net.final_blobs()["label"].shape == shape[:1]
    assert len(net.notes) == 1 and said in net.notes[0]
    assert net.notes[0].startswith(f"layer 'data' ({net.layers[0].type}): 'data' ")


def test_autoencoder_without_stage_explains_the_rule():
    path = corpus_file("autoencoder__BVLC__mnist_autoencoder.prototxt")
    with pytest.raises(CocotuneError, match="include/exclude rules leave it out of the TEST"):
        load_net(path, input_shapes={"data": (1, 1, 28, 28)})
    # With the stage its TEST data layer asks for, it gets as far as its duplicate names.
    with pytest.raises(CocotuneError, match="duplicate layer name 'loss'"):
        load_net(path, input_shapes={"data": (1, 1, 28, 28)}, stages=["test-on-test"])


@pytest.mark.parametrize("path", SOLVERS, ids=[p.name for p in SOLVERS])
def test_corpus_solver(path):
    solver = load_solver(path)
    assert solver.base_lr > 0


GOLDEN = {
    "alexnet__BVLC__bvlc_alexnet-deploy.prototxt": {
        "conv1": (10, 96, 55, 55),
        "pool1": (10, 96, 27, 27),
        "pool2": (10, 256, 13, 13),
        "pool5": (10, 256, 6, 6),
        "fc6": (10, 4096),
    },
    "inception__BVLC__bvlc_googlenet-deploy.prototxt": {
        "conv1/7x7_s2": (10, 64, 112, 112),
        "pool1/3x3_s2": (10, 64, 56, 56),
        "inception_3a/output": (10, 256, 28, 28),
        "inception_3b/output": (10, 480, 28, 28),
        "inception_4a/output": (10, 512, 14, 14),
        "inception_4e/output": (10, 832, 14, 14),
        "inception_5b/output": (10, 1024, 7, 7),
        "pool5/7x7_s1": (10, 1024, 1, 1),
    },
    "resnet__KaimingHe__ResNet-50-deploy.prototxt": {
        "conv1": (1, 64, 112, 112),
        "pool1": (1, 64, 56, 56),
        "res2c": (1, 256, 56, 56),
        "res3d": (1, 512, 28, 28),
        "res4f": (1, 1024, 14, 14),
        "res5c": (1, 2048, 7, 7),
        "pool5": (1, 2048, 1, 1),
        "prob": (1, 1000),
    },
    "resnet__KaimingHe__ResNet-152-deploy.prototxt": {
        "res4b35": (1, 1024, 14, 14),
        "res5c": (1, 2048, 7, 7),
    },
    "vgg__ywchao__VGG16-deploy.prototxt": {"pool5": (10, 512, 7, 7), "fc7": (10, 4096)},
    "vgg__aizvorski__vgg16_deploy.prototxt": {"pool5": (16, 512, 7, 7)},
    "squeezenet__forresti__SqueezeNet_v1.0-deploy.prototxt": {
        "conv1": (10, 96, 111, 111),
        "pool1": (10, 96, 55, 55),
        "fire9/concat": (10, 512, 13, 13),
    },
    "mobilenet__shicai__mobilenet_deploy.prototxt": {
        "conv6/sep": (1, 1024, 7, 7),
        "pool6": (1, 1024, 1, 1),
    },
    "densenet__shicai__DenseNet_121.prototxt": {
        "pool1": (1, 64, 56, 56),
        "concat_5_16": (1, 1024, 7, 7),
    },
    "lenet__BVLC-V1-11a4c16__lenet.prototxt": {"pool2": (64, 50, 4, 4), "ip2": (64, 10)},
    "lenet__BVLC-V0-2e33058__lenet.prototxt": {"pool2": (64, 50, 4, 4), "ip2": (64, 10)},
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_shapes(name):
    net = load_net(corpus_file(name))
    blobs = net.final_blobs()
    for blob, shape in GOLDEN[name].items():
        assert blobs[blob].shape == shape, blob


def test_resnet50_totals():
    """25.5M weights (He et al.) + BN statistics; 3.86 GMACs at 224x224 (commonly cited 3.8-4.1)."""
    net = load_net(corpus_file("resnet__KaimingHe__ResNet-50-deploy.prototxt"))
    conv_fc = sum(l.params for l in net.layers if l.type in ("Convolution", "InnerProduct"))
    assert 25_400_000 < conv_fc < 25_600_000
    macs = sum(l.macs for l in net.layers if l.type in ("Convolution", "InnerProduct"))
    assert 3.8e9 < macs < 3.9e9


def test_fork_extensions_are_marked():
    net = load_net(corpus_file("shufflenet__farmingyard__shufflenet_1x_g3_deploy.prototxt"))
    forks = {l.type for l in net.layers if l.fork}
    assert forks == {"ShuffleChannel", "ConvolutionDepthwise"}
    net = load_net(corpus_file("senet__hujie-frank__SE-ResNet-50.prototxt"))
    assert {l.type for l in net.layers if l.fork} == {"Axpy"}
    net = load_net(corpus_file("densenet__shicai__DenseNet_121.prototxt"))
    assert any(l.fork and "ceil_mode" in l.fork for l in net.layers)
