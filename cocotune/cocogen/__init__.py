"""CoCo-Gen: pattern + connectivity pruning of 3×3 convolutions and generated C kernels.

The compression half (:mod:`~cocotune.cocogen.patterns`, :mod:`~cocotune.cocogen.admm`) prunes
each 3×3 kernel to one of K 4-tap patterns and removes whole kernels, training with ADMM; the
compilation half stores the result as FKW (:mod:`~cocotune.cocogen.fkw`) and renders one
specialised C function per layer (:mod:`~cocotune.cocogen.emit_c`, templates in
``codegen_templates/c``), built with the system compiler (:mod:`~cocotune.cocogen.build`),
tuned on this machine (:mod:`~cocotune.cocogen.autotune`) and called through ctypes
(:mod:`~cocotune.cocogen.runtime`). Importing this package does not import TensorFlow.
"""

from cocotune.cocogen.errors import BuildError, CocogenError, NoQualifyingLayerError
from cocotune.cocogen.fkw import FKWLayer, decode, encode, read_fkw, write_fkw
from cocotune.cocogen.kernel_spec import KernelSpec, Tile
from cocotune.cocogen.patterns import (
    PatternLibrary,
    candidate_patterns,
    project_layer,
    select_library,
)

__all__ = [
    "BuildError",
    "CocogenError",
    "FKWLayer",
    "KernelSpec",
    "NoQualifyingLayerError",
    "PatternLibrary",
    "Tile",
    "candidate_patterns",
    "compile_model",
    "decode",
    "encode",
    "load_build",
    "project_layer",
    "read_fkw",
    "select_library",
    "write_fkw",
]


def compile_model(*args, **kwargs):
    """See :func:`cocotune.cocogen.pipeline.compile_model`."""
    from cocotune.cocogen.pipeline import compile_model as _compile

    return _compile(*args, **kwargs)


def load_build(path):
    """See :func:`cocotune.cocogen.pipeline.load_build`."""
    from cocotune.cocogen.pipeline import load_build as _load

    return _load(path)
