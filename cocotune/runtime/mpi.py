"""Coordination of several processes for pre-training and exploration (docs/design.md).

The generated scripts run alone (``python out/explore.py``) or under MPI
(``mpirun -n 2 python out/explore.py``); the same code works both ways:

    comm = get_comm()                  # MPI when launched by mpirun with size > 1, else a stand-in
    configure_threads(comm)            # before TensorFlow runs anything
    log = ResultsLog(out / "runs" / "results.jsonl", comm)    # cocotune.runtime.results
    todo = [c for c in configs if c["id"] not in log.done_ids()]
    run = run_tasks(todo, evaluate, comm, on_result=lambda c, r: log.append(r),
                    stop_when=lambda c, r: r["accuracy"] >= threshold, progress="configs")
    if comm.is_root:
        print(todo[run.winner] if run.winner is not None else "no configuration met it")

``evaluate(config, ctx)`` fine-tunes and tests one configuration, checking ``ctx.should_abort()``
between epochs. Work functions must not communicate themselves (no barrier or bcast inside a
task): the ranks are running different tasks at that moment.

**How rank 0 both works and coordinates.** With 2 cores and 2 ranks an idle coordinator wastes
half the machine, so rank 0 runs tasks too. When the MPI library allows a second thread to call
MPI (``MPI.Query_thread() >= MPI.THREAD_SERIALIZED``; MPICH gives ``THREAD_MULTIPLE``, which
mpi4py requests by default), rank 0 starts a *coordinator thread* that is the only thread making
MPI calls while :func:`run_tasks` runs: it answers requests from the other ranks, hands tasks to
rank 0's main thread through a Python queue, and calls ``on_result``/``stop_when``. The main
thread only runs the work function, so a long task on rank 0 never delays the other ranks. With a
lower thread level (or ``threaded=False``) rank 0 instead services the other ranks between its own
tasks and whenever its work function calls ``ctx.should_abort()``; the scheduling rules are the
same, but a rank 0 task that never polls makes the others wait for it (measured with 20 tasks of
50 ms: rank 1 ran 5 of them in polling mode against 7-9 with the thread). Without MPI the same
scheduler runs every task in the one process.

**No busy waiting.** MPICH's blocking receive spins a core at 100% (measured: a rank blocked 2 s
in ``recv`` used 2 s of CPU), which would starve the rank doing real work on a 2-core machine.
Every wait here is ``Iprobe``/``Test`` plus a sleep that backs off to 20 ms (the same wait used
~0.006 s of CPU), including :meth:`Comm.barrier` and :meth:`Comm.bcast`.

**Failures.** An exception in a work function is sent to rank 0 with its traceback; rank 0 tells
every rank to stop (``ctx.should_abort()`` turns true, idle ranks are released), waits for the
busy ranks to come back, then :func:`run_tasks` raises :class:`DistributedError` on every rank
with the failing rank, task and traceback in the message. If a busy rank does not come back within
``failure_grace`` seconds rank 0 calls ``MPI_Abort``. An exception *outside* ``run_tasks`` would
otherwise hang the job: the failing rank waits in ``MPI_Finalize`` for ranks that wait for it
(checked with MPICH 5.0.2). :func:`get_comm` therefore installs a ``sys.excepthook`` that prints the
traceback and calls ``MPI_Abort(1)`` (as ``python -m mpi4py`` does). MPICH's ``MPI_Abort``
returns to the caller once the process manager has been told, so :meth:`Comm.abort` then leaves
with ``os._exit`` rather than reaching ``MPI_Finalize``.

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

**Before any work** (:func:`start_ranks`, called by the generated scripts' entry point): the
ranks check that they all see rank 0's package directory and ``runs/``
(:func:`check_shared_package`: rank 0 broadcasts the path, a hash of tuning.json and a token
it writes into ``runs/``; all ranks agree, else every rank raises :class:`SharedPathError`
naming the host and path), then :func:`configure_threads` sizes the thread pools per node and
gives each rank its device: the ranks of a node are found with
``MPI_Comm_split_type(MPI_COMM_TYPE_SHARED)``, local rank *r* takes GPU ``r % gpus`` (memory
growth on; ``--devices`` overrides, see :mod:`cocotune.runtime.devices`), the CPU when the node
has none. Rank 0 prints one line per rank: host, local rank, device, threads.

**Several nodes.** Hydra reads hosts from ``-hosts a,b`` or ``-f hostfile`` (lines
``name:ranks``) and starts remote ranks through ssh; names that resolve to this machine are
started locally. A repeated name is one node; ``-hosts localhost,vm`` (two names of this
machine) makes two one-rank nodes that talk through the network module, which is how
``tests/runtime/test_mpi_hosts.py`` checks multi-node behaviour here. Only rank 0 writes
``results.jsonl``; every rank reads the package and writes models under ``runs/``, so the package
must be on a file system every node mounts under the same path.
"""

