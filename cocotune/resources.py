"""Find the data files (grammar, templates) that ship inside the installed package.

``grammar/`` and ``codegen_templates/`` live at the top of the repository and are mapped into
the package as ``cocotune.grammar`` etc. by setup.py, so one code path finds them both in an
editable checkout and in an installed wheel. (``proto/caffe.proto`` ships the same way, as the
schema ``cocotune/_proto/caffe_pb2.py`` was generated from; nothing reads it at run time.)
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable


def grammar_file(name: str) -> Traversable:
    """A grammar file, e.g. ``grammar_file("prototxt.lark")``."""
    return files("cocotune.grammar").joinpath(name)


def templates_dir() -> Traversable:
    """The root of the Jinja2 templates (``keras/``, ``c/``)."""
    return files("cocotune.codegen_templates")


@cache
def read_grammar(name: str) -> str:
    return grammar_file(name).read_text(encoding="utf-8")
