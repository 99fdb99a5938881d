"""Generated files respect the umask (0644/0755 typically), not mkstemp's private 0600."""

from __future__ import annotations

import os
import stat

import pytest

from cocotune.files import current_umask, write_text_atomic
from tests.conftest import EXAMPLES


@pytest.fixture
def umask():
    """Set a umask for one test and restore the previous one."""
    saved = os.umask(0o022)
    os.umask(saved)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(saved)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_get_the_mode_open_would_give(tmp_path, umask, mask, expected):
    umask(mask)
    assert current_umask() == mask
    target = tmp_path / "sub" / "file.txt"
    write_text_atomic(target, "x")
    assert target.read_text() == "x" and mode(target) == expected
    assert [p.name for p in target.parent.iterdir()] == ["file.txt"]  # no temp file left


def test_generated_package_is_readable_by_others(tmp_path, umask):
    from cocotune.gen.write_package import generate_package

    umask(0o022)
    solver = tmp_path / "solver.prototxt"
    solver.write_text('base_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 10\n')
    out = tmp_path / "deep" / "pkg"
    generate_package(
        str(EXAMPLES / "resnet_digits" / "net.prototxt"),
        str(EXAMPLES / "resnet_digits" / "subspace.txt"),
        out,
        solver=str(solver),
    )
    assert mode(out) == 0o755 and mode(out.parent) == 0o755
    files = sorted(p.name for p in out.iterdir())
    assert "solver.prototxt" in files and "model.py" in files
    for name in files:
        assert mode(out / name) == 0o644, name