from __future__ import annotations

import os
import pickle
import queue
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cocotune.errors import CocotuneError

__all__ = [
    "Comm",
    "DistributedError",
    "MpiUnavailableError",
    "SharedPathError",
    "check_shared_package",
    "start_ranks",
    "LineProgress",
    "LocalComm",
    "MpiComm",
    "TaskAborted",
    "TaskContext",
    "TaskRun",
    "ThreadConfig",
    "configure_threads",
    "get_comm",
    "is_root",
    "progress_bar",
    "run_tasks",
]

ROOT = 0

# Waits poll, then sleep this long, doubling up to the maximum (see "No busy waiting").
_POLL_MIN = 0.0005
_POLL_MAX = 0.02
# How often a worker's ctx.should_abort() looks for messages from rank 0.
_ABORT_POLL = 0.05

# Environment variables set by MPI launchers. Sizes: hydra (MPICH, Intel MPI) and Open MPI.
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")
# Launched by some MPI, size unknown without asking MPI (PMIx, e.g. Slurm's srun --mpi=pmix).
_LAUNCH_VARS = ("PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_RANK")
# Ranks on this node (cores are shared per node, so threads are sized by this).
_LOCAL_SIZE_VARS = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE")


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


class TaskAborted(Exception):
    """Raised by a work function that gives up on its task.

    After ``ctx.should_abort()`` returned true the task is *abandoned* (an earlier task met the
    objective). Raised without that, the task is *skipped* (e.g. a time budget ran out): it counts
    as finished without meeting the objective and without a result, so later tasks can still win.
    """


# --------------------------------------------------------------------------------------------
# Communicators
# --------------------------------------------------------------------------------------------


def _backoff_wait(ready: Callable[[], bool], deadline: float | None = None) -> bool:
    """Call ``ready()`` until it is true, sleeping in between; False if ``deadline`` passed."""
    delay = _POLL_MIN
    while not ready():
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, _POLL_MAX)
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


