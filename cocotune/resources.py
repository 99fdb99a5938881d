"""Find the data files (grammar, templates, schema) that ship inside the installed package.

``grammar/``, ``codegen_templates/`` and ``proto/`` live at the top of the repository and are
mapped into the package as ``cocotune.grammar`` etc. by setup.py, so one code path finds them
both in an editable checkout and in an installed wheel.
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


def proto_file(name: str = "caffe.proto") -> Traversable:
    """The schema cocotune reads and writes Caffe files with."""
    return files("cocotune.proto").joinpath(name)


@cache
def read_grammar(name: str) -> str:
    return grammar_file(name).read_text(encoding="utf-8")
