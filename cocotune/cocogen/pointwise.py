"""Block-column pruning of 1×1 convolutions and fully connected layers (pure numpy).

A 1×1 convolution (Keras kernel ``(1, 1, Cin, Cout)``) and a Dense layer (``(Cin, Cout)``) are
both a ``Cin × Cout`` matrix ``M`` (``out[p, f] = Σ_c x[p, c] · M[c, f]``). Filters are cut into
*groups* of ``G`` consecutive filters (``G`` = 16 by default; the last group may be narrower when
``Cout`` is not a multiple of ``G``). A *block* is one input channel ``c`` of one group ``g``:
the ``G`` weights ``M[c, g·G : (g+1)·G]``. Pruning keeps or removes whole blocks.

Why this shape (and not per-weight magnitude pruning): in TFLite's NHWC layout a pixel's
channels are contiguous and a filter group's ``G`` outputs are contiguous, so a kept block is
one broadcast input value times one (two 8-float) weight vector(s) — the same inner step as a
dense GEMM micro-kernel, with the channel read through an index. Per-weight sparsity at 28 %
density would leave vectors of 16 filters with ~4.5 useful lanes, and CSR over rows needs a
gather per non-zero; blocks keep every FMA lane useful and cost one 2-byte index per ``G``
weights. ``G`` = 16 is the smallest width that keeps two vector FMAs per index load and per
broadcast on 8-float vectors; ``G`` = 8 prunes finer (closer to unstructured magnitude pruning)
at a higher index/broadcast overhead.

Rate: ``rate`` = 3.6 keeps ``max(1, round(n_blocks / rate))`` of the ``Cin · ceil(Cout / G)``
blocks of the layer, those with the largest L2 norm (ties: lowest (group, channel) first). When
``G`` divides ``Cout`` the kept weight fraction is exactly ``n_kept / n_blocks`` (≈ 1/3.6).
Keeping the largest-norm blocks is the exact Euclidean projection onto "at most ``n`` non-zero
blocks": the squared distance is the sum of the removed blocks' squared norms. This is the same
interface as :func:`cocotune.cocogen.patterns.project_layer` (a result with ``.kernel`` and
``.mask`` in the Keras layout), so ADMM's Z-step can call either.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GROUP = 16

__all__ = [
    "GROUP",
    "PointwiseProjection",
    "matrix_of",
    "keras_of",
    "n_groups",
    "block_norms",
    "kept_block_count",
    "project_pointwise",
    "blocks_of",
    "is_pointwise_kernel",
    "infer_blocks",
    "pointwise_layers",
]


def is_pointwise_kernel(kernel: np.ndarray) -> bool:
    """True for a Dense kernel ``(Cin, Cout)`` or a 1×1 Conv2D kernel ``(1, 1, Cin, Cout)``."""
    s = np.shape(kernel)
    return len(s) == 2 or (len(s) == 4 and s[:2] == (1, 1))


def matrix_of(kernel: np.ndarray) -> np.ndarray:
    """The ``(Cin, Cout)`` matrix of a Dense or 1×1 Conv2D kernel (a view when possible)."""
    k = np.asarray(kernel)
    if k.ndim == 2:
        return k
    if k.ndim == 4 and k.shape[:2] == (1, 1):
        return k.reshape(k.shape[2], k.shape[3])
    raise ValueError(f"expected a (Cin, Cout) or (1, 1, Cin, Cout) kernel, got shape {k.shape}")


def keras_of(matrix: np.ndarray, like: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`matrix_of`: the matrix in the Keras shape ``like``."""
    return np.ascontiguousarray(np.asarray(matrix).reshape(like))


