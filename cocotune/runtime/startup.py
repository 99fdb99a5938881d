"""What every rank does before any work: find the communicator, check that all ranks see the
same package, size threads and pick devices (:func:`start_ranks`, called by the generated
scripts' entry point).

**Why check the package.** The ranks check that they all see rank 0's package directory and
``runs/`` (:func:`check_shared_package`: rank 0 broadcasts the path, a hash of tuning.json and a
token it writes into ``runs/``; all ranks agree, else every rank raises :class:`SharedPathError`
naming the host and path). Then :func:`cocotune.runtime.threads.configure_threads` sizes the
thread pools per node and gives each rank its device: the ranks of a node are found with
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
from collections.abc import Sequence
from pathlib import Path

from cocotune.errors import CocotuneError
from cocotune.runtime.mpi import Comm, DistributedError, get_comm
from cocotune.runtime.threads import configure_threads, request_devices

__all__ = ["SharedPathError", "check_shared_package", "start_ranks"]


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
    import argparse

    from cocotune.runtime.devices import parse_devices

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--devices", default="auto")
    known, _ = parser.parse_known_args(list(argv))
    request_devices(parse_devices(known.devices))
    comm = get_comm()
    check_shared_package(comm, package_dir)
    configure_threads(comm)
    return comm
