"""The numpy reference of Caffe's layers, under its historical name for the tests.

The reference itself ships with the package (``cocotune.reference.caffe_layers``, so that
``cocotune convert --verify`` works from an installed wheel); ``tests.reference.caffe_layers``
is the same module object, so ``from tests.reference import caffe_layers`` and
``from tests.reference.caffe_layers import run_net`` keep working.
"""

import sys

from cocotune.reference import caffe_layers

sys.modules[__name__ + ".caffe_layers"] = caffe_layers

__all__ = ["caffe_layers"]
