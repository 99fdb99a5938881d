"""Which device each rank computes on: one local GPU per rank when the node has GPUs.

Under ``mpirun`` every rank would otherwise see every GPU of its node and TensorFlow would put
all of them on GPU 0 (and reserve nearly all of every GPU's memory in each process). Instead each
rank takes the GPU of its *local rank* (its rank among the ranks on the same node, from
``MPI_Comm_split_type(MPI_COMM_TYPE_SHARED)``), round-robin when ranks outnumber GPUs, with
memory growth on so that ranks sharing a GPU fit. Without GPUs nothing changes: the ranks run on
the CPU with the thread sizing of :func:`cocotune.runtime.threads.configure_threads`.

``--devices`` overrides the choice: ``cpu`` (ignore the GPUs), ``gpu`` (require a GPU), or a
list of GPU indices such as ``0,1`` (the GPUs of each node the ranks may use; ``1`` keeps GPU 0
free for someone else). Indices are TensorFlow's physical GPU order, i.e. after
``CUDA_VISIBLE_DEVICES``.

The choice must be applied before TensorFlow initialises its devices (its first operation);
:func:`apply_device` only calls ``tf.config`` when the node has GPUs, so the CPU path never
depends on GPU APIs.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cocotune.errors import CocotuneError

__all__ = [
    "AUTO",
    "DeviceChoice",
    "DeviceError",
    "apply_device",
    "assign_device",
    "parse_devices",
]

AUTO = "auto"


class DeviceError(CocotuneError):
    """``--devices`` asks for something this node does not have (or cannot be parsed)."""


@dataclass(frozen=True)
class DeviceChoice:
    """The device of one rank.

    Attributes:
        gpu: index into the node's physical GPU list, or None for the CPU.
        shared_by: how many ranks of this node use the same GPU (1 when it has it alone).
    """

    gpu: int | None = None
    shared_by: int = 1

    @property
    def is_gpu(self) -> bool:
        return self.gpu is not None

    def __str__(self) -> str:
        if self.gpu is None:
            return "cpu"
        shared = f" (shared by {self.shared_by} ranks)" if self.shared_by > 1 else ""
        return f"GPU {self.gpu}{shared}"


def parse_devices(text: str | None) -> str | tuple[int, ...]:
    """``--devices`` as ``"auto"``, ``"cpu"``, ``"gpu"`` or a tuple of GPU indices.

    Raises:
        DeviceError: anything else (the message says what is accepted).
    """
    value = (text or AUTO).strip().lower()
    if value in (AUTO, "cpu", "gpu"):
        return value
    parts = [p.strip() for p in value.split(",")]
    if parts and all(p.isdigit() for p in parts):
        indices = tuple(int(p) for p in parts)
        if len(set(indices)) != len(indices):
            raise DeviceError(f"--devices {text}: a GPU is listed twice")
        return indices
    raise DeviceError(
        f"--devices {text!r} is not understood; use auto, cpu, gpu or GPU indices such as 0,1"
    )


def assign_device(
    local_rank: int, local_size: int, gpu_count: int, request: str | Sequence[int] = AUTO
) -> DeviceChoice:
    """The device of the rank ``local_rank`` of ``local_size`` ranks on a node with
    ``gpu_count`` GPUs (pure: no TensorFlow, no MPI).

    ``auto``: local rank *r* takes GPU ``r % gpu_count``; the CPU when there is none.
    ``cpu``: the CPU. ``gpu``: as auto, but a node without a GPU is an error. A list of indices:
    local rank *r* takes ``indices[r % len(indices)]``.

    Raises:
        DeviceError: a GPU was asked for that this node does not have.
    """
    if not 0 <= local_rank < max(local_size, 1):
        raise ValueError(f"local rank {local_rank} is not in 0..{local_size - 1}")
    if isinstance(request, str):
        request = parse_devices(request)
    if request == "cpu":
        return DeviceChoice()
    if request in (AUTO, "gpu"):
        if gpu_count == 0:
            if request == "gpu":
                raise DeviceError("--devices gpu: this node has no GPU that TensorFlow can use")
            return DeviceChoice()
        candidates: tuple[int, ...] = tuple(range(gpu_count))
    else:
        candidates = tuple(request)  # type: ignore[arg-type]
        missing = [i for i in candidates if i >= gpu_count]
        if missing:
            have = f"GPUs 0..{gpu_count - 1}" if gpu_count else "no GPU"
            raise DeviceError(
                f"--devices {','.join(map(str, candidates))}: GPU "
                f"{', '.join(map(str, missing))} not found; this node has {have}"
            )
    slot = local_rank % len(candidates)
    shared_by = sum(1 for r in range(local_size) if r % len(candidates) == slot)
    return DeviceChoice(gpu=candidates[slot], shared_by=shared_by)


def apply_device(choice: DeviceChoice, tf_config: Any = None) -> bool:
    """Make ``choice`` the only GPU TensorFlow sees (memory growth on), or hide the GPUs for
    the CPU. Returns False (with a warning) when TensorFlow had already initialised its devices.

    Parameters:
        choice: from :func:`assign_device`.
        tf_config: ``tf.config`` (default); tests pass a stand-in.
    """
    if tf_config is None:
        import tensorflow as tf

        tf_config = tf.config
    gpus = tf_config.list_physical_devices("GPU")
    if not gpus:
        return True  # nothing to choose; the CPU path makes no GPU call at all
    try:
        if choice.gpu is None:
            tf_config.set_visible_devices([], "GPU")
        else:
            gpu = gpus[choice.gpu]
            tf_config.set_visible_devices([gpu], "GPU")
            tf_config.experimental.set_memory_growth(gpu, True)
    except RuntimeError as exc:  # devices were initialised already
        warnings.warn(
            f"the device choice ({choice}) came after TensorFlow initialised its devices ({exc}); "
            "TensorFlow keeps its default placement",
            stacklevel=2,
        )
        return False
    return True
