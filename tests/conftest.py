"""Shared fixtures: where the shared corpus is, and running the CLI in-process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpus"
EXAMPLES = REPO / "examples"
DATA = Path(__file__).resolve().parent / "data"


def corpus_files(pattern: str = "*.prototxt") -> list[Path]:
    """Corpus files, or [] when ../shared is absent (tests using them then skip)."""
    return sorted(CORPUS.glob(pattern)) if CORPUS.is_dir() else []


def corpus_file(name: str) -> Path:
    path = CORPUS / name
    if not path.exists():
        pytest.skip(f"../shared/corpus/{name} is not available")
    return path


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys):
    """Run ``cocotune ARGS`` in-process; returns exit code, stdout and stderr."""
    from cocotune.cli import main

    def run(*args: str) -> CliResult:
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def write_net(tmp_path):
    """Write a Prototxt text to a temp file and return its path."""

    def write(text: str, name: str = "net.prototxt") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write
