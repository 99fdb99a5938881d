"""The checked-in package examples/resnet_digits/generated/ is exactly what `cocotune gen` writes.

It is a golden file set: a change to the generator shows up as a diff of these files in review,
and a newcomer can read a generated package without generating one. The package is regenerated
into a temporary directory with the same command line (same relative paths, so the
"Regenerate with:" headers match) and compared byte for byte, every file.
"""

from __future__ import annotations

import difflib
import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import EXAMPLES

EXAMPLE = "examples/resnet_digits"
GOLDEN = EXAMPLES / "resnet_digits" / "generated"
COMMAND = [
    "cocotune",
    "gen",
    f"{EXAMPLE}/net.prototxt",
    f"{EXAMPLE}/subspace.txt",
    "-o",
    f"{EXAMPLE}/generated",
]
REGENERATE = f"rm -r {EXAMPLE}/generated && .venv/bin/" + " ".join(COMMAND)


def _files(root):
    return {str(p.relative_to(root)): p for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_generated_package_matches_the_golden_files(tmp_path):
    work = tmp_path / EXAMPLE
    work.mkdir(parents=True)
    for name in ("net.prototxt", "subspace.txt"):
        shutil.copyfile(EXAMPLES / "resnet_digits" / name, work / name)
    result = subprocess.run(
        [sys.executable, "-m", "cocotune", *COMMAND[1:]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    fresh, golden = _files(work / "generated"), _files(GOLDEN)
    hint = f"\nIf the change is intended, regenerate from the repository root with:\n  {REGENERATE}"
    assert sorted(fresh) == sorted(golden), (
        f"cocotune gen writes {sorted(fresh)}, {GOLDEN} holds {sorted(golden)} "
        "(the golden copy must hold exactly the generated files: train in another "
        "directory)" + hint
    )
    for name, path in fresh.items():
        new, old = path.read_bytes(), golden[name].read_bytes()
        if new != old:
            diff = difflib.unified_diff(
                old.decode("utf-8", "replace").splitlines(),
                new.decode("utf-8", "replace").splitlines(),
                f"golden/{name}",
                f"generated/{name}",
                lineterm="",
                n=1,
            )
            shown = "\n".join(list(diff)[:60])
            pytest.fail(f"{name} differs from the golden copy:\n{shown}{hint}")


def test_golden_files_point_nowhere_outside_the_repository():
    """No absolute path or machine-specific name in the checked-in package."""
    absolute = re.compile(r"/(tmp|home|work|Users|root)/")
    for name, path in _files(GOLDEN).items():
        text = path.read_text(encoding="utf-8")
        found = absolute.search(text)
        assert found is None, f"{name} contains an absolute path ({found.group(0)!r})"
        for needle in ("../shared", str(EXAMPLES.parent)):
            assert needle not in text, f"{name} contains {needle!r}"
