"""Render Jinja2 templates from ``codegen_templates/`` and format the result with black.

One environment for all generated Python (StrictUndefined: a missing value is a bug in
cocotune, never an empty string in the user's code).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2

from cocotune.resources import templates_dir


def make_environment(directory) -> jinja2.Environment:
    """The settings every cocotune code generator uses (Python and C alike)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


@cache
def environment() -> jinja2.Environment:
    return make_environment(templates_dir())


def render(template: str, context: dict[str, Any]) -> str:
    return environment().get_template(template).render(**context)


def format_python(source: str) -> str:
    """black, line length 100; a syntax error here is a cocotune bug and propagates."""
    import black

    return black.format_str(source, mode=black.Mode(line_length=100))


def render_python(template: str, context: dict[str, Any], header: dict[str, str]) -> str:
    """Render a Python template under the standard generated-file header, then format it."""
    head = render("keras/file_header.py.j2", header)
    return format_python(render(template, {**context, "header": head.rstrip("\n")}))
