"""Training nets written for Caffe forks: one run of ``check`` lists everything they need.

tests/data/ssd_like_train.prototxt and fasterrcnn_like_train.prototxt are small nets written
for these tests in the shape of SSD's (weiliu89/caffe) and py-faster-rcnn's training nets:
fork fields in transform_param / dropout_param and the forks' layer types.
"""

from __future__ import annotations

import pytest

from cocotune.errors import CocotuneError, ErrorGroup
from cocotune.frontend.load import load_net, load_solver
from tests.conftest import DATA

SSD = DATA / "ssd_like_train.prototxt"
FRCNN = DATA / "fasterrcnn_like_train.prototxt"

SSD_TYPES = [  # (layer, type, line, col)
    ("data", "AnnotatedData", 5, 9),
    ("conv1_norm", "Normalize", 43, 9),
    ("conv1_mbox_loc_perm", "Permute", 57, 9),
    ("conv1_mbox_priorbox", "PriorBox", 92, 9),
    ("mbox_loss", "MultiBoxLoss", 106, 9),
]
SSD_FIELDS = [  # (field, line, col)
    ("resize_param", 14, 5),
    ("emit_constraint", 20, 5),
    ("distort_param", 21, 5),
    ("expand_param", 25, 5),
]


def _check(run_cli, *args):
    result = run_cli("check", *args)
    assert result.code == 2, result.out
    assert "Traceback" not in result.err
    return result.err


def test_ssd_train_net_lists_every_type_and_fork_field(run_cli):
    err = _check(run_cli, SSD, "--phase", "TRAIN")
    for layer, kind, line, col in SSD_TYPES:
        assert (
            f"{SSD}:{line}:{col}: error: layer '{layer}': unsupported type '{kind}' (SSD fork "
            "(weiliu89/caffe): " in err
        )
    for name, line, col in SSD_FIELDS:
        assert (
            f"{SSD}:{line}:{col}: error: layer 'data': unsupported fork field '{name}' in "
            f"transform_param ({name}: SSD fork (weiliu89/caffe) field in TransformationParameter)"
        ) in err
    assert "note: 1 more 'Permute' layer(s): 'conv1_mbox_conf_perm' (line 78)" in err
    assert err.splitlines()[-1] == (
        "error: 10 problems (unsupported types: AnnotatedData (1 layer), MultiBoxLoss (1 layer), "
        "Normalize (1 layer), Permute (2 layers), PriorBox (1 layer); fork fields: "
        "distort_param, emit_constraint, expand_param, resize_param)"
    )
    # The layers' own fork blocks (prior_box_param in a PriorBox layer) repeat the type.
    assert "'prior_box_param'" not in err and "'annotated_data_param'" not in err


def test_ssd_train_net_in_the_test_phase_still_lists_the_train_only_layers(run_cli):
    err = _check(run_cli, SSD)
    for layer, kind, line, col in SSD_TYPES:
        assert f"{SSD}:{line}:{col}: error: layer '{layer}': unsupported type '{kind}'" in err
    for name, line, col in SSD_FIELDS:
        assert f"{SSD}:{line}:{col}: error: layer 'data': unsupported fork field '{name}'" in err
    train_only = [l for l in err.splitlines() if "[this layer is not in the TEST phase]" in l]
    assert len(train_only) == 2 + len(SSD_FIELDS)  # AnnotatedData, MultiBoxLoss, 4 fields


def test_faster_rcnn_train_net_lists_every_type_and_fork_field(run_cli):
    err = _check(run_cli, FRCNN, "--phase", "TRAIN")
    for layer, where, code in (
        ("input-data", "6:9", "roi_data_layer.layer.RoIDataLayer"),
        ("rpn-data", "33:9", "rpn.anchor_target_layer.AnchorTargetLayer"),
        ("proposal", "60:9", "rpn.proposal_layer.ProposalLayer"),
    ):
        assert (
            f"{FRCNN}:{where}: error: layer '{layer}': unsupported type 'Python' (Python "
            f"layer {code}: runs user code that cocotune cannot see)" in err
        )
    assert (
        f"{FRCNN}:49:9: error: layer 'rpn_loss_bbox': unsupported type 'SmoothL1Loss' "
        "(Faster R-CNN fork (rbgirshick/caffe-fast-rcnn)" in err
    )
    assert (
        f"{FRCNN}:72:9: error: layer 'roi_pool5': unsupported type 'ROIPooling' "
        "(Faster R-CNN fork (rbgirshick/caffe-fast-rcnn)" in err
    )
    assert (
        f"{FRCNN}:91:38: error: layer 'drop6': unsupported fork field 'scale_train' in "
        "dropout_param (scale_train: Faster R-CNN fork (rbgirshick/caffe-fast-rcnn) field in "
        "DropoutParameter)"
    ) in err
    assert err.splitlines()[-1] == (
        "error: 6 problems (unsupported types: Python (3 layers), ROIPooling (1 layer), "
        "SmoothL1Loss (1 layer); fork fields: scale_train)"
    )


