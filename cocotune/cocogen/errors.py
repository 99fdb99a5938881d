"""Errors of the CoCo-Gen backend (all :class:`cocotune.errors.CocotuneError`, exit code 2)."""

from __future__ import annotations

from cocotune.errors import CocotuneError

__all__ = ["CocogenError", "NoQualifyingLayerError", "BuildError"]


class CocogenError(CocotuneError):
    """A model, weights file or build directory that the CoCo-Gen backend cannot use."""


class NoQualifyingLayerError(CocogenError):
    """``cocogen compile`` found no layer it can generate a kernel for (notes say why, per layer)."""


class BuildError(CocogenError):
    """The C compiler is missing or rejected the generated sources."""