# --------------------------------------------------------------------------------------------
# Threads
# --------------------------------------------------------------------------------------------


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
            recorded by :func:`start_ranks`, else "auto").

    Raises:
        cocotune.runtime.devices.DeviceError: (on every rank) ``devices`` asks for a GPU that
            some node lacks.
    """
    global _CONFIGURED
    comm = size if isinstance(size, Comm) else None
    if comm is not None and _CONFIGURED is not None and devices is None:
        return _CONFIGURED
    node = comm.node() if comm is not None else None
    if comm is not None:
        ranks = node[2] if comm.is_distributed else 1
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
    from cocotune.runtime.devices import DeviceError, apply_device, assign_device, parse_devices

    host, local_rank, local_size = node
    gpu_count = len(tf.config.list_physical_devices("GPU"))
    choice = error = None
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
    apply_device(choice)
    if comm.is_root and (comm.is_distributed or gpu_count or request != "auto"):
        for r, h, lr, ls, device, n, _ in rows:
            cpu = f"{n} thread{'s' if n != 1 else ''} per op" if n else "default threads"
            print(f"rank {r} on {h}: local rank {lr} of {ls}, {device}, {cpu}", flush=True)
    return choice


# --------------------------------------------------------------------------------------------
# Several nodes: one package every rank sees
# --------------------------------------------------------------------------------------------


class SharedPathError(CocotuneError, DistributedError):
    """Some rank cannot use the package directory rank 0 uses (raised on every rank)."""


def _fingerprint(package_dir: Path, required: bool = False) -> str:
    """A short hash of the package's description (tuning.json), to tell copies apart; "" when
    the directory has none and ``required`` is false (rank 0 checking a plain directory).

    Raises:
        OSError: tuning.json is required but cannot be read.
    """
    import hashlib

    path = package_dir / "tuning.json"
    if not required and not path.exists():
        return ""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _check_package(
    package_dir: Path, root_dir: str, fingerprint: str, token_name: str, token: str
) -> str | None:
    """What is wrong with this rank's view of rank 0's package, or None.

    The rank checks the directory it will use (its own ``package_dir``, usually the same path
    as rank 0's; a different path through symbolic links is fine if it is the same folder).
    """
    root = package_dir.resolve()
    where = str(root) if str(root) == root_dir else f"{root} (rank 0 uses {root_dir})"
    runs = root / "runs"
    try:
        if not root.is_dir():
            return f"{where} does not exist here"
        if fingerprint and _fingerprint(root, required=True) != fingerprint:
            return f"{root}/tuning.json differs from rank 0's (another copy of the package)"
        try:
            seen = (runs / token_name).read_text()
        except FileNotFoundError:
            return (
                f"{runs} is not the folder rank 0 writes to (a file rank 0 wrote there is missing)"
            )
    except OSError as exc:
        return f"cannot read {exc.filename or root} ({exc.strerror or exc})"
    if seen != token:
        return f"{runs} is not the folder rank 0 writes to"
    if not (os.access(runs, os.W_OK) and os.access(root, os.W_OK)):
        return f"cannot write to {root} or {runs}"
    return None


def check_shared_package(comm: Comm, package_dir: str | Path) -> None:
    """Check that every rank sees rank 0's package directory, and the same ``runs/``, before
    any work starts (collective; a no-op in one process).

    On several nodes the package and its ``runs/`` must be on a file system every node mounts
    under the same path: every rank reads the package, the rank that fine-tunes a configuration
    saves its model under ``runs/candidates/`` and pre-training ranks save blocks. A node that
    lacks the path, or has its own copy, would otherwise fail deep inside a task or silently
    write where nobody looks. Rank 0 broadcasts the absolute path, a fingerprint of tuning.json
    and a token it writes into ``runs/``; each rank checks it reads the same, and all ranks
    agree before anything else happens, so the job ends with one clear error instead of a hang.

    Raises:
        SharedPathError: on every rank, naming each failing rank, its host and the path.
    """
    if not comm.is_distributed:
        return
    import secrets
    import socket

    package_dir = Path(package_dir)
    token_path = None
    header: tuple[str, str, str, str] | None = None
    problem: str | None = None
    if comm.is_root:
        root_dir = str(package_dir.resolve())
        runs = Path(root_dir) / "runs"
        token = secrets.token_hex(8)
        token_path = runs / f".shared-check-{token}"
        try:
            runs.mkdir(parents=True, exist_ok=True)
            token_path.write_text(token)
            header = (root_dir, _fingerprint(Path(root_dir)), token_path.name, token)
        except OSError as exc:
            token_path, header = None, None
            problem = f"cannot write to {runs} ({exc.strerror or exc})"
    header = comm.bcast(header)
    if header is not None:
        problem = _check_package(package_dir, *header)
    # Every rank has read the token once this returns.
    rows = comm.allgather((comm.rank, socket.gethostname(), problem))
    if token_path is not None:
        token_path.unlink(missing_ok=True)
    failed = [(r, h, p) for r, h, p in rows if p is not None]
    if failed:
        lines = [f"rank {r} on host {h}: {p}" for r, h, p in failed]
        raise SharedPathError(
            f"{len(failed)} of {comm.size} ranks cannot use the package directory "
            f"{header[0] if header else package_dir}",
            notes=lines[:8]
            + ([f"... and {len(lines) - 8} more"] if len(lines) > 8 else [])
            + [
                "on several nodes, put the package (with its runs/ folder) on a file system "
                "every node mounts under the same path, and start mpirun from there"
            ],
        )


def start_ranks(package_dir: str | Path, argv: Sequence[str] = ()) -> Comm:
    """Everything a generated script does before its work, on every rank: find the
    communicator, check the package is shared (:func:`check_shared_package`), record
    ``--devices`` from ``argv`` and size threads / choose the device (:func:`configure_threads`).
    Idempotent; the script's own later ``configure_threads(comm)`` changes nothing.

    Raises:
        MpiUnavailableError: under mpirun without mpi4py.
        SharedPathError, cocotune.runtime.devices.DeviceError: on every rank.
    """
    global _DEVICE_REQUEST
    import argparse

    from cocotune.runtime.devices import parse_devices

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--devices", default="auto")
    known, _ = parser.parse_known_args(list(argv))
    _DEVICE_REQUEST = parse_devices(known.devices)
    comm = get_comm()
    check_shared_package(comm, package_dir)
    configure_threads(comm)
    return comm


# --------------------------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------------------------


class LineProgress:
    """Progress as plain lines, for a stream that is not a terminal (a batch job's log file).

    A tqdm bar redraws itself with carriage returns, which a log file keeps as one endless line
    that only shows up when the run ends. This prints one line per update (per finished task)
    instead, with the count, elapsed and estimated remaining time and the latest postfix. With
    many small updates (training steps) it prints when the whole percent changes or every
    ``interval`` seconds, and always at the end. Same methods as the tqdm bar the scripts use.
    """

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        *,
        total: int | None = None,
        desc: str | None = None,
        initial: int = 0,
        unit: str = "it",
        disable: bool = False,
        file: Any = None,
        interval: float = 30.0,
        **_: Any,
    ):
        self._iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total = total
        self.desc = desc or "progress"
        self.n = initial
        self.unit = unit
        self.disable = disable
        self.file = file
        self.interval = interval
        self.postfix = ""
        self._initial = initial
        self._start = time.monotonic()
        self._last_line = self._start
        self._last_percent = -1
        self._shown = initial  # the count the last line showed
        self._closed = False

    def __iter__(self) -> Any:
        for item in self._iterable if self._iterable is not None else ():
            yield item
            self.update(1)

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        percent = int(100 * self.n / self.total) if self.total else -1
        finished = self.total is not None and self.n >= self.total
        if finished or percent != self._last_percent or now - self._last_line >= self.interval:
            self._line(now)
        self._last_percent = percent

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None:
        items = dict(ordered_dict or {}, **kwargs)
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or self.desc

    def write(self, s: str, file: Any = None, end: str = "\n") -> None:
        if not self.disable:
            print(s, end=end, file=file or self._stream(), flush=True)

    def close(self) -> None:
        if not self._closed and self.n != self._shown:
            self._line(time.monotonic())  # where an interrupted or early-stopped run ended
        self._closed = True

    def _stream(self) -> Any:
        return self.file if self.file is not None else sys.stderr

    def _line(self, now: float) -> None:
        self._last_line = now
        self._shown = self.n
        if self.disable:
            return
        elapsed = now - self._start
        done = self.n - self._initial
        count = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        if self.unit != "it":  # tqdm's default unit says nothing
            count += f" {self.unit}s" if self.unit.isalpha() else f" {self.unit}"
        if self.total:
            count += f" ({100 * self.n / self.total:.0f}%)"
        parts = [count]
        parts.append(f"{elapsed:.1f} s")
        if self.total and 0 < done and self.n < self.total:
            parts.append(f"~{elapsed / done * (self.total - self.n):.0f} s left")
        if self.postfix:
            parts.append(self.postfix)
        print(f"{self.desc}: " + ", ".join(parts), file=self._stream(), flush=True)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress_bar(
    iterable: Iterable[Any] | None = None, *, comm: Comm | None = None, **tqdm_kwargs: Any
) -> Any:
    """Progress shown by rank 0 only: a tqdm bar on a terminal, plain lines otherwise.

    N ranks drawing N bars on one terminal garble each other, and rank 0 sees every result, so
    other ranks get a disabled tqdm bar (same methods, shows nothing). When the stream the bar
    would write to (``file=``, default stderr) is not a terminal -- a batch job with its output
    redirected -- rank 0 prints one :class:`LineProgress` line per update instead of a bar.
    """
    comm = comm if comm is not None else get_comm()
    from tqdm import tqdm

    if not comm.is_root:
        tqdm_kwargs["disable"] = True
        return tqdm(iterable, **tqdm_kwargs)
    if not _is_terminal(tqdm_kwargs.get("file") or sys.stderr):
        return LineProgress(iterable, **tqdm_kwargs)
    tqdm_kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **tqdm_kwargs)


# --------------------------------------------------------------------------------------------
# Scheduling
# --------------------------------------------------------------------------------------------


@dataclass
class TaskContext:
    """What a work function knows about the task it runs.

    Attributes:
        index: position of the task in the list given to :func:`run_tasks`.
        rank: rank running it.
    """

    index: int
    rank: int
    _should_abort: Callable[[], bool] = field(repr=False, default=lambda: False)
    told_to_abort: bool = field(default=False, init=False)

    def should_abort(self) -> bool:
        """True when the task is no longer needed (an earlier task met the objective) or the
        run is failing. Long work functions poll it between steps and then return or raise
        :class:`TaskAborted`. A value returned *after* this said true is treated as
        unfinished and discarded; a value returned without it having said true is a finished
        result and always reaches ``on_result``, even if the task was cancelled meanwhile."""
        if self._should_abort():
            self.told_to_abort = True
        return self.told_to_abort


@dataclass
class TaskRun:
    """The outcome of :func:`run_tasks` (the same on every rank).

    Attributes:
        results: one entry per task, in task order; ``None`` for tasks not run or abandoned.
        winner: the smallest task index meeting ``stop_when``, once every earlier task finished
            without meeting it; ``None`` if no task met it (or no ``stop_when`` was given).
        completed: task indices in the order their results reached rank 0.
        ranks: task index -> the rank that ran it (completed tasks).
        abandoned: tasks stopped because an earlier task met the objective.
        skipped: tasks whose work function raised :class:`TaskAborted` on its own.
    """

    results: list[Any]
    winner: int | None = None
    completed: list[int] = field(default_factory=list)
    ranks: dict[int, int] = field(default_factory=dict)
    abandoned: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)

    @property
    def stopped_early(self) -> bool:
        """True when the objective was met before every task ran."""
        return self.winner is not None and len(self.completed) < len(self.results)


class _Schedule:
    """Which task to hand out next and when an ordered early stop is decided (no I/O).

    Tasks are handed out in index order. Once task *i* meets the objective no task after *i*
    can win, so nothing more is handed out and running tasks after *i* are cancelled; tasks
    before *i* keep running because one of them may still meet it. Task *i* wins when every
    task before it has finished.
    """

    def __init__(self, n: int):
        self.n = n
        self.next_index = 0
        self.running: dict[int, int] = {}  # index -> rank
        self.finished: set[int] = set()
        self.best: int | None = None  # smallest index that met the objective so far
        self.cancelled: set[int] = set()

    def take(self, rank: int) -> int | None:
        if self.best is not None or self.next_index >= self.n:
            return None
        index = self.next_index
        self.next_index += 1
        self.running[index] = rank
        return index

    def finish(self, index: int, met: bool) -> list[int]:
        """Record a finished task; return the running tasks this newly cancels."""
        self.running.pop(index, None)
        self.finished.add(index)
        if not met or (self.best is not None and index > self.best):
            return []
        self.best = index
        newly = sorted(j for j in self.running if j > index and j not in self.cancelled)
        self.cancelled.update(newly)
        return newly

    def drop(self, index: int) -> None:
        """A cancelled task came back."""
        self.running.pop(index, None)

    @property
    def winner(self) -> int | None:
        if self.best is None or any(j not in self.finished for j in range(self.best)):
            return None
        return self.best

    @property
    def done(self) -> bool:
        """Nothing runs and nothing more will be handed out."""
        return not self.running and (self.best is not None or self.next_index >= self.n)


# Messages. Up (worker -> rank 0): ("ready",) | ("result", i, value) | ("aborted", i)
# | ("error", i, text). Down (rank 0 -> worker): ("task", i, task) | ("cancel", i)
# | ("done", TaskRun) | ("fail", message). Each run_tasks call uses its own pair of tags so a
# message can never be taken by a later call.
_TAG_SPACE = 10_000
_calls = 0


def _next_tags() -> tuple[int, int]:
    global _calls
    _calls += 1
    base = 100 + 2 * (_calls % _TAG_SPACE)
    return base, base + 1


class _Failure:
    def __init__(
        self, message: str, rank: int | None, index: int | None, exc: BaseException | None
    ):
        self.message = message
        self.rank = rank
        self.index = index
        self.exc = exc

    def error(self) -> DistributedError:
        return DistributedError(self.message, self.rank, self.index)


class _Coordinator:
    """Rank 0's side of :func:`run_tasks`: the scheduler, the callbacks and the messages.

    Rank 0's own work loop talks to it through two Python queues (``inbox`` for its results,
    ``local`` for its next task), exactly as remote ranks do through MPI, so the scheduling code
    does not care which rank a result came from. :meth:`pump` does one round of work; it runs
    in a coordinator thread, or is called by rank 0's main thread when there is no such thread.
    """

    def __init__(
        self,
        tasks: Sequence[Any],
        comm: Comm,
        tags: tuple[int, int],
        on_result: Callable[[Any, Any], None] | None,
        stop_when: Callable[[Any, Any], bool] | None,
        progress: Any,
        failure_grace: float,
    ):
        self.tasks = tasks
        self.comm = comm
        self.up, self.down = tags
        self.on_result = on_result
        self.stop_when = stop_when
        self.progress = progress
        self.failure_grace = failure_grace
        self.schedule = _Schedule(len(tasks))
        self.run = TaskRun(results=[None] * len(tasks))
        self.inbox: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self.local: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self.local_cancelled: set[int] = set()
        self.waiting: set[int] = set()  # ranks that asked for a task and got none yet
        self.released: set[int] = set()  # ranks sent "done"/"fail"
        self.failure: _Failure | None = None
        self.failed_at = 0.0
        self.local_works = True
        self.finished = threading.Event()

    # ---- rank 0's work loop -----------------------------------------------------------------

    def should_abort_local(self, index: int) -> bool:
        return self.failure is not None or index in self.local_cancelled

    # ---- one round ----------------------------------------------------------------------------

    def pump(self, timeout: float = 0.0) -> bool:
        """Handle what is waiting (waiting up to ``timeout`` for rank 0's own results); return
        True if anything was handled."""
        handled = False
        try:
            event = self.inbox.get(timeout=timeout) if timeout > 0 else self.inbox.get_nowait()
        except queue.Empty:
            event = None
        while event is not None:
            self._handle(ROOT, event)
            handled = True
            try:
                event = self.inbox.get_nowait()
            except queue.Empty:
                event = None
        if self.comm.is_distributed:
            while True:
                found, message, source = self.comm.try_recv(None, self.up)
                if not found:
                    break
                self._handle(source, message)
                handled = True
        self._maybe_release()
        self._check_grace()
        return handled

    def serve(self) -> None:
        """Pump until every rank is released (the coordinator thread's body)."""
        delay = _POLL_MIN
        while not self.finished.is_set():
            busy = self.pump(timeout=delay)
            delay = _POLL_MIN if busy else min(delay * 2, _POLL_MAX)

    # ---- events -------------------------------------------------------------------------------

    def _handle(self, rank: int, message: tuple[Any, ...]) -> None:
        try:
            kind = message[0]
            if kind == "result":
                self._finished_task(rank, message[1], message[2])
            elif kind == "aborted":
                self._aborted_task(rank, message[1])
            elif kind == "error":
                index, text = message[1], message[2]
                self.schedule.drop(index)
                exc = message[3] if len(message) > 3 else None
                task = self.tasks[index]
                self._fail(
                    f"rank {rank} failed on task {index} ({_short(task)}):\n{text.rstrip()}",
                    rank,
                    index,
                    exc,
                )
            if kind in ("ready", "result", "aborted", "error"):
                self._assign(rank)
        except Exception as exc:  # a bug here or in on_result/stop_when: stop everyone
            text = traceback.format_exc()
            self._fail(f"rank 0 failed while handling a result:\n{text.rstrip()}", ROOT, None, exc)
            self._assign(rank)

    def _finished_task(self, rank: int, index: int, value: Any) -> None:
        # A finished result is always delivered, even for a task cancelled while it ran (it
        # finished before it saw the cancel) or during a failure: its work is done, maybe
        # saved to disk, and results.jsonl must say so. Such a late task cannot change the
        # winner (cancelled tasks come after the best one), and during a failure stop_when
        # is not asked.
        task = self.tasks[index]
        self.run.results[index] = value
        self.run.completed.append(index)
        self.run.ranks[index] = rank
        met = False
        try:
            if self.on_result is not None:
                self.on_result(task, value)
            if self.stop_when is not None and self.failure is None:
                met = bool(self.stop_when(task, value))
        finally:
            # Record the task even when a callback failed, so the run can drain and stop.
            for j in self.schedule.finish(index, met):
                self._cancel(j)
        if self.progress is not None:
            self.progress.update(1)

    def _aborted_task(self, rank: int, index: int) -> None:
        if index not in self.schedule.cancelled and self.failure is None:
            # Skipped by the work function itself: finished, no result, objective not met.
            self.run.skipped.append(index)
            for j in self.schedule.finish(index, met=False):
                self._cancel(j)
            if self.progress is not None:
                self.progress.update(1)
            return
        self.schedule.drop(index)
        if index in self.schedule.cancelled and index not in self.run.abandoned:
            self.run.abandoned.append(index)

    def _cancel(self, index: int) -> None:
        rank = self.schedule.running.get(index)
        if rank == ROOT and self.local_works:
            self.local_cancelled.add(index)
        elif rank is not None:
            self.comm.send(("cancel", index), rank, self.down)

    def _assign(self, rank: int) -> None:
        """Give ``rank`` its next task, or remember it waits for the end of the run."""
        index = self.schedule.take(rank) if self.failure is None else None
        if index is None:
            self.waiting.add(rank)
            return
        if rank == ROOT:
            self.local.put(("task", index, self.tasks[index]))
        else:
            self.comm.send(("task", index, self.tasks[index]), rank, self.down)

    def _fail(self, message: str, rank: int | None, index: int | None, exc: Any) -> None:
        if self.failure is not None:
            return  # the first failure is the one reported
        self.failure = _Failure(
            message, rank, index, exc if isinstance(exc, BaseException) else None
        )
        self.failed_at = time.monotonic()
        if self.comm.is_distributed:
            print(f"[rank 0] {self._summary()}; stopping all ranks", file=sys.stderr, flush=True)
        for busy_rank in list(self.schedule.running.values()):
            if busy_rank != ROOT:
                self.comm.send(("fail", self._summary()), busy_rank, self.down)
                self.released.add(busy_rank)

    def _maybe_release(self) -> None:
        """When the run is over, release every waiting rank and mark the run finished."""
        if self.failure is not None:
            for rank in sorted(self.waiting - self.released):
                if rank != ROOT:
                    self.comm.send(("fail", self._summary()), rank, self.down)
                self.released.add(rank)
            if self.schedule.running:
                return
            if self.local_works and ROOT not in self.waiting:
                return  # rank 0's own task is still running
        else:
            if not self.schedule.done:
                return
            self.run.winner = self.schedule.winner
            for rank in sorted(self.waiting - self.released):
                if rank != ROOT:
                    self.comm.send(("done", self.run), rank, self.down)
                self.released.add(rank)
        # Every other rank must have said "ready" before the run can end: a rank that is late
        # to call run_tasks would otherwise wait for an answer forever.
        workers = set(range(1, self.comm.size))
        if self.local_works:
            workers.add(ROOT)
        if workers <= self.released:
            if self.failure is None:
                self.local.put(("done", self.run))
            else:
                self.local.put(("fail", self.failure.message))
            self.finished.set()

    def _summary(self) -> str:
        """The failure's first line, for the other ranks (rank 0 reports the traceback)."""
        assert self.failure is not None
        return self.failure.message.splitlines()[0].rstrip(":")

    def _check_grace(self) -> None:
        if self.failure is None or not self.schedule.running or not self.comm.is_distributed:
            return
        if time.monotonic() - self.failed_at < self.failure_grace:
            return
        busy = ", ".join(f"task {i} on rank {r}" for i, r in sorted(self.schedule.running.items()))
        print(
            f"[rank 0] {busy} did not stop within {self.failure_grace:g} s of the failure "
            f"(work functions should poll ctx.should_abort()); aborting the job.\n"
            f"{self.failure.message}",
            file=sys.stderr,
            flush=True,
        )
        self.comm.abort(1)


def _short(task: Any, limit: int = 80) -> str:
    text = repr(task)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _call_work(
    work_fn: Callable[[Any, TaskContext], Any], task: Any, ctx: TaskContext
) -> tuple[Any, ...]:
    """Run one task and turn its outcome into an up message."""
    try:
        value = work_fn(task, ctx)
    except TaskAborted:
        return ("aborted", ctx.index)
    except Exception as exc:
        # Start the traceback at the work function, not at this wrapper.
        tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
        text = "".join(traceback.format_exception(type(exc), exc, tb))
        return ("error", ctx.index, text, exc)
    if ctx.told_to_abort:
        return ("aborted", ctx.index)  # returned early because it was told to stop: unfinished
    return ("result", ctx.index, value)


def _root_work_loop(
    coordinator: _Coordinator,
    work_fn: Callable[[Any, TaskContext], Any],
    take: Callable[[], tuple[Any, ...]],
    pump_in_abort: bool,
) -> tuple[Any, ...]:
    """Rank 0 working: ask for a task, run it, report it, until told the run is over."""
    coordinator.inbox.put(("ready",))
    last_pump = [0.0]
    while True:
        message = take()
        if message[0] != "task":
            return message
        _, index, task = message

        def should_abort(index: int = index) -> bool:
            if pump_in_abort and time.monotonic() - last_pump[0] >= _ABORT_POLL:
                last_pump[0] = time.monotonic()
                coordinator.pump()
            return coordinator.should_abort_local(index)

        coordinator.inbox.put(_call_work(work_fn, task, TaskContext(index, ROOT, should_abort)))


def _worker(
    comm: Comm, work_fn: Callable[[Any, TaskContext], Any], tags: tuple[int, int]
) -> TaskRun:
    """A rank other than 0: ask for tasks, run them, send results, until rank 0 says stop."""
    up, down = tags
    pending: list[tuple[Any, ...]] = []  # messages read while polling inside a task
    comm.send(("ready",), ROOT, up)
    while True:
        message = pending.pop(0) if pending else comm.recv(ROOT, down)[0]
        kind = message[0]
        if kind == "done":
            return message[1]
        if kind == "fail":
            raise DistributedError(f"stopped because {message[1]} (traceback on rank 0)")
        if kind == "cancel":
            continue  # about a task this rank already finished
        _, index, task = message
        state = {"abort": False, "polled": 0.0}

        def should_abort(index: int = index, state: dict[str, Any] = state) -> bool:
            if state["abort"]:
                return True
            now = time.monotonic()
            if now - state["polled"] < _ABORT_POLL:
                return False
            state["polled"] = now
            while True:
                found, msg, _source = comm.try_recv(ROOT, down)
                if not found:
                    break
                if msg[0] == "cancel" and msg[1] != index:
                    continue
                if msg[0] in ("cancel", "fail"):
                    state["abort"] = True
                if msg[0] != "cancel":
                    pending.append(msg)
            return bool(state["abort"])

        report = _call_work(work_fn, task, TaskContext(index, comm.rank, should_abort))
        if report[0] == "error":
            report = report[:3]  # the exception object may not pickle; the traceback text does
        try:
            comm.send(report, ROOT, up)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            comm.send(
                ("error", index, f"the result of task {index} cannot be sent: {exc!r}"), ROOT, up
            )


def run_tasks(
    tasks: Sequence[Any],
    work_fn: Callable[[Any, TaskContext], Any],
    comm: Comm | None = None,
    on_result: Callable[[Any, Any], None] | None = None,
    stop_when: Callable[[Any, Any], bool] | None = None,
    progress: str | Any | None = None,
    *,
    root_works: bool = True,
    threaded: bool | None = None,
    failure_grace: float = 30.0,
) -> TaskRun:
    """Run ``work_fn(task, ctx)`` for every task, spread over the ranks; call it on every rank.

    Tasks are handed out one at a time, in list order, to whichever rank asks next (rank 0
    included), so fast and slow tasks balance themselves. Only rank 0's ``tasks`` matter: each
    task is sent to the rank that runs it, so it must pickle, and so must results.

    Ordered early stop: with ``stop_when``, the run ends when the objective is met by the *first*
    task in list order that meets it. A task meeting it while an earlier task still runs does
    not win yet; if the earlier one meets it too, the earlier one wins. Once task *i* has met
    it, no task after *i* is started and those running are cancelled (``ctx.should_abort()``
    turns true; what they return after that is discarded). A cancelled task that finishes
    without having been told (its result crossed the cancel message) is still a finished
    result: it reaches ``on_result`` and :attr:`TaskRun.results` like any other, because its
    work is done and may be on disk; it cannot change the winner. :attr:`TaskRun.winner` is *i*
    once every task before it finished without meeting the objective. A work function that raises
    :class:`TaskAborted` on its own (a time budget ran out) *skips* its task: finished, no
    result, objective not met, ``on_result`` not called.

    Parameters:
        tasks: the tasks, in priority order (e.g. smallest configuration first).
        work_fn: ``work_fn(task, ctx) -> result``; ``ctx`` is a :class:`TaskContext` whose
            ``should_abort()`` long tasks poll between steps.
        comm: from :func:`get_comm` (default); a :class:`LocalComm` runs everything here.
        on_result: ``on_result(task, result)``, called on rank 0 for every finished task in
            completion order, never dropped (also late cancelled ones and during a failure) (append to results.jsonl, print); with a coordinator thread it
            runs in that thread, one call at a time, so keep TensorFlow out of it.
        stop_when: ``stop_when(task, result) -> bool``, called on rank 0 after ``on_result``;
            true means the result meets the objective.
        progress: a description (rank 0 shows a tqdm bar of completed tasks) or any object with
            ``update(n)``.
        root_works: rank 0 runs tasks as well as coordinating (always true without MPI).
        threaded: use a coordinator thread on rank 0 (default: when MPI allows threads);
            False makes rank 0 serve the others between its tasks and in ``should_abort()``.
        failure_grace: after a failure, seconds to wait for busy ranks before ``MPI_Abort``.

    Returns:
        the :class:`TaskRun`, identical on every rank.

    Raises:
        DistributedError: on every rank when a work function (on any rank) or a rank-0 callback
            raised; the message names the rank and task and holds the traceback.
    """
    comm = comm if comm is not None else get_comm()
    tags = _next_tags() if comm.is_distributed else (0, 0)
    if not comm.is_root:
        return _worker(comm, work_fn, tags)

    bar = None
    if isinstance(progress, str):
        bar = progress_bar(total=len(tasks), desc=progress, comm=comm)
    elif progress is not None:
        bar = progress
    coordinator = _Coordinator(tasks, comm, tags, on_result, stop_when, bar, failure_grace)
    local_works = root_works or not comm.is_distributed
    coordinator.local_works = local_works
    if threaded is None:
        threaded = comm.is_distributed and comm.threads_allowed
    threaded = threaded and comm.is_distributed and local_works

    try:
        if not local_works:
            coordinator.serve()
            outcome = coordinator.local.get()
        elif threaded:
            thread = threading.Thread(
                target=_guarded_serve, args=(coordinator,), name="cocotune-coordinator", daemon=True
            )
            thread.start()
            outcome = _root_work_loop(coordinator, work_fn, coordinator.local.get, False)
            thread.join()
        else:

            def take() -> tuple[Any, ...]:
                delay = _POLL_MIN
                while True:
                    try:
                        return coordinator.local.get_nowait()
                    except queue.Empty:
                        coordinator.pump(timeout=delay)
                        delay = min(delay * 2, _POLL_MAX)

            outcome = _root_work_loop(coordinator, work_fn, take, True)
    finally:
        if isinstance(progress, str) and bar is not None:
            bar.close()

    if outcome[0] == "fail":
        failure = coordinator.failure
        assert failure is not None
        raise failure.error() from failure.exc
    return outcome[1]


def _guarded_serve(coordinator: _Coordinator) -> None:
    """The coordinator thread: a bug here must end the job, not leave rank 0 waiting."""
    try:
        coordinator.serve()
    except BaseException:
        text = traceback.format_exc()
        print(
            f"[rank 0] coordinator thread crashed, aborting:\n{text}", file=sys.stderr, flush=True
        )
        coordinator.comm.abort(1)
