"""The numpy reference stays independent of the code it checks.

It lives inside the package (``cocotune.reference``) so that ``convert --verify`` works from
an installed wheel; these tests make sure that moving it there did not let it lean on
cocotune code, statically (no import statement names cocotune) and at run time (importing it
loads no cocotune module beyond the two package ``__init__`` files on its path).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import cocotune.reference
from tests.reference import caffe_layers

REFERENCE_DIR = Path(cocotune.reference.__file__).parent


def _imported_modules(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append("." * node.level + (node.module or ""))
    return names


def test_reference_sources_import_no_cocotune_code():
    sources = sorted(REFERENCE_DIR.glob("*.py"))
    assert REFERENCE_DIR / "caffe_layers.py" in sources
    for path in sources:
        for name in _imported_modules(path):
            assert not name.startswith((".", "cocotune", "tests")), f"{path.name} imports {name}"


def test_importing_the_reference_loads_no_cocotune_module():
    """Beyond what ``import cocotune`` itself runs (the package __init__), nothing of cocotune."""
    listing = (
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('cocotune', 'tests'))))"
    )
    package_only = subprocess.run(
        [sys.executable, "-c", "import sys, cocotune; " + listing],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert set(package_only) <= {"cocotune", "cocotune._keras_registration"}
    code = "import sys, cocotune.reference.caffe_layers as r; r.run_net; " + listing
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert sorted(set(out.stdout.split()) - set(package_only)) == [
        "cocotune.reference",
        "cocotune.reference.caffe_layers",
    ]


def test_tests_name_is_the_shipped_module():
    from tests.reference.caffe_layers import run_net

    assert caffe_layers.__name__ == "cocotune.reference.caffe_layers"
    assert run_net is caffe_layers.run_net
