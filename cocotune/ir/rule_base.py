"""What every shape rule speaks: the error it raises, the costs it returns, axis and size helpers.

A rule reports a bad layer with ``raise fail(message, field_path)``;
:func:`cocotune.ir.shapes.infer_shapes` turns that into a positioned
:class:`~cocotune.errors.ShapeError` naming the layer and its inputs. Kept apart from the rules
themselves (:mod:`cocotune.ir.rules`) so that :mod:`cocotune.ir.geometry`, which the emitters
use too, needs none of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cocotune.ir.net import Shape


class RuleError(Exception):
    """Raised inside rules; turned into a positioned ShapeError naming the layer."""

    def __init__(self, message: str, field_path: str = "", index: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.field_path = field_path
        self.index = index


def fail(message: str, field_path: str = "", index: int = 0) -> RuleError:
    """An error in a rule; ``field_path``/``index`` say which written value to point at."""
    return RuleError(message, field_path, index)


class NeedsInputShape(Exception):
    """A data layer whose shape (or part of it) lives in a database: ask for --input-shape.

    ``message`` says what the file did determine and what is still unknown.
    """

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Cost:
    """What a layer stores and computes: parameters, and multiply-accumulates per image."""

    params: int = 0
    macs: int = 0  # per image (batch axis divided out)


def prod(values) -> int:
    return math.prod(int(v) for v in values)


def per_image(shape: Shape) -> int:
    """Elements of one image of a blob (the batch axis divided out)."""
    return prod(shape[1:]) if len(shape) > 1 else 1


def canonical_axis(axis: int, ndim: int, what: str = "axis") -> int:
    if not -ndim <= axis < ndim:
        raise fail(f"{what} {axis} is out of range for a {ndim}-axis blob", what)
    return axis % ndim


def fmt_shape(shape: Shape) -> str:
    return "x".join(str(d) for d in shape) if shape else "scalar"
