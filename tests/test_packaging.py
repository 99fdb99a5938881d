"""cocotune as an installable library: what the wheel contains, what its metadata asks pip for,
and that an installed wheel works outside the source tree.

The wheel is built once per module, offline, from a copy of the sources (``pip wheel
--no-build-isolation`` with this environment's setuptools), so the checkout is never written.
pip runs with the machine's pip configuration switched off, so only the given
``--find-links`` directory can supply distributions.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from email.parser import Parser
from importlib.metadata import version as installed_version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from tests.conftest import EXAMPLES, REPO

# Building the wheel and each pip run take seconds; the whole module runs in `make test` (CI).
pytestmark = pytest.mark.slow

SOURCES = [
    "setup.cfg",
    "setup.py",
    "pyproject.toml",
    "README.md",
    "cocotune",
    "grammar",
    "codegen_templates",
    "proto",
]
# Top-level data directories that install under another name (see setup.py).
MAPPED = {
    "grammar": "cocotune/grammar",
    "codegen_templates": "cocotune/codegen_templates",
    "proto": "cocotune/proto",
}
# Import name -> distribution, where they differ; TensorFlow and extras are handled apart.
DISTRIBUTION = {"google": "protobuf", "sklearn": "scikit-learn", "PIL": "pillow"}
# Imports satisfied by the TensorFlow the user chooses (cpu/gpu extra or their own).
FROM_TENSORFLOW = {"tensorflow"}
TENSORFLOWS = {"tensorflow", "tensorflow-cpu"}


def pip_env() -> dict[str, str]:
    """This process's environment without the machine's pip configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def pip(*args, python: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pip", *(["--python", str(python)] if python else []), *args]
    result = subprocess.run(
        [str(c) for c in cmd], env=pip_env(), capture_output=True, text=True, timeout=600
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", "*.egg-info", "build")
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(path, src / name)
    pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", root / "dist", src)
    (built,) = (root / "dist").glob("cocotune-*.whl")
    return built


def metadata(wheel: Path):
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return Parser().parsestr(zf.read(name).decode())


def requirements(wheel: Path) -> tuple[list[Requirement], dict[str, list[Requirement]]]:
    """(unconditional requirements, {extra: its requirements})."""
    meta = metadata(wheel)
    reqs = [Requirement(r) for r in meta.get_all("Requires-Dist")]
    extras = {
        e: [r for r in reqs if r.marker and r.marker.evaluate({"extra": e})]
        for e in meta.get_all("Provides-Extra")
    }
    return [r for r in reqs if r.marker is None], extras


def tracked_files(*dirs: str) -> list[str]:
    out = subprocess.run(["git", "ls-files", *dirs], cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    return out.stdout.split()


# ----------------------------------------------------------------------------------------------
# What the wheel contains
# ----------------------------------------------------------------------------------------------


def test_wheel_holds_every_package_module_and_data_file(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    expected = set()
    for path in tracked_files("cocotune", *MAPPED):
        top, _, rest = path.partition("/")
        installed = f"{MAPPED[top]}/{rest}" if top in MAPPED else path
        if path.endswith((".py", ".pyi", ".lark", ".j2", ".proto")):
            expected.add(installed)
    missing = sorted(expected - names)
    assert not missing, f"not in the wheel: {missing}"
    # the pieces an installed cocotune needs at run time, named explicitly
    for must in [
        "cocotune/grammar/prototxt.lark",
        "cocotune/proto/caffe.proto",
        "cocotune/_proto/caffe_pb2.py",
        "cocotune/_proto/caffe_pb2.pyi",
        "cocotune/reference/caffe_layers.py",
        "cocotune/codegen_templates/keras/model.py.j2",
        "cocotune/codegen_templates/c/delegate.c.j2",
    ]:
        assert must in names
    tops = {n.split("/")[0] for n in names if not n.startswith("cocotune-")}
    assert tops == {"cocotune"}  # no tests/, no top-level grammar/ or proto/


def test_metadata_leaves_the_tensorflow_build_to_the_user(wheel):
    hard, extras = requirements(wheel)
    assert not TENSORFLOWS & {r.name for r in hard}
    (cpu,) = extras["cpu"]
    (gpu,) = extras["gpu"]
    assert cpu.name == "tensorflow-cpu" and gpu.name == "tensorflow" and "and-cuda" in gpu.extras
    assert cpu.specifier == gpu.specifier
    from cocotune.dependencies import check_tensorflow_version

    for v in ("2.21.0", "2.21.9"):  # what the extras allow, cocotune accepts at run time
        assert cpu.specifier.contains(v)
        check_tensorflow_version(v)
    assert not cpu.specifier.contains("2.22.0") and not cpu.specifier.contains("2.20.0")
    assert {r.name for r in extras["mpi"]} == {"mpi4py", "mpich"}
    assert {r.name for r in extras["plots"]} == {"matplotlib"}
    assert {"pytest", "hypothesis"} <= {r.name for r in extras["test"]}
    assert {"grpcio-tools", "build", "ruff", "mypy"} <= {r.name for r in extras["dev"]}
    dev_tools = {"pytest", "hypothesis", "grpcio-tools", "build", "matplotlib", "mpi4py", "mpich"}
    assert not dev_tools & {r.name for r in hard}


def test_protobuf_range_matches_the_generated_module(wheel):
    """caffe_pb2.py refuses a protobuf runtime older than its gencode or of another major."""
    text = (REPO / "cocotune" / "_proto" / "caffe_pb2.py").read_text()
    m = re.search(
        r"ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,\s*"
        r"(\d+),\s*(\d+),\s*(\d+),",
        text,
    )
    major, minor, patch = map(int, m.groups())
    hard, _ = requirements(wheel)
    (protobuf,) = [r for r in hard if r.name == "protobuf"]
    assert protobuf.specifier == SpecifierSet(f">={major}.{minor}.{patch},<{major + 1}")


def test_every_third_party_import_of_the_package_is_declared(wheel):
    hard, extras = requirements(wheel)
    declared = {canonicalize_name(r.name) for r in hard}
    optional = {canonicalize_name(r.name) for reqs in extras.values() for r in reqs}
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    undeclared = {}
    for path in (REPO / "cocotune").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                tops = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops = [node.module.split(".")[0]]
            else:
                continue
            for top in tops:
                if top in stdlib or top == "cocotune" or top in FROM_TENSORFLOW:
                    continue
                dist = canonicalize_name(DISTRIBUTION.get(top, top))
                if dist not in declared and dist not in optional:
                    undeclared.setdefault(dist, path.relative_to(REPO).as_posix())
    assert not undeclared, f"imported but not in setup.cfg: {undeclared}"


# ----------------------------------------------------------------------------------------------
# pip's resolver, offline: an existing TensorFlow is kept, never duplicated
# ----------------------------------------------------------------------------------------------


def fake_environment(root: Path, hard: list[Requirement], tensorflow: str) -> Path:
    """A venv whose only contents are metadata: the hard requirements at this environment's
    versions, and ``tensorflow`` (a distribution name) at 2.21.0. Returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", root], check=True)
    python = root / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    dists = {r.name: installed_version(r.name) for r in hard}
    dists[tensorflow] = "2.21.0"
    for name, ver in dists.items():
        info = Path(site) / f"{re.sub(r'[-_.]+', '_', name)}-{ver}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {ver}\n")
        (info / "INSTALLER").write_text("pip\n")
        (info / "RECORD").write_text("")
    return python


@pytest.mark.parametrize(
    "present, request_",
    [
        ("tensorflow", "cocotune"),
        ("tensorflow-cpu", "cocotune"),
        ("tensorflow-cpu", "cocotune[cpu]"),
    ],
)
def test_install_keeps_the_existing_tensorflow(wheel, tmp_path, present, request_):
    hard, _ = requirements(wheel)
    python = fake_environment(tmp_path / "env", hard, present)
    report = tmp_path / "report.json"
    pip(
        "install",
        "--dry-run",
        "--report",
        report,
        "--no-index",
        "--find-links",
        wheel.parent,
        request_,
        python=python,
    )
    installs = [item["metadata"]["name"] for item in json.loads(report.read_text())["install"]]
    assert installs == ["cocotune"]


def test_the_cpu_extra_would_add_tensorflow_cpu_next_to_tensorflow(wheel, tmp_path):
    """The reason the extras exist: asking for [cpu] where `tensorflow` is installed wants a
    second distribution (offline, pip can only say it cannot find it)."""
    hard, _ = requirements(wheel)
    python = fake_environment(tmp_path / "env", hard, "tensorflow")
    result = pip(
        "install",
        "--dry-run",
        "--no-index",
        "--find-links",
        wheel.parent,
        "cocotune[cpu]",
        python=python,
        check=False,
    )
    assert result.returncode != 0
    assert "No matching distribution found for tensorflow-cpu" in result.stderr


# ----------------------------------------------------------------------------------------------
# The installed wheel, used from outside the source tree
# ----------------------------------------------------------------------------------------------


def test_installed_wheel_checks_converts_generates_and_trains(wheel, tmp_path):
    env = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", env], check=True)
    python, cocotune = env / "bin" / "python", env / "bin" / "cocotune"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # The dependencies come from this environment (appended to sys.path, after the new
    # venv's own site-packages, so the wheel's cocotune wins over the editable checkout).
    (site / "test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip("install", "--no-deps", "--no-index", "--ignore-installed", "--quiet", wheel, python=python)
    work = tmp_path / "work"
    work.mkdir()
    for name in ("net.prototxt", "subspace.txt"):
        shutil.copy2(EXAMPLES / "resnet_digits" / name, work / name)
    env_vars = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}

    def run(*cmd) -> str:
        result = subprocess.run(
            [str(c) for c in cmd],
            cwd=work,
            env=env_vars,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert result.returncode == 0, f"{cmd}\n{result.stdout}\n{result.stderr}"
        return result.stdout

    where = run(
        python,
        "-c",
        "import cocotune.reference, cocotune.resources as r; "
        "print(cocotune.reference.__file__); print(r.grammar_file('prototxt.lark'))",
    )
    assert all(Path(p).is_relative_to(site) for p in where.split()), where
    assert "6 modules" in run(cocotune, "check", "net.prototxt")
    out = run(cocotune, "convert", "net.prototxt", "-o", "converted", "--verify")
    assert "verify: OK" in out
    run(cocotune, "gen", "net.prototxt", "subspace.txt", "-o", "pkg")
    run(python, "pkg/train.py", "--steps", "2", "--quiet")
    assert (work / "pkg" / "full.weights.h5").is_file()
    for path in (work / "pkg").rglob("*.py"):
        assert str(REPO) not in path.read_text(), f"{path} points into the source tree"
