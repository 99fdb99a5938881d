"""PWB (pointwise-block) compact storage of one block-pruned 1×1 convolution / Dense layer.

The FKW idea applied to :mod:`cocotune.cocogen.pointwise` blocks. Arrays (``Gn`` filter
groups of ``G`` filters, ``K`` kept blocks):

========  ===========  ==================================================================
offset    u16/i32 Gn+1 blocks of reordered group ``i`` are ``offset[i]:offset[i+1]``
reorder   u16/i32 Gn   original group number of reordered group ``i``
index     u16/i32 K    input channel of each block (ascending inside a group)
weights   f32 G·K      the ``G`` weights of each block (filters of the group in order; the
                       last group's missing filters, when ``G`` does not divide ``Cout``,
                       are stored as zeros so every block is one aligned vector row)
========  ===========  ==================================================================

Reorder: groups are sorted by their number of kept blocks (most first, ties by group number):
groups with the same amount of work are neighbours, and a cyclic split over threads of the
sorted list is balanced. Inside a group, blocks follow the input channel, so the kernel reads
each pixel's channels forward.

Bytes (:attr:`PWBLayer.nbytes`) count the four arrays; CSR is the standard one over the
``Cout × Cin`` matrix with the same non-zeros (fp32 values, int32 indices and row pointers,
:func:`cocotune.cocogen.fkw.csr_nbytes`). At ``G`` = 16 PWB is ~0.53× CSR: 4 bytes per
weight plus 2 per 16 weights, against 8 per weight.

File layout: ``b"PWB1"``, a little-endian u32 header length, a UTF-8 JSON header, then the
arrays and the bias back to back, little-endian (like FKW).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cocotune.cocogen.container import read_container, write_container
from cocotune.cocogen.fkw import csr_nbytes
from cocotune.cocogen.pointwise import GROUP, block_norms, matrix_of, n_groups

MAGIC = b"PWB1"

__all__ = ["PWBLayer", "encode_pointwise", "write_pwb", "read_pwb", "MAGIC"]


def _index_dtype(n: int):
    return np.uint16 if n <= 0x10000 else np.int32


@dataclass
class PWBLayer:
    """One layer in PWB form (see the module docstring)."""

    cin: int
    cout: int
    group: int
    offset: np.ndarray
    reorder: np.ndarray
    index: np.ndarray
    weights: np.ndarray  # (K * group,) float32
    bias: np.ndarray

    @property
    def n_groups(self) -> int:
        return n_groups(self.cout, self.group)

    @property
    def n_blocks(self) -> int:
        return int(self.offset[-1])

    @property
    def nnz(self) -> int:
        return int(np.count_nonzero(self.weights))

    @property
    def nbytes(self) -> int:
        """Bytes of offset, reorder, index and weights (bias excluded, as in CSR)."""
        return int(sum(a.nbytes for a in (self.offset, self.reorder, self.index, self.weights)))

    @property
    def csr_nbytes(self) -> int:
        return csr_nbytes(self.cout, self.nnz)

    @property
    def macs_per_pixel(self) -> int:
        """Multiply-adds per output pixel the kernel performs (padded tail lanes excluded)."""
        gs = np.minimum(self.group, self.cout - self.group * self.reorder.astype(np.int64))
        return int(np.sum(np.diff(self.offset.astype(np.int64)) * gs))

    def to_matrix(self) -> np.ndarray:
        """The dense ``(Cin, Cout)`` float32 matrix."""
        g = self.group
        m = np.zeros((self.cin, self.n_groups * g), np.float32)
        w = self.weights.reshape(-1, g)
        for i, grp in enumerate(self.reorder.astype(np.int64)):
            a, b = int(self.offset[i]), int(self.offset[i + 1])
            m[self.index[a:b].astype(np.int64), grp * g : (grp + 1) * g] = w[a:b]
        return m[:, : self.cout]


def encode_pointwise(
    kernel: np.ndarray, bias: np.ndarray | None = None, group: int = GROUP
) -> PWBLayer:
    """A Dense ``(Cin, Cout)`` or 1×1 Conv2D ``(1, 1, Cin, Cout)`` kernel (zeros = pruned) in
    PWB form. A block is stored when any of its weights is non-zero."""
    m = np.asarray(matrix_of(kernel), dtype=np.float32)
    cin, cout = m.shape
    kept = block_norms(m, group) > 0  # (Gn, Cin)
    ng = kept.shape[0]
    counts = kept.sum(1)
    reorder = np.lexsort((np.arange(ng), -counts))
    pad = np.zeros((cin, ng * group), np.float32)
    pad[:, :cout] = m
    offset = np.zeros(ng + 1, np.int64)
    index, weights = [], []
    for i, grp in enumerate(reorder):
        chans = np.flatnonzero(kept[grp])
        index.append(chans)
        weights.append(pad[chans, grp * group : (grp + 1) * group])
        offset[i + 1] = offset[i] + len(chans)
    k = int(offset[-1])
    return PWBLayer(
        cin=cin,
        cout=cout,
        group=group,
        offset=offset.astype(np.uint16 if k <= 0xFFFF else np.int32),
        reorder=reorder.astype(_index_dtype(ng)),
        index=(np.concatenate(index) if index else np.zeros(0)).astype(_index_dtype(cin)),
        weights=(np.concatenate(weights) if weights else np.zeros((0, group)))
        .astype(np.float32)
        .reshape(-1),
        bias=(
            np.zeros(cout, np.float32)
            if bias is None
            else np.asarray(bias, np.float32).reshape(cout)
        ),
    )


_ARRAYS = ("offset", "reorder", "index", "weights", "bias")


def write_pwb(layer: PWBLayer, path: str | Path) -> int:
    """Write ``layer`` to ``path``; returns the file size in bytes."""
    arrays = {n: getattr(layer, n) for n in _ARRAYS}
    return write_container(
        path, MAGIC, {"cin": layer.cin, "cout": layer.cout, "group": layer.group}, arrays
    )


def read_pwb(path: str | Path) -> PWBLayer:
    """Read a file written by :func:`write_pwb`.

    Raises:
        CocogenError: not a PWB file, or corrupt / truncated.
    """
    header, arrays = read_container(path, MAGIC, "a PWB", _ARRAYS)
    return PWBLayer(
        cin=int(header["cin"]), cout=int(header["cout"]), group=int(header["group"]), **arrays
    )