def n_groups(cout: int, group: int = GROUP) -> int:
    return -(-cout // group)


def _check_group(group: int) -> None:
    if group < 8 or group % 8:
        raise ValueError(f"the filter group must be a positive multiple of 8, got {group}")


def block_norms(matrix: np.ndarray, group: int = GROUP) -> np.ndarray:
    """Squared L2 norm of every block, ``(n_groups, Cin)`` float64."""
    _check_group(group)
    m = np.asarray(matrix, dtype=np.float64)
    cin, cout = m.shape
    ng = n_groups(cout, group)
    pad = np.zeros((cin, ng * group))
    pad[:, :cout] = m
    return (pad.reshape(cin, ng, group) ** 2).sum(-1).T


def kept_block_count(n_blocks: int, rate: float) -> int:
    """Blocks a layer keeps at ``rate`` (3.6 = 3.6× fewer blocks; 1 = keep all)."""
    if not rate >= 1:
        raise ValueError(f"pruning rate must be >= 1 (1 = keep all), got {rate}")
    return max(1, min(n_blocks, int(round(n_blocks / rate))))


def blocks_of(kernel: np.ndarray, group: int = GROUP) -> np.ndarray:
    """Which blocks a (pruned) kernel keeps, read from its zeros: ``(n_groups, Cin)`` bool."""
    return block_norms(matrix_of(kernel), group) > 0


@dataclass
class PointwiseProjection:
    """A projected layer: weights and mask in the Keras layout of the input kernel."""

    kernel: np.ndarray  # same shape and dtype as the input
    mask: np.ndarray  # same shape, bool
    kept: np.ndarray  # (n_groups, Cin) bool: kept blocks
    group: int

    @property
    def density(self) -> float:
        """Kept weights / all weights."""
        return float(self.mask.mean()) if self.mask.size else 0.0


def project_pointwise(
    kernel: np.ndarray, rate: float = 3.6, group: int = GROUP
) -> PointwiseProjection:
    """Euclidean projection of a Dense / 1×1 Conv2D kernel onto "at most
    ``kept_block_count(n_blocks, rate)`` non-zero (channel × ``group`` filters) blocks"."""
    k = np.asarray(kernel)
    m = matrix_of(k)
    cin, cout = m.shape
    norms = block_norms(m, group)  # (G, Cin)
    ng = norms.shape[0]
    n_keep = kept_block_count(ng * cin, rate)
    flat = norms.ravel()
    order = np.lexsort((np.arange(flat.size), -flat))  # larger norm first, ties by position
    kept_flat = np.zeros(flat.size, dtype=bool)
    kept_flat[order[:n_keep]] = True
    kept = kept_flat.reshape(ng, cin)
    col_mask = np.repeat(kept.T, group, axis=1)[:, :cout]  # (Cin, Cout)
    proj = np.where(col_mask, m, 0).astype(k.dtype)
    return PointwiseProjection(
        kernel=keras_of(proj, k.shape),
        mask=keras_of(col_mask, k.shape),
        kept=kept,
        group=group,
    )


def infer_blocks(
    kernel: np.ndarray, group: int = GROUP, max_density: float = 0.5
) -> tuple[np.ndarray | None, str]:
    """Whether a trained kernel is block-pruned enough for a generated kernel, read from its
    zeros: ``(kept blocks, "")`` or ``(None, reason)``. Above ``max_density`` kept blocks the
    dense runtime is faster (our kernel reaches roughly TFLite's dense efficiency times the kept
    fraction, see ``benchmarks/results/cocogen_pointwise.json``)."""
    if not is_pointwise_kernel(kernel):
        return None, f"not a Dense or 1x1 kernel (shape {np.shape(kernel)})"
    kept = blocks_of(kernel, group)
    if not kept.any():
        return None, "every weight is zero"
    d = float(kept.mean())
    if d > max_density:
        return None, (
            f"{d:.0%} of its (input channel x {group} filters) blocks are non-zero, more than "
            f"{max_density:.0%}: not block-pruned"
        )
    return kept, ""


def pointwise_layers(model, classifier: bool = True) -> list:
    """The layers block pruning applies to: ``Conv2D`` with a 1×1 kernel (one group, no
    dilation, strides 1 or 2) and ``Dense`` layers on a vector (2-D kernel); ``classifier=False``
    leaves out the model's last Dense layer. In graph order (``model.layers``)."""
    import keras

    out = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Conv2D" and isinstance(layer, keras.layers.Conv2D):
            if (
                tuple(layer.kernel_size) == (1, 1)
                and tuple(layer.dilation_rate) == (1, 1)
                and getattr(layer, "groups", 1) == 1
                and tuple(layer.strides) in ((1, 1), (2, 2))
            ):
                out.append(layer)
        elif kind == "Dense" and isinstance(layer, keras.layers.Dense):
            if len(layer.kernel.shape) == 2:
                out.append(layer)
    if not classifier:
        dense = [l for l in out if type(l).__name__ == "Dense"]
        if dense:
            out.remove(dense[-1])
    return out
