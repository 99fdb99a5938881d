"""Every error a user can cause descends from :class:`CocotuneError`.

The command line turns a ``CocotuneError`` into a message and exit code 2; anything else is
a bug in cocotune and exits 1 with a traceback. Errors that have a place in a file carry it
(``path``, ``line``, ``col``, 1-based) and render it the way compilers do::

    net.prototxt:12:5: error: unknown field 'kernal_size' in convolution_param (did you mean 'kernel_size'?)
       12 |     kernal_size: 3
          |     ^
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Position:
    """A place in a source file (1-based line and column)."""

    path: str
    line: int
    col: int = 0

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}" if self.col else f"{self.path}:{self.line}"


class CocotuneError(Exception):
    """A problem with the user's input; rendered without a traceback, exit code 2.

    Parameters:
        message: what is wrong, in one sentence.
        position: where, when the problem has a place in a file.
        source_line: the text of that line, shown under the message with a caret.
        notes: extra lines shown after the message (e.g. the list of valid names).
    """

    kind = "error"

    def __init__(
        self,
        message: str,
        position: Position | None = None,
        source_line: str | None = None,
        notes: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.position = position
        self.source_line = source_line
        self.notes = list(notes or [])

    @property
    def path(self) -> str | None:
        return self.position.path if self.position else None

    @property
    def line(self) -> int | None:
        return self.position.line if self.position else None

    @property
    def col(self) -> int | None:
        return self.position.col if self.position else None

    def render(self) -> str:
        """The message as the command line prints it (with source line and caret)."""
        head = (
            f"{self.position}: error: {self.message}" if self.position else f"error: {self.message}"
        )
        lines = [head]
        if self.position and self.source_line is not None:
            text = self.source_line.rstrip("\r\n").expandtabs(1)
            gutter = f"{self.position.line:>5} | "
            lines.append(gutter + text)
            if self.position.col:
                lines.append(" " * (len(gutter) - 2) + "| " + " " * (self.position.col - 1) + "^")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()


class ErrorGroup(CocotuneError):
    """Several independent problems reported at once (e.g. every unsupported layer type)."""

    def __init__(self, message: str, errors: list[CocotuneError]) -> None:
        super().__init__(message)
        self.errors = list(errors)

    def render(self) -> str:
        parts = [e.render() for e in self.errors]
        parts.append(f"error: {self.message}")
        return "\n".join(parts)


class InputFileError(CocotuneError):
    """A path that cannot be read as text: missing, a directory, empty, binary, not UTF-8."""


class PrototxtSyntaxError(CocotuneError):
    """The text is not valid protobuf text format (or our ``module`` extension)."""


class SchemaError(CocotuneError):
    """Valid syntax, but a field, type or enum value that ``caffe.proto`` does not allow."""


class NetError(CocotuneError):
    """The layers do not form a valid net: undefined bottoms, duplicates, bad modules."""


class ShapeError(CocotuneError):
    """A layer cannot compute its output shape from its inputs (names the layer and shapes)."""


class UnsupportedLayerError(CocotuneError):
    """A layer type, or a field value, that cocotune does not handle."""

    # Tags cocotune.frontend.problems sets to group and count what it reports (declared, not
    # defaulted: it tests them with hasattr, so an untagged error has none of them).
    unsupported_type: str  # the layer type, on the error for an unsupported type
    layer_label: str  # the layer as messages name it, on the same
    outside: bool  # set when the layer is not in the checked phase (the error is only a note)


class SubspaceError(CocotuneError):
    """A subspace file that does not match the net or has malformed entries."""


class WeightsError(CocotuneError):
    """A weights file (caffemodel, h5) that is unreadable or does not match the net."""


def read_user_bytes(path: str | Path, what: str, error: type[CocotuneError]) -> bytes:
    """The bytes of a user-supplied file; a missing file, a directory or an unreadable one
    becomes one sentence in an ``error`` (never an OSError traceback)."""
    p = Path(path)
    if not p.exists():
        raise error(f"cannot read {what} '{path}': no such file")
    if p.is_dir():
        raise error(f"cannot read {what} '{path}': it is a directory")
    try:
        return p.read_bytes()
    except OSError as exc:
        raise error(f"cannot read {what} '{path}': {exc.strerror or exc}") from None


def read_text_source(path: str | Path, what: str = "file") -> str:
    """Read a user-supplied text file, turning every way it can fail into an InputFileError.

    Why not just ``open()``: users pass directories, empty files, caffemodels instead of
    prototxts and Latin-1 files; each deserves one clear sentence, not an OSError traceback.
    """
    shown = str(path)
    data = read_user_bytes(path, what, InputFileError)
    if not data.strip():
        raise InputFileError(f"{what} '{shown}' is empty")
    if b"\x00" in data[:8192]:
        raise InputFileError(
            f"{what} '{shown}' is a binary file, not text"
            + (" (a .caffemodel? pass it with --weights)" if shown.endswith(".caffemodel") else "")
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise InputFileError(
            f"{what} is not valid UTF-8 (byte 0x{data[exc.start]:02x})",
            Position(shown, line, col),
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text
