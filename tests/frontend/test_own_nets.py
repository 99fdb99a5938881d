"""Our own tiny nets (tests/data): they parse, get Caffe's shapes, and convert exactly."""

from __future__ import annotations

from cocotune.convert.command import convert, verify
from cocotune.frontend.load import load_net
from tests.conftest import DATA


def test_tiny_v1_shapes():
    net = load_net(DATA / "tiny_v1.prototxt")
    blobs = net.final_blobs()
    assert blobs["conv"].shape == (2, 3, 3, 3)
    assert blobs["pool"].shape == (2, 3, 2, 2)
    assert blobs["prob"].shape == (2, 4)


def test_tiny_train_val_phases():
    test = load_net(DATA / "tiny_train_val.prototxt")
    train = load_net(DATA / "tiny_train_val.prototxt", phase="TRAIN")
    assert "acc" in [l.name for l in test.layers] and "drop" not in [l.name for l in test.layers]
    assert "drop" in [l.name for l in train.layers] and "acc" not in [l.name for l in train.layers]
    assert test.final_blobs()["loss"].shape == () and test.final_blobs()["label"].shape == (4,)
    assert test.module_names == ["m1"]


def test_tiny_nets_convert_exactly(tmp_path):
    for name in ("tiny_v1.prototxt", "tiny_train_val.prototxt"):
        net, plan, module, _ = convert(str(DATA / name), tmp_path / name)
        report = verify(net, plan, module, None)
        assert max(r["max_rel_error"] for r in report) <= 1e-4
    # the training-only layers are not in the model; the prediction is its output
    assert [b.name for b in plan.model_outputs] == ["fc"]
