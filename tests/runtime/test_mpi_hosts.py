"""Several nodes, simulated on this machine: hosts given to mpirun, the shared-package check,
the device mapping under mpirun, and a missing mpi4py.

Hydra (the ``mpich`` wheel's ``mpirun``) launches ranks on host names that resolve to this
machine without ssh. A repeated name is merged into one node (``-hosts localhost,localhost``
or a hostfile with two ``localhost:1`` lines gives one node with 2 ranks); two different names
for this machine (``localhost`` and its host name) make two nodes of one rank each, which
talk through the network module as on a real cluster. A rank that does not see the package is
simulated with a private mount namespace (``unshare -m``) that hides or replaces the directory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cocotune.errors import CocotuneError
from cocotune.runtime import mpi, threads
from cocotune.runtime.mpi import DistributedError, LocalComm, MpiUnavailableError, get_comm
from cocotune.runtime.startup import _check_package, _fingerprint, check_shared_package

JOB = Path(__file__).resolve().parent / "mpi_scripts" / "job.py"
MPIRUN = Path(sys.executable).parent / "mpirun"
LAUNCH_VARS = [
    "PMI_SIZE",
    "PMI_RANK",
    "PMIX_RANK",
    "OMPI_COMM_WORLD_SIZE",
    "OMPI_COMM_WORLD_RANK",
    "MPI_LOCALNRANKS",
    "OMPI_COMM_WORLD_LOCAL_SIZE",
]
HOSTNAME = socket.gethostname()

needs_mpirun = pytest.mark.skipif(not MPIRUN.exists(), reason=f"{MPIRUN} not found")


def launch(command: list[str], timeout: float = 120) -> tuple[int, str, float]:
    """Run an mpirun command in its own process group; kill the group if it hangs."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS}
    start = time.monotonic()
    proc = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"hung for {timeout} s: {' '.join(command)}\n{output}")
    return proc.returncode, output, time.monotonic() - start


def ranks(out: Path) -> list[dict]:
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


# --------------------------------------------------------------------------------------------
# Without MPI
# --------------------------------------------------------------------------------------------


def test_missing_mpi4py_says_how_to_install_it(monkeypatch):
    for var in LAUNCH_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(mpi, "_COMM", None)
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py -> ImportError
    with pytest.raises(MpiUnavailableError) as info:
        get_comm()
    assert isinstance(info.value, CocotuneError) and isinstance(info.value, DistributedError)
    text = info.value.render()
    assert text.startswith("error: launched by mpirun with 2 ranks, but mpi4py cannot be imported")
    assert "pip install 'cocotune[mpi]'" in text and "MPICC=" in text


def test_shared_check_is_free_in_one_process(tmp_path):
    check_shared_package(LocalComm(), tmp_path / "absent")  # nothing to compare with
    assert not (tmp_path / "absent").exists()


def test_check_package_finds_each_problem(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "runs").mkdir(parents=True)
    (pkg / "tuning.json").write_text('{"modules": []}')
    (pkg / "runs" / ".token").write_text("abc")
    header = (str(pkg.resolve()), _fingerprint(pkg), ".token", "abc")
    assert _check_package(pkg, *header) is None
    other = tmp_path / "other"
    assert (
        _check_package(other, *header) == f"{other} (rank 0 uses {header[0]}) does not exist here"
    )
    other.symlink_to(pkg)  # another name for the same folder is fine
    assert _check_package(other, *header) is None
    assert "differs from rank 0's" in _check_package(pkg, header[0], "0" * 16, ".token", "abc")
    assert "is not the folder rank 0 writes to" in _check_package(pkg, *header[:3], "xyz")
    missing = (header[0], header[1], ".gone", "abc")
    assert "a file rank 0 wrote there is missing" in _check_package(pkg, *missing)
    (pkg / "tuning.json").unlink()
    assert "cannot read" in _check_package(pkg, *header) and "tuning.json" in _check_package(
        pkg, *header
    )
    shutil.rmtree(pkg)
    assert "does not exist here" in _check_package(pkg, *header)


# --------------------------------------------------------------------------------------------
# Hosts
# --------------------------------------------------------------------------------------------


@pytest.mark.mpi
@pytest.mark.slow
@needs_mpirun
@pytest.mark.skipif(HOSTNAME in ("localhost", ""), reason="needs a second name for this machine")
@pytest.mark.parametrize(
    "hosts, nodes",
    [
        (["-hosts", f"localhost,{HOSTNAME}"], 2),  # two names for this machine: two nodes
        (["-hosts", "localhost,localhost"], 1),  # a repeated name is one node
        (["-f", "HOSTFILE"], 2),  # hostfile lines "localhost:1" and "<hostname>:1"
    ],
)
def test_two_hosts_on_this_machine(tmp_path, hosts, nodes):
    hostfile = tmp_path / "hostfile"
    hostfile.write_text(f"localhost:1\n{HOSTNAME}:1\n")
    hosts = [str(hostfile) if h == "HOSTFILE" else h for h in hosts]
    out = tmp_path / "out"
    out.mkdir()
    command = [str(MPIRUN), *hosts, "-n", "2", sys.executable, str(JOB), "node", str(out)]
    code, output, seconds = launch(command, timeout=60)
    assert code == 0, output
    r0, r1 = ranks(out)
    if nodes == 2:
        assert (r0["local_rank"], r0["local_size"], r1["local_rank"], r1["local_size"]) == (
            0,
            1,
            0,
            1,
        )
    else:
        assert sorted([r0["local_rank"], r1["local_rank"]]) == [0, 1]
        assert r0["local_size"] == r1["local_size"] == 2
    assert r0["completed"] == r1["completed"] and sorted(r0["completed"]) == list(range(6))


