"""A source text with its path, to turn (line, column) into errors with a caret."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from cocotune.errors import CocotuneError, Position

E = TypeVar("E", bound=CocotuneError)


@dataclass
class Source:
    """The text of one input file and the name it is shown under in messages."""

    path: str
    text: str
    lines: list[str] = field(init=False, repr=False)
    # Things worth telling the user that are not errors (e.g. a fork field in a layer the
    # checked phase leaves out); ``cocotune check`` prints them as notes.
    notes: list[str] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        self.lines = self.text.splitlines()

    def position(self, line: int, col: int = 0) -> Position:
        return Position(self.path, line, col)

    def line_text(self, line: int) -> str | None:
        return self.lines[line - 1] if 0 < line <= len(self.lines) else None

    def error(
        self,
        cls: type[E],
        message: str,
        line: int,
        col: int = 0,
        notes: list[str] | None = None,
    ) -> E:
        """Build (not raise) an error of class ``cls`` pointing at ``line:col``."""
        return cls(message, self.position(line, col), self.line_text(line), notes)

    def error_at(
        self, cls: type[E], message: str, pos: Position | None, notes: list[str] | None = None
    ) -> E:
        if pos is None:
            return cls(message, None, None, notes)
        return cls(message, pos, self.line_text(pos.line), notes)
