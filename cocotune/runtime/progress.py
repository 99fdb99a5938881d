"""Progress of a run, shown once: by rank 0, as a tqdm bar on a terminal and as plain lines in
a log file.

N ranks drawing N bars on one terminal garble each other, and rank 0 sees every result, so only
rank 0 shows progress (:func:`progress_bar`). A batch job's output is a file, where a bar's
carriage returns make one endless line that appears only when the run ends, so there
:class:`LineProgress` prints one line per finished task instead.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from typing import Any

from cocotune.runtime.mpi import Comm, get_comm

__all__ = ["LineProgress", "progress_bar"]


class LineProgress:
    """Progress as plain lines, for a stream that is not a terminal (a batch job's log file).

    A tqdm bar redraws itself with carriage returns, which a log file keeps as one endless line
    that only shows up when the run ends. This prints one line per update (per finished task)
    instead, with the count, elapsed and estimated remaining time and the latest postfix. With
    many small updates (training steps) it prints when the whole percent changes or every
    ``interval`` seconds, and always at the end. Same methods as the tqdm bar the scripts use.
    """

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        *,
        total: int | None = None,
        desc: str | None = None,
        initial: int = 0,
        unit: str = "it",
        disable: bool = False,
        file: Any = None,
        interval: float = 30.0,
        **_: Any,
    ):
        self._iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total = total
        self.desc = desc or "progress"
        self.n = initial
        self.unit = unit
        self.disable = disable
        self.file = file
        self.interval = interval
        self.postfix = ""
        self._initial = initial
        self._start = time.monotonic()
        self._last_line = self._start
        self._last_percent = -1
        self._shown = initial  # the count the last line showed
        self._closed = False

    def __iter__(self) -> Any:
        for item in self._iterable if self._iterable is not None else ():
            yield item
            self.update(1)

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        percent = int(100 * self.n / self.total) if self.total else -1
        finished = self.total is not None and self.n >= self.total
        if finished or percent != self._last_percent or now - self._last_line >= self.interval:
            self._line(now)
        self._last_percent = percent

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None:
        items = dict(ordered_dict or {}, **kwargs)
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or self.desc

    def write(self, s: str, file: Any = None, end: str = "\n") -> None:
        if not self.disable:
            print(s, end=end, file=file or self._stream(), flush=True)

    def close(self) -> None:
        if not self._closed and self.n != self._shown:
            self._line(time.monotonic())  # where an interrupted or early-stopped run ended
        self._closed = True

    def _stream(self) -> Any:
        return self.file if self.file is not None else sys.stderr

    def _line(self, now: float) -> None:
        self._last_line = now
        self._shown = self.n
        if self.disable:
            return
        elapsed = now - self._start
        done = self.n - self._initial
        count = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        if self.unit != "it":  # tqdm's default unit says nothing
            count += f" {self.unit}s" if self.unit.isalpha() else f" {self.unit}"
        if self.total:
            count += f" ({100 * self.n / self.total:.0f}%)"
        parts = [count]
        parts.append(f"{elapsed:.1f} s")
        if self.total and 0 < done and self.n < self.total:
            parts.append(f"~{elapsed / done * (self.total - self.n):.0f} s left")
        if self.postfix:
            parts.append(self.postfix)
        print(f"{self.desc}: " + ", ".join(parts), file=self._stream(), flush=True)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress_bar(
    iterable: Iterable[Any] | None = None, *, comm: Comm | None = None, **tqdm_kwargs: Any
) -> Any:
    """Progress shown by rank 0 only: a tqdm bar on a terminal, plain lines otherwise.

    N ranks drawing N bars on one terminal garble each other, and rank 0 sees every result, so
    other ranks get a disabled tqdm bar (same methods, shows nothing). When the stream the bar
    would write to (``file=``, default stderr) is not a terminal -- a batch job with its output
    redirected -- rank 0 prints one :class:`LineProgress` line per update instead of a bar.
    """
    comm = comm if comm is not None else get_comm()
    from tqdm import tqdm

    if not comm.is_root:
        tqdm_kwargs["disable"] = True
        return tqdm(iterable, **tqdm_kwargs)
    if not _is_terminal(tqdm_kwargs.get("file") or sys.stderr):
        return LineProgress(iterable, **tqdm_kwargs)
    tqdm_kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **tqdm_kwargs)