# --------------------------------------------------------------------------------------------
# Devices under mpirun (no GPU here: every rank on the CPU, threads split per node)
# --------------------------------------------------------------------------------------------


@pytest.mark.mpi
@pytest.mark.slow
@needs_mpirun
def test_device_mapping_is_logged_by_rank_0(tmp_path):
    command = [str(MPIRUN), "-n", "2", sys.executable, str(JOB), "devices", str(tmp_path)]
    code, output, _ = launch(command)
    assert code == 0, output
    lines = [line for line in output.splitlines() if line.startswith("rank ")]
    assert lines == [
        f"rank 0 on {HOSTNAME}: local rank 0 of 2, cpu, {max(1, threads._cpu_count() // 2)} "
        f"thread{'s' if threads._cpu_count() >= 4 else ''} per op",
        f"rank 1 on {HOSTNAME}: local rank 1 of 2, cpu, {max(1, threads._cpu_count() // 2)} "
        f"thread{'s' if threads._cpu_count() >= 4 else ''} per op",
    ]
    assert [r["device"] for r in ranks(tmp_path)] == ["cpu", "cpu"]


@pytest.mark.mpi
@pytest.mark.slow
@needs_mpirun
def test_asking_for_a_missing_gpu_stops_every_rank(tmp_path):
    command = [
        str(MPIRUN),
        "-n",
        "2",
        sys.executable,
        str(JOB),
        "devices",
        str(tmp_path),
        "--devices",
        "0",
    ]
    code, output, seconds = launch(command)
    assert code != 0
    for record in ranks(tmp_path):  # every rank knows, nobody waits for the others
        assert record["error"] == (
            f"--devices 0: GPU 0 not found; this node has no GPU (ranks 0 on {HOSTNAME}, "
            f"1 on {HOSTNAME})"
        )


# --------------------------------------------------------------------------------------------
# A rank that does not see the package (unshare -m: a private view of the file system)
# --------------------------------------------------------------------------------------------


def _can_unshare() -> bool:
    try:
        return (
            subprocess.run(["unshare", "-m", "true"], capture_output=True, timeout=10).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.mpi
@pytest.mark.slow
@needs_mpirun
@pytest.mark.skipif(not _can_unshare(), reason="unshare -m is not allowed here")
@pytest.mark.parametrize(
    "hide, message",
    [
        (None, None),
        ("mount -t tmpfs none {share}", "{pkg} does not exist here"),
        ("mount -t tmpfs none {pkg}", "cannot read {pkg}/tuning.json (No such file or directory)"),
        (
            "mount --bind {copy} {pkg}",
            "{pkg}/runs is not the folder rank 0 writes to (a file rank 0 wrote there is missing)",
        ),
    ],
)
def test_rank_that_cannot_see_the_package_fails_clearly(tmp_path, hide, message):
    share = tmp_path / "share"
    pkg = share / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "tuning.json").write_text('{"modules": []}')
    copy = tmp_path / "copy"  # the same package copied to a "node-local" disk
    shutil.copytree(pkg, copy)
    out = tmp_path / "out"
    out.mkdir()
    job = [sys.executable, str(JOB), "shared", str(out), "--package", str(pkg)]
    if hide is None:
        command = [str(MPIRUN), "-n", "2", *job]
    else:
        hidden = hide.format(share=share, pkg=pkg, copy=copy) + " && exec " + " ".join(job)
        command = [
            str(MPIRUN),
            "-n",
            "1",
            *job,
            ":",
            "-n",
            "1",
            "unshare",
            "-m",
            "sh",
            "-c",
            hidden,
        ]
    code, output, seconds = launch(command, timeout=60)
    assert seconds < 30
    if message is None:
        assert code == 0, output
        assert not list((pkg / "runs").glob(".shared-check-*"))  # the token is cleaned up
        return
    assert code != 0
    expected = message.format(pkg=pkg)
    for record in ranks(out):  # the same error on every rank, naming the host and the path
        assert record["error"].splitlines()[:2] == [
            f"error: 1 of 2 ranks cannot use the package directory {pkg}",
            f"note: rank 1 on host {HOSTNAME}: {expected}",
        ]
    assert not list((pkg / "runs").glob(".shared-check-*"))


# --------------------------------------------------------------------------------------------
# mpi4py missing under mpirun
# --------------------------------------------------------------------------------------------


@pytest.mark.mpi
@pytest.mark.slow
@needs_mpirun
def test_mpirun_without_mpi4py_exits_with_install_hint(tmp_path):
    command = [str(MPIRUN), "-n", "2", sys.executable, str(JOB), "no-mpi4py", str(tmp_path)]
    code, output, seconds = launch(command)
    assert code == 2, output
    assert "mpi4py cannot be imported" in output and "pip install 'cocotune[mpi]'" in output
    assert "Traceback" not in output