def test_typos_are_listed_with_the_fork_problems(write_net):
    path = write_net(
        'layer { name: "d" type: "Input" top: "data"\n'
        "  input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }\n"
        'layer { name: "c" type: "Convolution" bottom: "data" top: "c"\n'
        "  convolution_param { num_output: 4 kernal_size: 3 } }\n"
        'layer { name: "p" type: "PriorBox" bottom: "c" bottom: "data" top: "p" }\n'
        'layer { name: "x" type: "Dropout" bottom: "c" top: "c" dropout_param { scale_train: 1 } }\n'
        'layer { name: "y" type: "ReLU" bottom: "c" top: "c" relu_param { negative_slope: "a" } }\n'
    )
    with pytest.raises(ErrorGroup) as info:
        load_net(path)
    messages = [e.message for e in info.value.errors]
    assert messages == [
        "layer 'c': unknown field 'kernal_size' in convolution_param (did you mean 'kernel_size'?)",
        "layer 'p': unsupported type 'PriorBox' (SSD fork (weiliu89/caffe): generates the "
        "default (prior) boxes)",
        "layer 'x': unsupported fork field 'scale_train' in dropout_param (scale_train: Faster "
        "R-CNN fork (rbgirshick/caffe-fast-rcnn) field in DropoutParameter)",
        "layer 'y': field 'negative_slope' expects a number, found 'a'",
    ]
    assert [(e.line, e.col) for e in info.value.errors] == [(4, 37), (5, 25), (6, 72), (7, 82)]
    assert info.value.message.endswith("fork fields: scale_train; 2 other errors)")


def test_a_syntax_error_still_stops_at_the_first(write_net):
    path = write_net(
        'layer { name: "p" type: "PriorBox" }\n'
        'layer { name: "x" type: "Dropout" dropout_param { scale_train: false } }\n'
        'layer { name "y" }\n'
    )
    with pytest.raises(CocotuneError) as info:
        load_net(path)
    assert not isinstance(info.value, ErrorGroup)
    assert (info.value.line, info.value.col) == (3, 14)
    assert "expected ':'" in info.value.message


def test_fork_parts_of_a_layer_the_phase_leaves_out_are_notes(run_cli, write_net):
    path = write_net(
        'layer { name: "d" type: "Input" top: "data" include { phase: TEST }\n'
        "  input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }\n"
        'layer { name: "dt" type: "AnnotatedData" top: "data" include { phase: TRAIN }\n'
        "  transform_param { resize_param { height: 8 } } }\n"
        'layer { name: "r" type: "ReLU" bottom: "data" top: "r" }\n'
    )
    result = run_cli("check", path)
    assert result.code == 0, result.err
    assert result.err.splitlines() == [
        f"note: {path}:3:26: layer 'dt': unsupported type 'AnnotatedData' (SSD fork "
        "(weiliu89/caffe): reads images with boxes, samples and distorts them) [this layer is "
        "not in the TEST phase]",
        f"note: {path}:4:21: layer 'dt': unsupported fork field 'resize_param' in "
        "transform_param (resize_param: SSD fork (weiliu89/caffe) field in "
        "TransformationParameter) [this layer is not in the TEST phase]",
    ]
    assert run_cli("check", path, "--phase", "TRAIN").code == 2


def test_a_typo_in_a_layer_the_phase_leaves_out_still_fails(write_net):
    """Caffe parses the whole file before filtering phases: a typo anywhere is fatal."""
    path = write_net(
        'layer { name: "d" type: "Input" top: "data"\n'
        "  input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }\n"
        'layer { name: "r" type: "ReLU" bottom: "data" top: "r" include { phase: TRAIN }\n'
        "  relu_param { negative_slop: 0.1 } }\n"
    )
    with pytest.raises(CocotuneError, match="unknown field 'negative_slop' in relu_param"):
        load_net(path)


def test_solver_reports_every_bad_field(tmp_path):
    path = tmp_path / "solver.prototxt"
    path.write_text('net: "n.prototxt"\nbase_rl: 0.1\nmax_iter: 1.5\nap_version: "11point"\n')
    with pytest.raises(ErrorGroup) as info:
        load_solver(path)
    assert [e.message for e in info.value.errors] == [
        "unknown field 'base_rl' in solver (did you mean 'base_lr'?)",
        "field 'max_iter' expects an integer, found 1.5",
        "unsupported fork field 'ap_version' in solver (ap_version: SSD fork (weiliu89/caffe) "
        "field in SolverParameter)",
    ]
