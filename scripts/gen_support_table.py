"""Write the layer support table into README.md (between the support-table markers).

The table is generated from the registries (``cocotune.ir.shapes.LAYER_RULES`` and, once
conversion exists, the emitter registry), like onnx-tensorflow's gen_status.py, so that the
README cannot drift from the code; tests/test_readme.py checks it is current.
Usage: python scripts/gen_support_table.py [--check]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN, END = "<!-- support-table:begin -->", "<!-- support-table:end -->"

# How often each type occurs in ../shared/corpus (its SOURCES.md, V1/V0 spellings included).
CORPUS_COUNTS = {
    "Convolution": 1190, "ReLU": 1145, "BatchNorm": 880, "Scale": 877, "Concat": 153,
    "Pooling": 143, "Eltwise": 135, "InnerProduct": 59, "Sigmoid": 26, "Dropout": 24,
    "Softmax": 23, "Axpy": 16, "ConvolutionDepthwise": 16, "LRN": 16, "ShuffleChannel": 15,
    "Flatten": 14, "Data": 13, "Permute": 12, "Input": 9, "Accuracy": 7, "PriorBox": 6,
    "SoftmaxWithLoss": 6, "ImageData": 3, "Reshape": 3, "ContrastiveLoss": 1,
    "DetectionOutput": 1, "EuclideanLoss": 1, "Python": 1, "ROIPooling": 1,
    "SigmoidCrossEntropyLoss": 1, "Slice": 1,
}  # fmt: skip


def table() -> str:
    from cocotune.ir.shapes import KNOWN_UNSUPPORTED, LAYER_RULES

    try:
        from cocotune.convert.registry import EMITTERS
    except ImportError:
        EMITTERS = {}
    rows = ["| Caffe type | in corpus | shapes | converts | notes |", "|---|---:|---|---|---|"]
    for name in sorted(LAYER_RULES, key=str.lower):
        rule = LAYER_RULES[name]
        converts = "yes" if name in EMITTERS else "—"
        note = rule.description + (f"; **fork extension** ({rule.fork})" if rule.fork else "")
        rows.append(f"| {name} | {CORPUS_COUNTS.get(name, '')} | yes | {converts} | {note} |")
    for name in sorted(KNOWN_UNSUPPORTED, key=str.lower):
        rows.append(
            f"| {name} | {CORPUS_COUNTS.get(name, '')} | unsupported | — | "
            f"{KNOWN_UNSUPPORTED[name]} |"
        )
    return "\n".join(rows)


def render(readme: str) -> str:
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    return pattern.sub(lambda _: f"{BEGIN}\n{table()}\n{END}", readme)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = README.read_text()
    new = render(text)
    if "--check" in argv:
        if new != text:
            print("README.md support table is stale: run python scripts/gen_support_table.py")
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
