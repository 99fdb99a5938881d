"""Files that survive a run being killed at any moment (docs/design.md §6).

``runs/results.jsonl`` holds one JSON object per evaluated configuration. Each record is written
with a single ``write`` and then ``fsync``-ed, so a killed run loses at most the line being
written; the next run drops that partial line, truncates the file back to its last complete line
and resumes, skipping the configurations already recorded. Only rank 0 writes: a
:class:`ResultsLog` built on another rank reads but never modifies the file.

``best-<method>.json``, weights and checkpoints are replaced whole: written to a temporary file
in the same directory and renamed over the old one (:func:`atomic_write_json`, :func:`atomic_save`), so a
reader sees the old version or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cocotune.errors import CocotuneError, Position
from cocotune.files import atomic_save

__all__ = ["ResultsError", "ResultsLog", "atomic_save", "atomic_write_json"]


class ResultsError(CocotuneError):
    """A results file that is damaged somewhere other than its last line."""


class ResultsLog:
    """An append-only JSON Lines file of results, safe to resume after a crash.

    Parameters:
        path: the ``.jsonl`` file (created with its directory on the first append).
        comm: the run's communicator; on a rank other than 0 the log is read-only and
            :meth:`append` does nothing, so every rank can run the same script.
        id_key: the record field that identifies a configuration (for resuming).

    Example:
        >>> log = ResultsLog(out / "runs" / "results.jsonl")
        >>> todo = [c for c in configs if c["id"] not in log.done_ids()]
        >>> log.append({"id": "c3", "accuracy": 0.93})
    """

    def __init__(self, path: str | os.PathLike[str], comm: Any = None, id_key: str = "id"):
        self.path = Path(path)
        self.id_key = id_key
        self.writable = comm is None or bool(getattr(comm, "is_root", True))
        self._records: list[dict[str, Any]] | None = None
        self._ids: set[Any] = set()

    def __repr__(self) -> str:
        return f"ResultsLog({str(self.path)!r})"

    def load(self) -> list[dict[str, Any]]:
        """Read every complete record (re-reading the file each call).

        A last line without its newline is what a run killed mid-write leaves: it is dropped
        (or kept, with the newline added, when it is a complete JSON object), and on the writing
        rank the file is repaired so the next append starts on a fresh line.

        Raises:
            ResultsError: a line other than the last is not a JSON object.
        """
        records: list[dict[str, Any]] = []
        if not self.path.exists():
            self._remember(records)
            return records
        data = self.path.read_bytes()
        complete_end = data.rfind(b"\n") + 1  # 0 when there is no newline at all
        for number, raw in enumerate(data[:complete_end].splitlines(), start=1):
            if not raw.strip():
                continue
            records.append(self._parse(raw, number))
        tail = data[complete_end:]
        if tail.strip():
            try:
                record = json.loads(tail)
            except (json.JSONDecodeError, UnicodeDecodeError):
                record = None
            if isinstance(record, dict):
                records.append(record)
                self._repair(complete_end, keep_tail=True)
            else:
                self._repair(complete_end, keep_tail=False)
        elif tail:
            self._repair(complete_end, keep_tail=False)
        self._remember(records)
        return records

    def done_ids(self) -> set[Any]:
        """Identifiers of the configurations already recorded (skip them when resuming)."""
        if self._records is None:
            self.load()
        return set(self._ids)

    def append(self, record: dict[str, Any], supersede: bool = False) -> bool:
        """Write one record as one line, flushed and fsync-ed; True if written.

        Does nothing (returns False) on a read-only log, or when a record with the same id is
        already in the file, so a resumed run can never record a configuration twice -- unless
        ``supersede``: then the record is appended after the old one (which stays in the file;
        readers take the last record of an id, see :meth:`latest`).
        """
        if not self.writable:
            return False
        if self._records is None:
            self.load()  # also repairs a partial last line before we add to the file
        key = record.get(self.id_key)
        if key is not None and key in self._ids and not supersede:
            return False
        line = json.dumps(record, sort_keys=False, allow_nan=True, default=_jsonable) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            payload = line.encode("utf-8")
            written = 0
            while written < len(payload):  # one write in practice; loop for short writes
                written += os.write(fd, payload[written:])
            os.fsync(fd)
        finally:
            os.close(fd)
        assert self._records is not None
        self._records.append(record)
        if key is not None:
            self._ids.add(key)
        return True

    def latest(self) -> dict[Any, dict[str, Any]]:
        """The last record of each id, in file order of first appearance."""
        out: dict[Any, dict[str, Any]] = {}
        for record in self.load():
            if self.id_key in record:
                out[record[self.id_key]] = record
        return out

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.load())

    def __len__(self) -> int:
        return len(self.load())

    # ---- internals ----------------------------------------------------------------------------

    def _parse(self, raw: bytes, number: int) -> dict[str, Any]:
        try:
            record = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ResultsError(
                f"line {number} is not valid JSON ({exc}); only a damaged last line is repaired "
                "automatically: fix or remove this line to resume",
                Position(str(self.path), number),
            ) from exc
        if not isinstance(record, dict):
            raise ResultsError(
                f"line {number} is a JSON {type(record).__name__}, not an object",
                Position(str(self.path), number),
            )
        return record

    def _remember(self, records: list[dict[str, Any]]) -> None:
        self._records = list(records)
        self._ids = {r[self.id_key] for r in records if self.id_key in r}

    def _repair(self, complete_end: int, keep_tail: bool) -> None:
        """Make the file end with a newline again: add it after a complete last record, or cut
        a partial one off."""
        if not self.writable:
            return
        if keep_tail:
            with open(self.path, "ab") as handle:
                handle.write(b"\n")
                handle.flush()
                os.fsync(handle.fileno())
        else:
            with open(self.path, "r+b") as handle:
                handle.truncate(complete_end)
                handle.flush()
                os.fsync(handle.fileno())


def _jsonable(value: Any) -> Any:
    """Turn numpy scalars/arrays and paths into JSON values (results hold numpy floats)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def atomic_write_json(path: str | os.PathLike[str], obj: Any, indent: int = 2) -> Path:
    """Replace ``path`` with ``obj`` as JSON, atomically (see :func:`atomic_save`)."""
    text = json.dumps(obj, indent=indent, default=_jsonable) + "\n"
    return atomic_save(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
