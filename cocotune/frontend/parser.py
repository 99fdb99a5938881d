"""Prototxt text → a schema-free tree of fields, every node with its line and column.

The Lark grammar (``grammar/prototxt.lark``) only knows the protobuf text syntax; this module
turns Lark's tree into small dataclasses (:class:`TextField`, :class:`TextMessage`,
:class:`TextScalar`, :class:`TextModule`) and Lark's exceptions into one-sentence
:class:`PrototxtSyntaxError` messages ("unterminated string", "'{' is never closed").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, cast

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from cocotune.errors import PrototxtSyntaxError
from cocotune.frontend.source import Source
from cocotune.resources import read_grammar


@dataclass
class TextScalar:
    """A scalar as written: ``kind`` is 'string' (already unescaped), 'number' or 'identifier'."""

    kind: str
    value: str
    line: int
    col: int


@dataclass
class TextMessage:
    fields: list[TextField]
    line: int
    col: int


@dataclass
class TextField:
    """``name: value``, ``name { ... }`` or ``name: [a, b]`` (then ``value`` is a list)."""

    name: str
    line: int
    col: int
    value: TextScalar | TextMessage | list[TextScalar]


@dataclass
class TextModule:
    """cocotune's ``module { name: ... layer { ... } }`` block (top level only)."""

    line: int
    col: int
    fields: list[TextField] = field(default_factory=list)


_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "?": "?",
}


def unescape(body: str) -> str:
    """Decode C-style escapes as protobuf's text tokenizer does (\\n, \\x41, \\101, ...)."""
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\" or i + 1 == len(body):
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt in "xX":
            j = i + 2
            while j < len(body) and j < i + 4 and body[j] in "0123456789abcdefABCDEF":
                j += 1
            out.append(chr(int(body[i + 2 : j], 16)) if j > i + 2 else nxt)
            i = j
        elif nxt in "01234567":
            j = i + 1
            while j < len(body) and j < i + 4 and body[j] in "01234567":
                j += 1
            out.append(chr(int(body[i + 1 : j], 8)))
            i = j
        else:
            out.append(nxt)
            i += 2
    return "".join(out)


if TYPE_CHECKING:

    class _Tok(Token):
        """A token from lark's lexer: lark types the position optional, the lexer always sets it.

        (For the type checker only: the transformer below runs once per token of a file, so
        it reads the position directly instead of checking it.)
        """

        line: int
        column: int

else:
    _Tok = Token


@v_args(inline=True)
class _ToText(Transformer):
    """Lark tree → Text* dataclasses. Methods are named after the grammar's rules."""

    def start(self, *items):
        return list(items)

    def name(self, tok: _Tok) -> _Tok:
        return tok

    def string(self, *toks: _Tok) -> TextScalar:
        text = "".join(unescape(t[1:-1]) for t in toks)
        return TextScalar("string", text, toks[0].line, toks[0].column)

    def number(self, tok: _Tok) -> TextScalar:
        return TextScalar("number", str(tok), tok.line, tok.column)

    def identifier(self, tok: _Tok) -> TextScalar:
        return TextScalar("identifier", str(tok), tok.line, tok.column)

    def negative_identifier(self, minus: _Tok, ident: TextScalar) -> TextScalar:
        return TextScalar("number", "-" + ident.value, minus.line, minus.column)

    def message(self, *fields: TextField) -> TextMessage:
        # Position of a message is filled in by the field that holds it.
        return TextMessage(list(fields), 0, 0)

    def scalar_field(self, name: _Tok, value: TextScalar) -> TextField:
        return TextField(str(name), name.line, name.column, value)

    def message_field(self, name: _Tok, value: TextMessage) -> TextField:
        value.line, value.col = name.line, name.column
        return TextField(str(name), name.line, name.column, value)

    def list_field(self, name: _Tok, *values: TextScalar | None) -> TextField:
        return TextField(str(name), name.line, name.column, [v for v in values if v is not None])

    def module(self, keyword: _Tok, *fields: TextField) -> TextModule:
        return TextModule(keyword.line, keyword.column, list(fields))


@cache
def _lark() -> Lark:
    # The transformer runs inside the LALR parser (no intermediate tree): 3-4x faster on big
    # nets. Positions come from the tokens themselves, so propagate_positions is not needed.
    return Lark(
        read_grammar("prototxt.lark"),
        parser="lalr",
        maybe_placeholders=True,
        transformer=_ToText(),
    )


