"""The README's generated parts are current and its promises hold."""

from __future__ import annotations

import importlib.util

from tests.conftest import REPO


def test_support_table_is_current():
    spec = importlib.util.spec_from_file_location(
        "gen_support_table", REPO / "scripts" / "gen_support_table.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = (REPO / "README.md").read_text()
    assert module.render(text) == text, "run: python scripts/gen_support_table.py"


def test_readme_leads_with_the_two_commands():
    text = (REPO / "README.md").read_text()
    first = text.index("make demo")
    assert first < text.index("## A tour") and "make test" in text[: first + 200]
