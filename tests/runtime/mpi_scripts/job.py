"""A small MPI program the tests start under ``mpirun -n 2``; one scenario per subcommand.

    mpirun -n 2 python job.py SCENARIO OUT_DIR [options]

Every rank writes ``OUT_DIR/rank<r>.json`` (the tasks it ran and its CPU time); rank 0 also
writes ``OUT_DIR/run.json`` (the TaskRun). The tests read those files and the exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from cocotune.runtime.mpi import get_comm
from cocotune.runtime.results import ResultsLog
from cocotune.runtime.scheduler import TaskAborted, run_tasks


def sleep_polling(seconds: float, ctx) -> None:
    """Sleep like a training loop: short steps, checking ctx.should_abort() between them."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if ctx.should_abort():
            raise TaskAborted()
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario")
    parser.add_argument("out", type=Path)
    parser.add_argument("--threaded", choices=["auto", "yes", "no"], default="auto")
    parser.add_argument("--root-works", choices=["yes", "no"], default="yes")
    parser.add_argument("--package", type=Path)
    parser.add_argument("--devices", default="auto")
    args = parser.parse_args()
    if args.scenario == "no-mpi4py":
        # mpi4py missing (e.g. cocotune installed without the [mpi] extra): the generated
        # scripts' entry point must say how to install it and exit, on every rank.
        sys.modules["mpi4py"] = None  # makes `import mpi4py` raise ImportError
        from cocotune.runtime.options import run_main

        sys.exit(run_main(lambda package_dir, argv: 0, args.out, []))
    threaded = {"auto": None, "yes": True, "no": False}[args.threaded]
    root_works = args.root_works == "yes"

    comm = get_comm()
    ran: list[int] = []
    seen: list[int] = []
    record: dict = {"rank": comm.rank, "size": comm.size, "ran": ran}
    cpu0 = time.process_time()
    wall0 = time.monotonic()
    kwargs = dict(comm=comm, threaded=threaded, root_works=root_works)
    met = args.out / "task0-met"
    started = args.out / "task1-started"

    def wait_for(path: Path) -> None:
        """Order events between the ranks through files (they share this machine)."""
        end = time.monotonic() + 30
        while not path.exists() and time.monotonic() < end:
            time.sleep(0.01)

    if args.scenario == "all":
        # 20 tasks of 50 ms: every task exactly once, both ranks busy. Twice, to check that
        # consecutive calls don't mix their messages, with a bcast and barrier in between.
        def work(task, ctx):
            ran.append(task)
            time.sleep(0.05)
            return {"task": task, "square": task * task, "rank": ctx.rank}

        run = run_tasks(list(range(20)), work, on_result=lambda t, r: seen.append(t), **kwargs)
        token = comm.bcast("token-from-root" if comm.is_root else None)
        comm.barrier()
        run2 = run_tasks(list(range(100, 104)), work, progress="second call", **kwargs)
        record.update(token=token, second=run2.results)

    elif args.scenario == "early":
        # Task 1 (slow) and task 2 (fast) both meet the objective; 2 finishes first but 1 must
        # win. Tasks 3+ also meet it and must never start.
        durations = {0: 0.1, 1: 1.5, 2: 0.1}

        def work(task, ctx):
            ran.append(ctx.index)
            sleep_polling(durations.get(task, 0.1), ctx)
            return {"task": task, "accuracy": 0.5 if task == 0 else 0.9}

        run = run_tasks(
            list(range(8)),
            work,
            on_result=lambda t, r: seen.append(t),
            stop_when=lambda t, r: r["accuracy"] >= 0.8,
            **kwargs,
        )

    elif args.scenario == "cancel":
        # Task 0 meets the objective after 1 s while task 1 would run 30 s: task 1 is cancelled
        # through should_abort() and the run ends after about 1 s.
        def work(task, ctx):
            ran.append(ctx.index)
            sleep_polling(1.0 if task == 0 else 30.0, ctx)
            return {"task": task}

        run = run_tasks(
            [0, 1],
            work,
            on_result=lambda t, r: seen.append(t),
            stop_when=lambda t, r: True,
            **kwargs,
        )

    elif args.scenario == "late-result":
        # Issue 16 bug 4, scripted: task 0 meets the objective while task 1 runs on the other
        # rank; task 1 finishes after rank 0 has cancelled it, without polling should_abort()
        # (say it was saving its model). Its finished result must still reach on_result.
        # Task 2 polls and is told to stop: its result is discarded. Files order the events.
        def work(task, ctx):
            ran.append(ctx.index)
            if task == 0:
                wait_for(started)  # both tasks run at the same time
                return {"task": 0, "meets": True}
            if task == 1:
                started.write_text("")
                wait_for(met)
                time.sleep(0.3)  # rank 0 has cancelled task 1 by now
                return {"task": 1, "meets": True}
            return {"task": task, "meets": True}

        def stop_when(task, result):
            if task == 0:
                met.write_text("")
            return result["meets"]

        run = run_tasks(
            [0, 1, 2, 3],
            work,
            on_result=lambda t, r: seen.append(t),
            stop_when=stop_when,
            **kwargs,
        )

    elif args.scenario == "told-then-returns":
        # A task told to stop that returns (instead of raising TaskAborted) is unfinished: its
        # value is discarded and on_result is not called for it.
        def work(task, ctx):
            ran.append(ctx.index)
            if task == 0:
                wait_for(started)
                time.sleep(0.2)
                return {"task": 0}
            started.write_text("")
            end = time.monotonic() + 30
            while time.monotonic() < end and not ctx.should_abort():
                time.sleep(0.01)
            return {"task": task, "partial": True}

        run = run_tasks(
            [0, 1],
            work,
            on_result=lambda t, r: seen.append(t),
            stop_when=lambda t, r: True,
            **kwargs,
        )

    elif args.scenario == "fail-while-finishing":
        # Task 0 fails while task 1 runs on the other rank; task 1 finishes anyway (it does not
        # poll should_abort): the run fails, but task 1's finished result still reaches
        # on_result (it may be on disk already).
        from cocotune.runtime.mpi import DistributedError

        def work(task, ctx):
            ran.append(ctx.index)
            if task == 0:
                wait_for(started)
                raise ValueError("boom in task 0")
            started.write_text("")
            time.sleep(1.0)
            return {"task": task}

        try:
            run_tasks([0, 1, 2], work, on_result=lambda t, r: seen.append(t), **kwargs)
        except DistributedError as exc:
            record.update(error=str(exc).splitlines()[0], seen=seen)
        (args.out / f"rank{comm.rank}.json").write_text(json.dumps(record))
        return

    elif args.scenario == "fail":
        # The first task rank 1 runs raises; the others poll should_abort().
        def work(task, ctx):
            ran.append(ctx.index)
            if ctx.rank == 1:
                raise ValueError(f"boom in task {task} on rank 1")
            sleep_polling(0.3, ctx)
            return task

        run = run_tasks(list(range(20)), work, **kwargs)

    elif args.scenario == "stuck":
        # Rank 1 fails while rank 0 is in a long task that never polls should_abort(): after
        # failure_grace seconds rank 0's coordinator thread aborts the job.
        # Rank 1 fails only once rank 0 is inside its long task (a file says so): on a loaded
        # machine a fixed delay could let the failure arrive before rank 0 starts, and rank 0
        # would then stop cleanly instead of being aborted.
        busy = args.out / "rank0-busy"

        def work(task, ctx):
            ran.append(ctx.index)
            if ctx.rank == 1:
                deadline = time.monotonic() + 30.0
                while not busy.exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
                time.sleep(0.3)
                raise ValueError("boom while rank 0 is busy")
            busy.write_text("1")
            time.sleep(60.0)
            return task

        run = run_tasks([0, 1, 2], work, failure_grace=1.0, **kwargs)

    elif args.scenario == "crash-outside":
        # An exception outside run_tasks on rank 1 (say, loading data): without the excepthook
        # rank 1 would wait in MPI_Finalize and rank 0 for rank 1, forever.
        if comm.rank == 1:
            raise RuntimeError("cannot load the data set on rank 1")
        run = run_tasks(list(range(3)), lambda t, ctx: t, **kwargs)

    elif args.scenario == "kill":
        # Rank 1 is killed (SIGKILL) in its second task, as the OOM killer would.
        def work(task, ctx):
            ran.append(ctx.index)
            if ctx.rank == 1 and len(ran) == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            sleep_polling(0.2, ctx)
            return task

        run = run_tasks(list(range(40)), work, **kwargs)

    elif args.scenario == "results":
        # Every rank opens the log; only rank 0 writes it (through on_result, and the
        # append after the run is a no-op elsewhere).
        log = ResultsLog(args.out / "results.jsonl", comm=comm)
        todo = [i for i in range(12) if f"cfg{i}" not in log.done_ids()]

        def work(task, ctx):
            ran.append(ctx.index)
            time.sleep(0.05)
            return {"id": f"cfg{task}", "accuracy": task / 12, "rank": ctx.rank}

        run = run_tasks(todo, work, on_result=lambda t, r: log.append(r), **kwargs)
        log.append({"id": f"after-run-rank{comm.rank}"})

    elif args.scenario == "idle":
        # Rank 0's first task takes 2 s; rank 1 finishes everything else and waits. Waiting
        # must not burn CPU (MPICH's blocking calls spin).
        def work(task, ctx):
            ran.append(ctx.index)
            if ctx.rank == 0 and len(ran) == 1:
                time.sleep(2.0)
            return task

        run = run_tasks(list(range(4)), work, **kwargs)

    elif args.scenario == "late":
        # Rank 1 reaches run_tasks 1 s late, after rank 0 did everything: it must still be
        # released.
        if comm.rank == 1:
            time.sleep(1.0)
        run = run_tasks(list(range(3)), lambda t, ctx: ran.append(ctx.index) or t, **kwargs)

    elif args.scenario == "node":
        # Which node each rank is on, as the MPI library sees it (hosts given to mpirun).
        host, local_rank, local_size = comm.node()
        record.update(host=host, local_rank=local_rank, local_size=local_size)
        run = run_tasks(list(range(6)), lambda t, ctx: t * t, **kwargs)

    elif args.scenario == "devices":
        # Thread sizing and device choice per rank; rank 0 prints the mapping.
        from cocotune.runtime.devices import DeviceError
        from cocotune.runtime.threads import configure_threads

        try:
            config = configure_threads(comm, devices=args.devices)
        except DeviceError as exc:
            record.update(error=exc.message)
            (args.out / f"rank{comm.rank}.json").write_text(json.dumps(record))
            sys.exit(2)
        record.update(device=config.device, intra=config.intra_op, ranks=config.ranks)
        run = run_tasks([0, 1], lambda t, ctx: t, **kwargs)

    elif args.scenario == "shared":
        # Every rank must see rank 0's package and runs/ before any work (several nodes).
        from cocotune.runtime.startup import SharedPathError, check_shared_package

        try:
            check_shared_package(comm, args.package)
        except SharedPathError as exc:
            record.update(error=exc.render())
            (args.out / f"rank{comm.rank}.json").write_text(json.dumps(record))
            sys.exit(2)
        run = run_tasks([0, 1], lambda t, ctx: t, **kwargs)

    else:
        sys.exit(f"unknown scenario {args.scenario}")

    record.update(
        cpu=time.process_time() - cpu0,
        wall=time.monotonic() - wall0,
        winner=run.winner,
        completed=run.completed,
    )
    (args.out / f"rank{comm.rank}.json").write_text(json.dumps(record))
    if comm.is_root:
        summary = {
            "results": run.results,
            "winner": run.winner,
            "completed": run.completed,
            "ranks": {str(k): v for k, v in run.ranks.items()},
            "abandoned": run.abandoned,
            "seen": seen,
        }
        (args.out / "run.json").write_text(json.dumps(summary))


if __name__ == "__main__":
    main()