def parse_text(source: Source) -> list[TextField | TextModule]:
    """Parse a whole Prototxt document into its top-level fields and modules.

    Raises:
        PrototxtSyntaxError: with the position of the first syntax error.
    """
    try:
        # The transformer runs inside the parser, so parse() returns what start() builds.
        return cast("list[TextField | TextModule]", _lark().parse(source.text))
    except UnexpectedInput as exc:
        raise _syntax_error(source, exc) from None


_TOKEN_WORDS = {
    "_LBRACE": "'{'",
    "_RBRACE": "'}'",
    "_LANGLE": "'<'",
    "_RANGLE": "'>'",
    "_LSQB": "'['",
    "_RSQB": "']'",
    "_COLON": "':'",
    "_COMMA": "','",
    "_SEMI": "';'",
    "NAME": "a field name",
    "MODULE": "'module'",
    "STRING": "a string",
    "SIGNED_NUMBER": "a number",
    "MINUS": "'-'",
    "$END": "end of file",
}


def _describe_expected(expected: set[str]) -> str:
    words = sorted({_TOKEN_WORDS.get(e, e) for e in expected})
    if len(words) > 4:
        words = [w for w in words if w in ("a field name", "'}'", "':'", "'{'")] or words[:4]
    return " or ".join(words)


def _syntax_error(source: Source, exc: UnexpectedInput) -> PrototxtSyntaxError:
    line, col = getattr(exc, "line", 0) or 0, getattr(exc, "column", 0) or 0
    if isinstance(exc, UnexpectedCharacters):
        at = exc.pos_in_stream
        ch = source.text[at] if at is not None and at < len(source.text) else ""
        if ch in "\"'":
            return source.error(
                PrototxtSyntaxError,
                f"unterminated string (missing closing {ch} on this line)",
                line,
                col,
            )
        return source.error(PrototxtSyntaxError, f"unexpected character {ch!r}", line, col)
    if isinstance(exc, (UnexpectedEOF,)) or (
        isinstance(exc, UnexpectedToken) and exc.token.type == "$END"
    ):
        opener = _unclosed_opener(source.text)
        if opener is not None:
            o_line, o_col, ch = opener
            closer = {"{": "}", "<": ">", "[": "]"}[ch]
            return source.error(
                PrototxtSyntaxError,
                f"'{ch}' is never closed (missing '{closer}' before the end of the file)",
                o_line,
                o_col,
            )
        last = len(source.lines)
        return source.error(
            PrototxtSyntaxError,
            "unexpected end of file",
            last,
            len(source.lines[-1]) + 1 if source.lines else 1,
        )
    assert isinstance(exc, UnexpectedToken)
    tok = exc.token
    expected = set(exc.expected)
    if tok.type in ("_RBRACE", "_RANGLE", "_RSQB") and "_RBRACE" not in expected:
        return source.error(
            PrototxtSyntaxError, f"unmatched '{tok}' (nothing to close here)", line, col
        )
    if "_COLON" in expected and tok.type in ("STRING", "SIGNED_NUMBER", "NAME", "MINUS"):
        return source.error(
            PrototxtSyntaxError,
            f"expected ':' between the field name and its value {str(tok)!r}",
            line,
            col,
        )
    return source.error(
        PrototxtSyntaxError,
        f"unexpected {str(tok)!r}: expected {_describe_expected(expected)}",
        line,
        col,
    )


def _unclosed_opener(text: str) -> tuple[int, int, str] | None:
    """Find the innermost bracket left open at end of file (skipping strings and comments)."""
    stack: list[tuple[int, int, str]] = []
    line, col = 1, 0
    i, n = 0, len(text)
    quote: str | None = None
    while i < n:
        ch = text[i]
        col += 1
        if ch == "\n":
            line, col = line + 1, 0
            quote = None
        elif quote:
            if ch == "\\":
                i += 1
                col += 1
            elif ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            while i + 1 < n and text[i + 1] != "\n":
                i += 1
        elif ch in "{<[":
            stack.append((line, col, ch))
        elif ch in "}>]" and stack:
            stack.pop()
        i += 1
    return stack[-1] if stack else None
