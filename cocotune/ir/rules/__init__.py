"""Shape rules, one module per family of Caffe types, each registered in the catalogue.

Every type is described once, by a :func:`cocotune.ir.catalogue.register` call right after its
shape rule (and cost, blob list...) in the module of its family. Importing this package
registers them all, in a fixed order: the catalogue keeps registration order.
"""

from __future__ import annotations

# The order below is the catalogue's registration order, which LAYER_RULES keeps: isort must
# not sort it.
# isort: off
from cocotune.ir.rules import data  # noqa: F401
from cocotune.ir.rules import convolution  # noqa: F401
from cocotune.ir.rules import pooling  # noqa: F401
from cocotune.ir.rules import dense  # noqa: F401
from cocotune.ir.rules import normalization  # noqa: F401
from cocotune.ir.rules import activations  # noqa: F401
from cocotune.ir.rules import blobs  # noqa: F401
from cocotune.ir.rules import outputs  # noqa: F401

# isort: on
