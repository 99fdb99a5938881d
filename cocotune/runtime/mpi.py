"""The communicator: which rank this process is, and MPI operations that never spin a core.

The generated scripts run alone (``python out/explore.py``) or under MPI
(``mpirun -n 2 python out/explore.py``); :func:`get_comm` returns an :class:`MpiComm` in the
first case and a :class:`LocalComm` stand-in in the second, so the same code works both ways.
The other concerns of a distributed run live next to this module: handing out tasks
(:mod:`cocotune.runtime.scheduler`), thread pools and devices
(:mod:`cocotune.runtime.threads`), progress on rank 0 (:mod:`cocotune.runtime.progress`) and the
checks every rank makes before any work (:mod:`cocotune.runtime.startup`).

**No busy waiting.** MPICH's blocking receive spins a core at 100% (measured: a rank blocked 2 s
in ``recv`` used 2 s of CPU), which would starve the rank doing real work on a 2-core machine.
Every wait here is ``Iprobe``/``Test`` plus a sleep that backs off to 20 ms (the same wait used
~0.006 s of CPU), including :meth:`Comm.barrier` and :meth:`Comm.bcast`.

**An exception outside the scheduler** would otherwise hang the job: the failing rank waits in
``MPI_Finalize`` for ranks that wait for it (checked with MPICH 5.0.2). :func:`get_comm`
therefore installs a ``sys.excepthook`` that prints the traceback and calls ``MPI_Abort(1)`` (as
``python -m mpi4py`` does). MPICH's ``MPI_Abort`` returns to the caller once the process manager
has been told, so :meth:`Comm.abort` then leaves with ``os._exit`` rather than reaching
``MPI_Finalize``. (Failures inside tasks are :mod:`cocotune.runtime.scheduler`'s.)

**A killed rank.** MPICH's process manager (hydra) ends the whole job when a rank is killed:
SIGKILL of rank 1 makes ``mpirun`` print ``BAD TERMINATION OF ONE OF YOUR APPLICATION
PROCESSES ... EXIT CODE: 9``, kill the other ranks and exit 9 within about a second (checked with
the ``mpich`` 5.0.2 wheel; ``tests/runtime/test_mpi.py`` keeps checking it). No heartbeat is
needed; results already appended to ``results.jsonl`` are on disk (see :mod:`.results`).

**Launching.** On this machine ``mpirun -n 2 python out/explore.py`` needs no extra options or
environment (no ``HYDRA_IFACE``, no netmod setting): hydra starts both ranks on this machine.
It names the node by its host name (``vm`` here, listed in ``/etc/hosts``); on a machine whose
host name does not resolve, ``mpirun -host localhost -n 2 ...`` is the fallback (it also works
here). Hydra sets ``PMI_RANK``, ``PMI_SIZE``, ``PMI_FD``,
``PMI_HOSTNAME``, ``MPI_LOCALNRANKS`` and ``MPI_LOCALRANKID`` in each rank, which is how
:func:`get_comm` knows it was launched by ``mpirun`` before importing mpi4py. Launched by
``mpirun`` with several ranks but without mpi4py, :func:`get_comm` raises
:class:`MpiUnavailableError` saying how to install it (running N independent copies would do
all the work N times).
"""

from __future__ import annotations

import os
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from typing import Any

from cocotune.errors import CocotuneError

__all__ = [
    "Comm",
    "DistributedError",
    "LocalComm",
    "MpiComm",
    "MpiUnavailableError",
    "POLL_MAX",
    "POLL_MIN",
    "ROOT",
    "get_comm",
    "is_root",
]

# The rank that coordinates, shows progress and writes results.
ROOT = 0

# Waits poll, then sleep this long, doubling up to the maximum (see "No busy waiting").
POLL_MIN = 0.0005
POLL_MAX = 0.02

# Environment variables set by MPI launchers. Sizes: hydra (MPICH, Intel MPI) and Open MPI.
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")
# Launched by some MPI, size unknown without asking MPI (PMIx, e.g. Slurm's srun --mpi=pmix).
_LAUNCH_VARS = ("PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_RANK")


class DistributedError(RuntimeError):
    """A task failed on some rank (or a rank-0 callback failed); the run stopped everywhere.

    Parameters:
        message: what failed, where, and the remote traceback.
        rank: the rank whose work failed (``None`` when unknown).
        index: the index of the task that failed (``None`` for failures outside a task).
    """

    def __init__(self, message: str, rank: int | None = None, index: int | None = None):
        super().__init__(message)
        self.rank = rank
        self.index = index


