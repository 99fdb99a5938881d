"""The README's generated parts are current and its promises hold."""

from __future__ import annotations

import importlib.util

from tests.conftest import REPO


def _support_table_script():
    spec = importlib.util.spec_from_file_location(
        "gen_support_table", REPO / "scripts" / "gen_support_table.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_support_table_is_current():
    module = _support_table_script()
    text = (REPO / "README.md").read_text()
    assert module.render(text) == text, "run: python scripts/gen_support_table.py"


def test_support_table_counts_come_from_the_corpus(tmp_path):
    """Counts are measured (V1 and V0 spellings under their new names), not typed in; without
    a corpus the README's counts stay as they are."""
    module = _support_table_script()
    text = (REPO / "README.md").read_text()
    assert module.render(text, tmp_path / "absent") == text
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "new.prototxt").write_text(
        'layer { name: "a" type: "Convolution" }\nlayer { name: "b" type: "ReLU" }\n'
    )
    (corpus / "v1.prototxt").write_text('layers { name: "c" type: CONVOLUTION }\n')
    (corpus / "v0.prototxt").write_text('layers { layer { name: "d" type: "conv" } }\n')
    (corpus / "solver.prototxt").write_text('net: "new.prototxt"\nbase_lr: 0.1\n')
    assert module.corpus_counts(corpus) == {"Convolution": 3, "ReLU": 1}
    counts = module.readme_counts(module.render(text, corpus))
    assert counts == {"Convolution": 3, "ReLU": 1}


def test_readme_leads_with_the_two_commands():
    text = (REPO / "README.md").read_text()
    first = text.index("make demo")
    assert first < text.index("## A tour") and "make test" in text[: first + 200]
