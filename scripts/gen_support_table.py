"""Write the layer support table into README.md (between the support-table markers).

The table is generated from the registries (``cocotune.ir.shapes.LAYER_RULES`` and the emitter
registry ``cocotune.convert.registry.EMITTERS``), like onnx-tensorflow's gen_status.py, so that
the README cannot drift from the code; tests/test_readme.py checks it is current. The "in
corpus" column counts each layer type in the shared Caffe corpus (``shared/corpus`` next to the
repository, or ``--corpus DIR``), V1/V0 spellings under their new names; a checkout without the
corpus keeps the counts the README already shows.
Usage: python scripts/gen_support_table.py [--check] [--corpus DIR]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
CORPUS = REPO.parent / "shared" / "corpus"
BEGIN, END = "<!-- support-table:begin -->", "<!-- support-table:end -->"
_BLOCK = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)


def corpus_counts(corpus: Path = CORPUS) -> dict[str, int] | None:
    """How often each layer type occurs in the corpus's nets (None without a corpus).

    Every top-level ``layer``/``layers`` entry counts, whatever its phase; a V1 enum type or a
    V0 type string counts under the type it upgrades to. Solver files are skipped.
    """
    if not corpus.is_dir():
        return None
    from cocotune._proto import caffe_pb2
    from cocotune.frontend.load import read_source
    from cocotune.frontend.parser import parse_text
    from cocotune.frontend.solver_check import looks_like_solver
    from cocotune.frontend.to_proto import build_net_parameter
    from cocotune.frontend.upgrade import V0_TYPE_NAMES, V1_TYPE_NAMES

    counts: Counter[str] = Counter()
    for path in sorted(corpus.glob("*.prototxt")):
        source = read_source(path)
        if looks_like_solver(source.text):
            continue
        net = build_net_parameter(source, parse_text(source), caffe_pb2.NetParameter).net
        counts.update(layer.type for layer in net.layer)
        for old in net.layers:
            if old.HasField("layer"):  # V0: layers { layer { type: "conv" } }
                counts[V0_TYPE_NAMES.get(old.layer.type, old.layer.type)] += 1
            else:  # V1: an enum
                name = caffe_pb2.V1LayerParameter.LayerType.Name(old.type)
                counts[V1_TYPE_NAMES.get(name, name)] += 1
    return dict(counts)


def readme_counts(readme: str) -> dict[str, int]:
    """The "in corpus" column of the table already in the README."""
    block = _BLOCK.search(readme)
    counts: dict[str, int] = {}
    for line in block.group(0).splitlines() if block else []:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[1].isdigit():
            counts[cells[0]] = int(cells[1])
    return counts


def table(counts: dict[str, int]) -> str:
    from cocotune.convert.registry import EMITTERS
    from cocotune.ir.shapes import KNOWN_UNSUPPORTED, LAYER_RULES

    rows = ["| Caffe type | in corpus | shapes | converts | notes |", "|---|---:|---|---|---|"]
    for name in sorted(LAYER_RULES, key=str.lower):
        rule = LAYER_RULES[name]
        converts = "yes" if name in EMITTERS else "—"
        note = rule.description + (f"; **fork extension** ({rule.fork})" if rule.fork else "")
        rows.append(f"| {name} | {counts.get(name, '')} | yes | {converts} | {note} |")
    for name in sorted(KNOWN_UNSUPPORTED, key=str.lower):
        rows.append(
            f"| {name} | {counts.get(name, '')} | unsupported | — | {KNOWN_UNSUPPORTED[name]} |"
        )
    return "\n".join(rows)


def render(readme: str, corpus: Path = CORPUS) -> str:
    """``readme`` with its support table regenerated."""
    counts = corpus_counts(corpus)
    if counts is None:
        counts = readme_counts(readme)
    return _BLOCK.sub(lambda _: f"{BEGIN}\n{table(counts)}\n{END}", readme)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check the table is current")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="the Caffe corpus directory")
    args = parser.parse_args(argv)
    text = README.read_text(encoding="utf-8")
    new = render(text, args.corpus)
    if args.check:
        if new != text:
            print("README.md support table is stale: run python scripts/gen_support_table.py")
            return 1
        return 0
    README.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
