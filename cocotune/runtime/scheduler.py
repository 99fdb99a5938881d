"""Handing out tasks (configurations to fine-tune, blocks to pre-train) to the ranks, with an
ordered early stop (docs/design.md).

The same code runs alone or under ``mpirun``:

    comm = get_comm()                  # cocotune.runtime.mpi: MPI under mpirun, else a stand-in
    configure_threads(comm)            # cocotune.runtime.threads: before TensorFlow runs anything
    log = ResultsLog(out / "runs" / "results.jsonl", comm)    # cocotune.runtime.results
    todo = [c for c in configs if c["id"] not in log.done_ids()]    # resume: skip what is done
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
scheduler runs every task in the one process. Every wait sleeps rather than spins (see "No busy
waiting" in :mod:`cocotune.runtime.mpi`).

**Failures.** An exception in a work function is sent to rank 0 with its traceback; rank 0 tells
every rank to stop (``ctx.should_abort()`` turns true, idle ranks are released), waits for the
busy ranks to come back, then :func:`run_tasks` raises :class:`DistributedError` on every rank
with the failing rank, task and traceback in the message. If a busy rank does not come back within
``failure_grace`` seconds rank 0 calls ``MPI_Abort``. (An exception outside ``run_tasks`` is
handled by the hook :func:`cocotune.runtime.mpi.get_comm` installs.)
"""

from __future__ import annotations

import pickle
import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cocotune.runtime.mpi import POLL_MAX, POLL_MIN, ROOT, Comm, DistributedError, get_comm
from cocotune.runtime.progress import progress_bar

__all__ = ["TaskAborted", "TaskContext", "TaskRun", "run_tasks"]

# How often a worker's ctx.should_abort() looks for messages from rank 0.
_ABORT_POLL = 0.05


class TaskAborted(Exception):
    """Raised by a work function that gives up on its task.

    After ``ctx.should_abort()`` returned true the task is *abandoned* (an earlier task met the
    objective). Raised without that, the task is *skipped* (e.g. a time budget ran out): it counts
    as finished without meeting the objective and without a result, so later tasks can still win.
    """


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
        delay = POLL_MIN
        while not self.finished.is_set():
            busy = self.pump(timeout=delay)
            delay = POLL_MIN if busy else min(delay * 2, POLL_MAX)

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
                delay = POLL_MIN
                while True:
                    try:
                        return coordinator.local.get_nowait()
                    except queue.Empty:
                        coordinator.pump(timeout=delay)
                        delay = min(delay * 2, POLL_MAX)

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
