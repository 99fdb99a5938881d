"""What exploration looks for, and in which order it tries configurations (docs/design.md §6).

Accuracy here is always validation accuracy (the full model's too): test accuracy never decides.

``--alpha A``: the smallest model whose accuracy is at least full accuracy × (1 − A);
``--acc-threshold T``: the same with an absolute threshold; ``--objective FILE`` in the
paper's format::

    min ModelSize                      max Accuracy
    constraint Accuracy >= 0.8         constraint ModelSize <= 2000000

``min ModelSize`` explores smallest first and stops at the first configuration meeting the
accuracy constraint. ``max Accuracy`` explores, among configurations within the size
constraints, largest first; it stops at the first meeting an accuracy constraint if there is
one, otherwise it evaluates them all and keeps the most accurate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from cocotune.errors import CocotuneError, Position, read_text_source


@dataclass(frozen=True)
class Objective:
    goal: str  # "min_size" or "max_accuracy"
    min_accuracy: float | None = None  # absolute threshold (None: none)
    alpha: float | None = None  # relative to the full model's accuracy
    max_size: int | None = None
    min_size: int | None = None

    def threshold(self, full_accuracy: float) -> float | None:
        if self.alpha is not None:
            return full_accuracy * (1.0 - self.alpha)
        return self.min_accuracy

    def order(self, configurations) -> list:
        """Configurations to explore, in exploration order (size constraints applied)."""
        kept = [
            c
            for c in configurations
            if (self.max_size is None or c.params <= self.max_size)
            and (self.min_size is None or c.params >= self.min_size)
        ]
        if self.goal == "min_size":
            return sorted(kept, key=lambda c: (c.params, c.id))
        return sorted(kept, key=lambda c: (-c.params, c.id))

    @property
    def stops_early(self) -> bool:
        return self.goal == "min_size" or self.min_accuracy is not None or self.alpha is not None

    def describe(self, full_accuracy: float | None = None) -> str:
        parts = ["smallest model" if self.goal == "min_size" else "most accurate model"]
        if self.alpha is not None:
            t = f" = {self.threshold(full_accuracy):.4f}" if full_accuracy is not None else ""
            parts.append(f"with accuracy >= full x (1 - {self.alpha:g}){t}")
        elif self.min_accuracy is not None:
            parts.append(f"with accuracy >= {self.min_accuracy:g}")
        if self.max_size is not None:
            parts.append(f"and at most {self.max_size:,} parameters")
        if self.min_size is not None:
            parts.append(f"and at least {self.min_size:,} parameters")
        return " ".join(parts)


_LINE = re.compile(r"^\s*constraint\s+(Accuracy|ModelSize)\s*(>=|<=|>|<)\s*([0-9.eE+-]+)\s*$")


def parse_objective(path: str | Path) -> Objective:
    """Read an objective file in the paper's format (errors name file:line and the token)."""
    text = read_text_source(path, "objective file")
    goal: str | None = None
    fields: dict[str, float] = {}
    shown = str(path)
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if goal is None:
            words = line.split()
            if words in (["min", "ModelSize"], ["max", "Accuracy"]):
                goal = "min_size" if words[0] == "min" else "max_accuracy"
                continue
            raise CocotuneError(
                f"the objective must start with 'min ModelSize' or 'max Accuracy', not {line!r}",
                Position(shown, number, 1),
                raw,
            )
        match = _LINE.match(line)
        if not match:
            raise CocotuneError(
                f"cannot read constraint {line!r} (write e.g. 'constraint Accuracy >= 0.8')",
                Position(shown, number, 1),
                raw,
            )
        what, op, value = match.groups()
        try:
            number_value = float(value)
        except ValueError:
            raise CocotuneError(
                f"{value!r} is not a number", Position(shown, number, 1), raw
            ) from None
        if what == "Accuracy" and op in (">=", ">"):
            fields["min_accuracy"] = number_value
        elif what == "ModelSize" and op in ("<=", "<"):
            fields["max_size"] = int(number_value) - (1 if op == "<" else 0)
        elif what == "ModelSize":
            fields["min_size"] = int(number_value) + (1 if op == ">" else 0)
        else:
            raise CocotuneError(
                "an upper bound on Accuracy is not a useful constraint",
                Position(shown, number, 1),
                raw,
            )
    if goal is None:
        raise CocotuneError(f"{shown}: the objective file is empty")
    if goal == "min_size" and "min_accuracy" not in fields:
        raise CocotuneError(f"{shown}: 'min ModelSize' needs 'constraint Accuracy >= T'")
    return Objective(goal, **fields)  # type: ignore[arg-type]


def objective_from_args(alpha, acc_threshold, objective_file) -> Objective:
    given = [x is not None for x in (alpha, acc_threshold, objective_file)]
    if sum(given) > 1:
        raise CocotuneError("give one of --alpha, --acc-threshold, --objective")
    if objective_file is not None:
        return parse_objective(objective_file)
    if acc_threshold is not None:
        return Objective("min_size", min_accuracy=float(acc_threshold))
    return Objective("min_size", alpha=float(alpha if alpha is not None else 0.01))