class MpiUnavailableError(CocotuneError, DistributedError):
    """Launched by ``mpirun`` with several ranks, but mpi4py cannot be imported (a user error:
    exit code 2 with how to install it, not a traceback)."""


def _backoff_wait(ready: Callable[[], bool], deadline: float | None = None) -> bool:
    """Call ``ready()`` until it is true, sleeping in between; False if ``deadline`` passed."""
    delay = POLL_MIN
    while not ready():
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, POLL_MAX)
    return True


class Comm:
    """What the loops need from MPI: rank, size, and a few operations that never spin a core.

    :class:`MpiComm` wraps ``MPI.COMM_WORLD``; :class:`LocalComm` is the one-process stand-in,
    so scripts call the same methods whether or not they run under ``mpirun``.
    """

    rank: int = 0
    size: int = 1

    @property
    def is_root(self) -> bool:
        """True on rank 0, the rank that coordinates, shows progress and writes results."""
        return self.rank == ROOT

    @property
    def is_distributed(self) -> bool:
        return self.size > 1

    @property
    def threads_allowed(self) -> bool:
        """Whether a second thread may make MPI calls (needed by rank 0's coordinator thread)."""
        return True

    def barrier(self) -> None:
        """Wait until every rank gets here."""

    def bcast(self, obj: Any = None, root: int = ROOT) -> Any:
        """Return ``root``'s ``obj`` on every rank (any picklable object)."""
        return obj

    def allgather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        return [obj]

    def node(self) -> tuple[str, int, int]:
        """(host name, rank among the ranks of this node, ranks on this node). Collective:
        every rank must call it."""
        import socket

        return socket.gethostname(), 0, 1

    def abort(self, code: int = 1) -> None:
        """End every rank of the job now (``MPI_Abort``); in one process, exit."""
        sys.stderr.flush()
        os._exit(code)

    # Point-to-point messages used by run_tasks (pickled objects).
    def send(self, obj: Any, dest: int, tag: int) -> None:
        raise RuntimeError("a single-process run has no other ranks to send to")

    def try_recv(self, source: int | None, tag: int) -> tuple[bool, Any, int]:
        """Receive a message if one is waiting: (found, object, source rank); ``source=None``
        takes one from any rank."""
        return False, None, -1

    def recv(self, source: int | None, tag: int) -> tuple[Any, int]:
        """Receive a message, sleeping between polls: (object, source rank)."""
        found: list[tuple[Any, int]] = []

        def ready() -> bool:
            ok, obj, src = self.try_recv(source, tag)
            if ok:
                found.append((obj, src))
            return ok

        _backoff_wait(ready)
        return found[0]


class LocalComm(Comm):
    """The single-process stand-in: rank 0 of 1; never imports mpi4py."""

    rank = 0
    size = 1

    def __repr__(self) -> str:
        return "LocalComm(rank=0, size=1)"


class MpiComm(Comm):
    """``MPI.COMM_WORLD`` of mpi4py behind the :class:`Comm` interface."""

    def __init__(self, mpi_comm: Any, MPI: Any):
        self._comm = mpi_comm
        self._MPI = MPI
        self.rank = mpi_comm.Get_rank()
        self.size = mpi_comm.Get_size()

    def __repr__(self) -> str:
        return f"MpiComm(rank={self.rank}, size={self.size})"

    @property
    def threads_allowed(self) -> bool:
        return self._MPI.Query_thread() >= self._MPI.THREAD_SERIALIZED

    def barrier(self) -> None:
        request = self._comm.Ibarrier()
        _backoff_wait(request.Test)

    def bcast(self, obj: Any = None, root: int = ROOT) -> Any:
        # The barrier absorbs the wait for a late root without spinning; the broadcast after it
        # finds every rank ready.
        self.barrier()
        return self._comm.bcast(obj, root=root)

    def allgather(self, obj: Any) -> list[Any]:
        self.barrier()
        return self._comm.allgather(obj)

    def node(self) -> tuple[str, int, int]:
        # The ranks sharing memory with this one are the ranks of its node (as the MPI library
        # sees it: hydra merges repeated host names into one node).
        self.barrier()
        local = self._comm.Split_type(self._MPI.COMM_TYPE_SHARED)
        try:
            return self._MPI.Get_processor_name(), local.Get_rank(), local.Get_size()
        finally:
            local.Free()

    def abort(self, code: int = 1) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self._comm.Abort(code)
        # MPICH's MPI_Abort returns once it has told the process manager (checked with 5.0.2);
        # leave now, without running MPI_Finalize, which would wait for the other ranks.
        os._exit(code)

    def send(self, obj: Any, dest: int, tag: int) -> None:
        # isend + Test: a large message waits for the receiver without spinning this core.
        request = self._comm.isend(obj, dest=dest, tag=tag)
        _backoff_wait(lambda: request.test()[0])

    def try_recv(self, source: int | None, tag: int) -> tuple[bool, Any, int]:
        status = self._MPI.Status()
        if source is None:
            source = self._MPI.ANY_SOURCE
        message = self._comm.improbe(source=source, tag=tag, status=status)
        if message is None:
            return False, None, -1
        return True, message.recv(), status.Get_source()


