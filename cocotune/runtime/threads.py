"""How many threads each rank's TensorFlow may use, and which device it computes on.

TensorFlow's default is one intra-op thread per core in *every* process: N ranks on one machine
would run N times as many threads as there are cores, which is slower than one thread per core
in total. :func:`configure_threads` shares the cores of a node between the ranks on it and,
given the communicator, gives each rank its device (a GPU by its rank on the node, see
:mod:`cocotune.runtime.devices`); rank 0 prints one line per rank: host, local rank, device,
threads. It must run before TensorFlow runs anything, which is why the generated scripts call
it first (through :func:`cocotune.runtime.startup.start_ranks`).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any

from cocotune.runtime.mpi import Comm

__all__ = ["ThreadConfig", "configure_threads", "request_devices"]

# Ranks on this node (cores are shared per node, so threads are sized by this).
_LOCAL_SIZE_VARS = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE")


@dataclass(frozen=True)
class ThreadConfig:
    """TensorFlow thread pools (and device) of this rank.

    Attributes:
        cores: CPUs this process may use.
        ranks: ranks sharing those CPUs.
        intra_op: threads one operation may use (``cores // ranks``, at least 1).
        inter_op: operations run at once (1, or 2 when a rank has 4+ threads per op).
        applied: False when TensorFlow had already started and kept its earlier sizes.
        device: the device this rank computes on ("cpu", "GPU 1", ...; see
            :mod:`cocotune.runtime.devices`); "cpu" when no device was chosen.
    """

    cores: int
    ranks: int
    intra_op: int
    inter_op: int
    applied: bool = True
    device: str = "cpu"


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _local_ranks(comm: Comm | None) -> int:
    for var in _LOCAL_SIZE_VARS:
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return comm.size if comm is not None else 1


# The device request of this process (``--devices``, recorded by start_ranks) and the outcome
# of configure_threads(comm), so that a second call changes nothing and needs no communication.
_DEVICE_REQUEST: Any = "auto"
_CONFIGURED: ThreadConfig | None = None


def request_devices(devices: Any) -> None:
    """Record this process's ``--devices`` (parsed by
    :func:`cocotune.runtime.devices.parse_devices`) for the next collective
    :func:`configure_threads` call that names no ``devices`` itself (called by
    :func:`cocotune.runtime.startup.start_ranks`)."""
    global _DEVICE_REQUEST
    _DEVICE_REQUEST = devices


def configure_threads(
    size: int | Comm | None = None, cores: int | None = None, devices: Any = None
) -> ThreadConfig:
    """Size this rank's TensorFlow thread pools so that N ranks don't oversubscribe the CPUs;
    given a :class:`Comm`, also give the rank its device (one local GPU when there are GPUs).

    TensorFlow's default is one intra-op thread per core in *every* process; with 2 ranks on 2
    cores that is 4 busy threads fighting for 2 cores, which is slower than 2. Each rank gets
    ``max(1, cores // ranks)`` intra-op threads; inter-op parallelism stays at 1 (the ranks
    already run tasks side by side) unless a rank has 4 or more threads, then 2.
    ``OMP_NUM_THREADS`` is set to the intra-op size unless the user set it.

    With a :class:`Comm` it is collective (every rank calls it): the ranks of each node are
    found with a shared-memory split, each takes a GPU by its local rank
    (:func:`cocotune.runtime.devices.assign_device`, ``--devices`` overrides), the ranks agree
    that every one of them could (else every rank raises the same error), and rank 0 prints one
    line per rank (host, local rank, device, threads) when several ranks or GPUs are involved.

    Call it before TensorFlow runs anything: its thread pools and devices are fixed when the
    first operation runs, and ``OMP_NUM_THREADS`` is read when TensorFlow is imported. If
    TensorFlow has already started, this warns and returns its current sizes with
    ``applied=False``.

    Parameters:
        size: ranks sharing this machine's cores; a :class:`Comm` (its node's ranks), or None
            for the ranks on this node as told by the launcher (``MPI_LOCALNRANKS``), else 1.
        cores: CPUs to share (default: the CPUs this process may run on).
        devices: with a Comm: "auto", "cpu", "gpu" or GPU indices (default: ``--devices`` as
            recorded by
            :func:`cocotune.runtime.startup.start_ranks`, else "auto").

    Raises:
        cocotune.runtime.devices.DeviceError: (on every rank) ``devices`` asks for a GPU that
            some node lacks.
    """
    global _CONFIGURED
    comm = size if isinstance(size, Comm) else None
    if comm is not None and _CONFIGURED is not None and devices is None:
        return _CONFIGURED
    node: tuple[str, int, int] | None = None
    if isinstance(size, Comm):
        node = size.node()
        ranks = node[2] if size.is_distributed else 1
    elif size is None:
        ranks = _local_ranks(None)
    else:
        ranks = max(1, int(size))
    cores = cores if cores is not None else _cpu_count()
    intra = max(1, cores // ranks)
    inter = 2 if intra >= 4 else 1
    os.environ.setdefault("OMP_NUM_THREADS", str(intra))

    import tensorflow as tf

    config = _set_threads(tf, cores, ranks, intra, inter)
    if comm is None:
        return config
    assert node is not None  # comm.node() ran above whenever a Comm was given
    choice = _choose_device(comm, node, _DEVICE_REQUEST if devices is None else devices, tf)
    config = ThreadConfig(**{**config.__dict__, "device": str(choice)})
    _CONFIGURED = config
    return config


def _set_threads(tf: Any, cores: int, ranks: int, intra: int, inter: int) -> ThreadConfig:
    threading_cfg = tf.config.threading
    if (
        threading_cfg.get_intra_op_parallelism_threads() == intra
        and threading_cfg.get_inter_op_parallelism_threads() == inter
    ):
        return ThreadConfig(cores, ranks, intra, inter)
    try:
        threading_cfg.set_intra_op_parallelism_threads(intra)
        threading_cfg.set_inter_op_parallelism_threads(inter)
    except RuntimeError as exc:  # TensorFlow already initialised its runtime
        current = ThreadConfig(
            cores,
            ranks,
            threading_cfg.get_intra_op_parallelism_threads(),
            threading_cfg.get_inter_op_parallelism_threads(),
            applied=False,
        )
        warnings.warn(
            f"configure_threads() was called after TensorFlow started ({exc}); keeping "
            f"intra_op={current.intra_op}, inter_op={current.inter_op} (0 = TensorFlow's default)",
            stacklevel=2,
        )
        return current
    return ThreadConfig(cores, ranks, intra, inter)


def _choose_device(comm: Comm, node: tuple[str, int, int], request: Any, tf: Any) -> Any:
    """Pick, agree on and apply this rank's device; rank 0 prints the mapping."""
    from cocotune.runtime.devices import (
        DeviceChoice,
        DeviceError,
        apply_device,
        assign_device,
        parse_devices,
    )

    host, local_rank, local_size = node
    gpu_count = len(tf.config.list_physical_devices("GPU"))
    choice: DeviceChoice | None = None
    error: str | None = None
    try:
        parsed = parse_devices(request) if isinstance(request, str) else tuple(request)
        choice = assign_device(local_rank, local_size, gpu_count, parsed)
    except DeviceError as exc:
        error = exc.message
    threads = tf.config.threading.get_intra_op_parallelism_threads()
    rows = comm.allgather((comm.rank, host, local_rank, local_size, str(choice), threads, error))
    problems: dict[str, list[str]] = {}
    for r, h, _, _, _, _, e in rows:
        if e is not None:
            problems.setdefault(e, []).append(f"{r} on {h}")
    if problems:
        raise DeviceError(
            "; ".join(
                f"{e} (rank{'s' if len(where) > 1 else ''} {', '.join(where[:4])}"
                + (f" and {len(where) - 4} more)" if len(where) > 4 else ")")
                for e, where in problems.items()
            )
        )
    # A rank without a choice recorded its error, and every rank raised on it just above.
    assert choice is not None
    apply_device(choice)
    if comm.is_root and (comm.is_distributed or gpu_count or request != "auto"):
        for r, h, lr, ls, device, n, _ in rows:
            cpu = f"{n} thread{'s' if n != 1 else ''} per op" if n else "default threads"
            print(f"rank {r} on {h}: local rank {lr} of {ls}, {device}, {cpu}", flush=True)
    return choice
