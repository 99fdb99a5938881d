"""Caffe names → names that are safe in generated Python, Keras and C, without collisions.

A Caffe layer can be called ``conv1/7x7_s2`` or even ``x"); import os #``. Generated code
never pastes such a name: string literals go through :func:`py_string` (``repr``), comments
through :func:`comment_text`, identifiers and Keras layer names through :class:`NameTable`,
which maps each distinct Caffe name to one distinct safe name, stably.
"""

from __future__ import annotations

import builtins
import keyword
import re

_NOT_IDENT = re.compile(r"[^0-9A-Za-z_]")
# Keras forbids "/" in layer names; h5 group names and file systems prefer a plain alphabet.
_NOT_KERAS = re.compile(r"[^0-9A-Za-z_.\-]")

# Names the generated module itself uses; a Caffe blob must not shadow them.
RESERVED = frozenset(
    {
        "keras",
        "layers",
        "caffe",
        "np",
        "tf",
        "runtime",
        "build_model",
        "network",
        "model",
        "inputs",
        "outputs",
        "mode_to_use",
        "prune_info",
        "w",
        "p",
        "widths",
        "prefix",
    }
)


def py_string(text: str) -> str:
    """A Python string literal for any text (quotes, backslashes, newlines all escaped)."""
    return repr(str(text))


def comment_text(text: str) -> str:
    """Text safe inside a ``#`` comment: one line, printable, no way to end the comment."""
    escaped = str(text).encode("unicode_escape").decode("ascii")
    return escaped.replace("\\\\", "\\")


def docstring_text(text: str) -> str:
    """Text safe inside a triple-quoted docstring: one line, escapes kept, no double quotes."""
    return str(text).encode("unicode_escape").decode("ascii").replace('"', "'")


class NameTable:
    """Distinct Caffe names → distinct safe names, of one kind ("python" or "keras")."""

    def __init__(self, kind: str = "python", reserved: frozenset[str] = RESERVED) -> None:
        if kind not in ("python", "keras"):
            raise ValueError(f"kind must be 'python' or 'keras'. Received: kind={kind!r}")
        self.kind = kind
        self._by_source: dict[str, str] = {}
        self._taken: set[str] = set(reserved) if kind == "python" else set()

    def _base(self, name: str) -> str:
        if self.kind == "keras":
            base = _NOT_KERAS.sub("_", name) or "layer"
            return base
        base = _NOT_IDENT.sub("_", name) or "blob"
        if base[0].isdigit():
            base = "_" + base
        if keyword.iskeyword(base) or keyword.issoftkeyword(base) or hasattr(builtins, base):
            base += "_"
        return base

    def __getitem__(self, name: str) -> str:
        """The safe name for ``name`` (assigned on first use)."""
        return self.get(name)

    def get(self, key: str, spelled: str | None = None) -> str:
        """The safe name for ``key``, derived from ``spelled`` (default: the key itself)."""
        if key in self._by_source:
            return self._by_source[key]
        name = key
        base = candidate = self._base(spelled if spelled is not None else key)
        n = 1
        while candidate in self._taken:
            n += 1
            candidate = f"{base}_{n}"
        self._taken.add(candidate)
        self._by_source[name] = candidate
        return candidate

    def items(self):
        return self._by_source.items()