_COMM: Comm | None = None


def _launcher_size() -> int | None:
    """The job size announced by an MPI launcher: 0 when not launched by one, None if unknown."""
    for var in _SIZE_VARS:
        value = os.environ.get(var, "")
        if value.isdigit():
            return int(value)
    if any(var in os.environ for var in _LAUNCH_VARS):
        return None
    return 0


def get_comm(abort_on_exception: bool = True) -> Comm:
    """Return the communicator of this run (the same object on every call).

    An :class:`MpiComm` when the process was started by ``mpirun``/``mpiexec`` with more than one
    rank, else a :class:`LocalComm`. mpi4py is imported only in the first case, so single-process
    runs do not need it (nor an MPI library).

    Parameters:
        abort_on_exception: under MPI, install a ``sys.excepthook`` that prints the traceback
            (prefixed with the rank) and aborts every rank, because an uncaught exception on one
            rank otherwise leaves the job hanging in ``MPI_Finalize``. A
            :class:`DistributedError` is printed and exits normally (code 1): every rank already
            knows and is exiting.

    Raises:
        MpiUnavailableError: launched with several ranks but mpi4py cannot be imported; running
            each rank as an independent single process would do all the work N times and write
            the same results file concurrently. The message says how to install it.
    """
    global _COMM
    if _COMM is not None:
        return _COMM
    size = _launcher_size()
    if size == 0 or size == 1:
        _COMM = LocalComm()
        return _COMM
    try:
        from mpi4py import MPI
    except ImportError as exc:
        if size is None:
            warnings.warn(
                f"MPI launcher variables found but mpi4py is unavailable ({exc}); "
                "running as a single process",
                stacklevel=2,
            )
            _COMM = LocalComm()
            return _COMM
        raise MpiUnavailableError(
            f"launched by mpirun with {size} ranks, but mpi4py cannot be imported ({exc})",
            notes=[
                "with the MPICH wheel (one machine, or nodes without an MPI of their own): "
                "pip install 'cocotune[mpi]', then use the mpirun of this environment",
                "with the cluster's MPI: load it (e.g. module load mpich), then "
                "MPICC=$(which mpicc) pip install --no-binary mpi4py mpi4py, and launch with "
                "that MPI's mpirun",
                "or run without mpirun (one process)",
            ],
        ) from exc
    world = MPI.COMM_WORLD
    if world.Get_size() == 1:
        _COMM = LocalComm()
        return _COMM
    _COMM = MpiComm(world, MPI)
    if abort_on_exception:
        _install_excepthook(_COMM)
    return _COMM


def _install_excepthook(comm: Comm) -> None:
    def hook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
        if isinstance(exc, DistributedError):
            print(f"[rank {comm.rank}] {exc_type.__name__}: {exc}", file=sys.stderr, flush=True)
            return  # every rank was told; a normal exit (code 1) cannot hang
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        print(
            f"[rank {comm.rank}] uncaught exception, aborting all {comm.size} ranks:\n{text}",
            file=sys.stderr,
            flush=True,
        )
        comm.abort(1)

    sys.excepthook = hook


def is_root(comm: Comm | None = None) -> bool:
    """True on the rank that coordinates, shows progress and writes files (rank 0)."""
    return (comm if comm is not None else get_comm()).is_root
