"""cocotune.files: whole-or-nothing writes with ordinary permissions."""

from __future__ import annotations

import os
import stat

import pytest

from cocotune.files import atomic_save, import_generated, write_bytes_atomic, write_text_atomic


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_text_is_written_byte_for_byte_with_missing_directories(tmp_path):
    target = tmp_path / "a" / "b" / "model.py"
    write_text_atomic(target, "x = 'é'\r\ny = 1\n")
    assert target.read_bytes() == "x = 'é'\r\ny = 1\n".encode()
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.py"]


def test_permissions_follow_the_umask_not_mkstemp(tmp_path):
    old = os.umask(0o022)
    try:
        write_bytes_atomic(tmp_path / "f.bin", b"\x00\x01")
        write_text_atomic(tmp_path / "g.txt", "g")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "f.bin") == 0o644
    assert _mode(tmp_path / "g.txt") == 0o644


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "best.weights.h5"
    target.write_bytes(b"old")

    def half_then_crash(tmp):
        assert tmp.name.endswith("-best.weights.h5")  # Keras checks the suffix
        tmp.write_bytes(b"ne")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        atomic_save(target, half_then_crash)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["best.weights.h5"]


def test_a_writer_that_writes_nothing_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        atomic_save(tmp_path / "x", lambda tmp: None)
    assert list(tmp_path.iterdir()) == []


def test_import_generated_gives_fresh_modules(tmp_path):
    path = tmp_path / "model.py"
    write_text_atomic(path, "counter = [0]\n")
    first, second = import_generated(path), import_generated(path)
    first.counter[0] += 1
    assert second.counter == [0] and first.__name__ != second.__name__
