"""Dependencies the metadata leaves to the user: a missing or untested one is one clear message.

TensorFlow is not a hard requirement (``tensorflow`` and ``tensorflow-cpu`` are both fine), so
the commands that need it check at first use. The subprocess tests hide the real TensorFlow
(an import blocker) or replace it (a fake ``tensorflow`` package with another version); both
run in a fresh interpreter so this test session's TensorFlow is never touched.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from cocotune.dependencies import (
    ALLOW_UNTESTED_ENV,
    MissingDependencyError,
    check_tensorflow_version,
    missing_extra,
)
from tests.conftest import EXAMPLES, REPO

NET = EXAMPLES / "resnet_digits" / "net.prototxt"

BLOCK = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, _Block())
"""


def run_python(code: str, tmp_path, env_extra: dict | None = None, pythonpath: str = ""):
    import os

    env = {k: v for k, v in os.environ.items() if k != ALLOW_UNTESTED_ENV}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, str(REPO)) if p)
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("version", ["2.21.0", "2.21.3", "2.21.0rc1", "2.21.0.dev20260101"])
def test_tested_series_passes(version):
    check_tensorflow_version(version)


@pytest.mark.parametrize("version", ["2.20.1", "2.22.0", "3.0.0", "1.21.0", "unknown"])
def test_other_versions_are_refused_with_the_way_out(version, monkeypatch):
    monkeypatch.delenv(ALLOW_UNTESTED_ENV, raising=False)
    with pytest.raises(MissingDependencyError) as info:
        check_tensorflow_version(version)
    text = info.value.render()
    assert f"TensorFlow {version} is installed" in text and "2.21.x" in text
    assert "cocotune[cpu]" in text and "cocotune[gpu]" in text and ALLOW_UNTESTED_ENV in text
    monkeypatch.setenv(ALLOW_UNTESTED_ENV, "1")
    check_tensorflow_version(version)


def test_missing_extra_names_the_extra():
    text = missing_extra("matplotlib", "plots", "drawing the figures").render()
    assert text.startswith("error: drawing the figures needs matplotlib, which is not installed")
    assert "pip install 'cocotune[plots]'" in text


def test_convert_without_tensorflow_is_one_message(tmp_path):
    code = BLOCK.format(blocked=("tensorflow",)) + f"""
from cocotune.cli import main
sys.exit(main(["convert", {str(NET)!r}, "-o", "out"]))
"""
    result = run_python(code, tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "error: this command needs TensorFlow, which is not installed" in result.stderr
    assert "pip install 'cocotune[cpu]'" in result.stderr
    assert not (tmp_path / "out").exists()


def test_check_needs_no_tensorflow(tmp_path):
    code = BLOCK.format(blocked=("tensorflow", "keras")) + f"""
from cocotune.cli import main
sys.exit(main(["check", {str(NET)!r}]))
"""
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "6 modules" in result.stdout


def test_untested_tensorflow_is_refused_by_cli_and_generated_scripts(tmp_path):
    fake = tmp_path / "fake"
    (fake / "tensorflow").mkdir(parents=True)
    (fake / "tensorflow" / "__init__.py").write_text('__version__ = "2.19.0"\n')
    code = f"""
import sys
from cocotune.cli import main
from cocotune.runtime.options import run_main
code = main(["gen", {str(NET)!r}, "subspace.txt", "-o", "pkg"])
print("cli", code)
print("script", run_main(lambda package_dir, argv: 0, ".", []))
"""
    result = run_python(code, tmp_path, pythonpath=str(fake))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["cli", "2", "script", "2"]
    assert "Traceback" not in result.stderr
    assert result.stderr.count("TensorFlow 2.19.0 is installed, but cocotune is tested with") == 2
    # with the override the version is no longer refused (the fake TensorFlow then fails
    # further on, where a real one would run)
    ok = run_python(code, tmp_path, {ALLOW_UNTESTED_ENV: "1"}, pythonpath=str(fake))
    assert "cocotune is tested with" not in ok.stderr, ok.stderr


def test_composability_benchmark_asks_for_the_plots_extra_before_running(tmp_path):
    script = REPO / "benchmarks" / "composability.py"
    code = BLOCK.format(blocked=("matplotlib",)) + f"""
import runpy
sys.argv = [{str(script)!r}, "--quick", "--out", "out"]
runpy.run_path(sys.argv[0], run_name="__main__")
"""
    result = run_python(code, tmp_path)
    assert result.returncode == 2, result.stderr
    assert "pip install 'cocotune[plots]'" in result.stderr
    assert not (tmp_path / "out").exists()
