"""How many filters a pruning rate keeps: the one rule the compiler and the generated model share.

The generated model.py (through :mod:`cocotune.runtime.model`) needs this rule to build a pruned
network, and must not import the compiler to get it (the Prototxt parser, Lark, caffe_pb2):
so it lives here, with nothing but the standard library (tests/test_architecture.py checks).
"""

from __future__ import annotations

import math

__all__ = ["kept_filters"]


def kept_filters(num_output: int, rate: float) -> int:
    """Filters kept at pruning rate ``rate``: ``max(1, ceil((1 - rate) * num_output))``.

    The product is rounded to 9 decimals before ``ceil`` because ``(1 - 0.7) * 10`` is
    ``3.0000000000000004`` in floating point, and a user who asks for 70% of 10 filters expects 3.
    """
    if not 0 <= rate < 1:
        raise ValueError(f"a pruning rate is in [0, 1), got {rate!r}")
    return max(1, math.ceil(round((1 - rate) * num_output, 9)))
