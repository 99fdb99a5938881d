"""cocotune.runtime.devices: which GPU each rank takes, with simulated GPU lists.

This machine has no GPU; the mapping is a pure function and :func:`apply_device` is checked
against a stand-in for ``tf.config`` that records the calls.
"""

from __future__ import annotations

from typing import Any

import pytest

from cocotune.runtime.devices import (
    DeviceChoice,
    DeviceError,
    apply_device,
    assign_device,
    parse_devices,
)


def mapping(local_size: int, gpus: int, request: Any = "auto") -> list[str]:
    return [str(assign_device(r, local_size, gpus, request)) for r in range(local_size)]


def test_one_gpu_per_local_rank():
    assert mapping(4, 4) == ["GPU 0", "GPU 1", "GPU 2", "GPU 3"]
    assert mapping(2, 8) == ["GPU 0", "GPU 1"]  # spare GPUs stay idle


def test_round_robin_when_ranks_outnumber_gpus():
    assert mapping(3, 2) == ["GPU 0 (shared by 2 ranks)", "GPU 1", "GPU 0 (shared by 2 ranks)"]
    choice = assign_device(1, 4, 1)
    assert choice == DeviceChoice(gpu=0, shared_by=4)


def test_no_gpu_means_cpu():
    assert mapping(2, 0) == ["cpu", "cpu"]
    assert not assign_device(0, 1, 0).is_gpu


def test_devices_override():
    assert mapping(2, 4, "cpu") == ["cpu", "cpu"]
    assert mapping(2, 4, "2,3") == ["GPU 2", "GPU 3"]
    assert mapping(2, 4, (3,)) == ["GPU 3 (shared by 2 ranks)"] * 2
    assert mapping(2, 2, "gpu") == ["GPU 0", "GPU 1"]


def test_devices_asking_for_missing_gpus_is_an_error():
    with pytest.raises(DeviceError, match=r"GPU 2 not found; this node has GPUs 0\.\.1"):
        assign_device(0, 2, 2, "0,2")
    with pytest.raises(DeviceError, match="no GPU"):
        assign_device(0, 1, 0, "gpu")
    with pytest.raises(DeviceError, match="this node has no GPU"):
        assign_device(0, 1, 0, "0")


@pytest.mark.parametrize(
    "text, expected",
    [(None, "auto"), ("AUTO", "auto"), ("cpu", "cpu"), ("gpu", "gpu"), ("0, 1", (0, 1))],
)
def test_parse_devices(text, expected):
    assert parse_devices(text) == expected


@pytest.mark.parametrize("text", ["0,0", "first", "-1", "0;1", ""])
def test_parse_devices_rejects_nonsense(text):
    if text == "":
        assert parse_devices(text) == "auto"
        return
    with pytest.raises(DeviceError):
        parse_devices(text)


class FakeConfig:
    """Records the tf.config calls apply_device makes."""

    def __init__(self, gpus: int, started: bool = False):
        self.gpus = [f"PhysicalDevice(GPU:{i})" for i in range(gpus)]
        self.started = started
        self.calls: list[tuple[Any, ...]] = []
        self.experimental = self

    def list_physical_devices(self, kind: str) -> list[str]:
        self.calls.append(("list", kind))
        return list(self.gpus) if kind == "GPU" else ["cpu"]

    def set_visible_devices(self, devices: list[str], kind: str) -> None:
        if self.started:
            raise RuntimeError("Visible devices cannot be modified after being initialized")
        self.calls.append(("visible", tuple(devices), kind))

    def set_memory_growth(self, device: str, enable: bool) -> None:
        self.calls.append(("growth", device, enable))


def test_apply_gpu_choice_sets_visibility_and_memory_growth():
    tf_config = FakeConfig(gpus=2)
    assert apply_device(assign_device(1, 2, 2), tf_config)
    assert tf_config.calls == [
        ("list", "GPU"),
        ("visible", ("PhysicalDevice(GPU:1)",), "GPU"),
        ("growth", "PhysicalDevice(GPU:1)", True),
    ]


def test_cpu_choice_hides_gpus_and_without_gpus_makes_no_gpu_call():
    tf_config = FakeConfig(gpus=2)
    assert apply_device(DeviceChoice(), tf_config)
    assert tf_config.calls[-1] == ("visible", (), "GPU")
    no_gpu = FakeConfig(gpus=0)
    assert apply_device(assign_device(0, 2, 0), no_gpu)
    assert no_gpu.calls == [("list", "GPU")]


def test_apply_after_tensorflow_started_warns():
    tf_config = FakeConfig(gpus=1, started=True)
    with pytest.warns(UserWarning, match="after TensorFlow initialised its devices"):
        assert not apply_device(assign_device(0, 1, 1), tf_config)


def test_apply_with_real_tensorflow_on_this_cpu_machine():
    tf = pytest.importorskip("tensorflow")
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this test is about a machine without GPU")
    assert apply_device(assign_device(0, 2, 0))  # no tf.config call beyond listing
