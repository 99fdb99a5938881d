"""FKW (filter-kernel-weight) compact storage of one pattern-pruned 3×3 convolution layer.

Arrays, in the order they are written (``F`` filters, ``K`` kept kernels, ``T`` taps per pattern):

========  ===========  ===========================================================
offset    u16/i32 F+1  kernels of reordered filter ``i`` are ``offset[i]:offset[i+1]``
reorder   u16/i32 F    original filter number of reordered filter ``i``
index     u16/i32 K    input channel of each kernel
pattern   uint8 K      pattern id of each kernel (into the library)
weights   f32 T·K      the T kept taps of each kernel, in the pattern's tap order
========  ===========  ===========================================================

u16 is used whenever the values fit (offsets up to 65535 kernels, up to 65536 channels).

Filter-kernel reorder: filters are sorted by number of kernels (most first), then by their
pattern mix (the histogram of pattern ids), so that filters that run the same code with the same
amount of work are neighbours (balanced threads, fewer code switches). Inside a filter, kernels
are sorted by (pattern, channel): each pattern's kernels form one branch-free group.

The library (``P × T`` tap numbers, one byte each) and the bias are stored too; the byte count
compared with CSR (:attr:`FKWLayer.nbytes`) is that of the five arrays plus the library. CSR is
the standard one (scipy's): fp32 values, int32 column indices, int32 row pointers, over the
``F × (Cin·9)`` weight matrix with the same non-zeros.

File layout: ``b"FKW1"``, a little-endian u32 header length, a UTF-8 JSON header (shapes,
library, dtypes), then the arrays (and bias) back to back, little-endian.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cocotune.cocogen.container import read_container, write_container
from cocotune.cocogen.errors import CocogenError
from cocotune.cocogen.patterns import PatternLibrary, hwio_of, kernels_of

MAGIC = b"FKW1"

__all__ = ["FKWLayer", "encode", "decode", "write_fkw", "read_fkw", "csr_nbytes", "MAGIC"]


def _index_dtype(n: int):
    """uint16 when every value (0..n-1) fits, else int32."""
    return np.uint16 if n <= 0x10000 else np.int32


@dataclass
class FKWLayer:
    """One layer in FKW form (see the module docstring for the arrays)."""

    cout: int
    cin: int
    library: PatternLibrary
    offset: np.ndarray
    reorder: np.ndarray
    index: np.ndarray
    pattern: np.ndarray
    weights: np.ndarray
    bias: np.ndarray

    @property
    def n_kernels(self) -> int:
        return int(self.offset[-1])

    @property
    def taps(self) -> int:
        return self.library.taps

    @property
    def nbytes(self) -> int:
        """Bytes of the five FKW arrays plus the pattern library (bias excluded, as in CSR)."""
        arrays = (self.offset, self.reorder, self.index, self.pattern, self.weights)
        return int(sum(a.nbytes for a in arrays) + len(self.library) * self.taps)

    @property
    def csr_nbytes(self) -> int:
        return csr_nbytes(self.cout, int(np.count_nonzero(self.weights)))

    def groups(self) -> np.ndarray:
        """``(F, P+1)`` int32: kernels of reordered filter ``i`` with pattern ``p`` are
        ``groups[i, p]:groups[i, p+1]`` (kernels inside a filter are sorted by pattern)."""
        p = len(self.library)
        g = np.empty((self.cout, p + 1), dtype=np.int32)
        for i in range(self.cout):
            a, b = int(self.offset[i]), int(self.offset[i + 1])
            g[i, :] = a + np.searchsorted(self.pattern[a:b], np.arange(p + 1), side="left")
        return g

    def to_dense(self) -> np.ndarray:
        """The Keras kernel ``(3, 3, Cin, Cout)`` this layer encodes (exact)."""
        ks = np.zeros((self.cout, self.cin, 9), dtype=np.float32)
        lib = self.library.array
        w = self.weights.reshape(-1, self.taps)
        for i in range(self.cout):
            f = int(self.reorder[i])
            for k in range(int(self.offset[i]), int(self.offset[i + 1])):
                ks[f, int(self.index[k]), lib[int(self.pattern[k])]] = w[k]
        return hwio_of(ks)


def csr_nbytes(rows: int, nnz: int) -> int:
    """Bytes of a standard CSR matrix: fp32 values, int32 column indices and row pointers."""
    return 4 * nnz + 4 * nnz + 4 * (rows + 1)


def assign_patterns(kernel_hwio: np.ndarray, library: PatternLibrary) -> np.ndarray:
    """Pattern id per kernel ``(Cout, Cin)``, -1 for all-zero kernels.

    A kernel takes the first library pattern whose taps cover its non-zeros.

    Raises:
        CocogenError: a non-zero kernel that no library pattern covers.
    """
    ks = kernels_of(kernel_hwio)
    nz = ks != 0
    masks = np.zeros((len(library), 9), dtype=bool)
    for i, taps in enumerate(library.patterns):
        masks[i, list(taps)] = True
    # covered[f, c, p] = every non-zero of kernel (f, c) is in pattern p
    covered = ~np.any(nz[:, :, None, :] & ~masks[None, None, :, :], axis=-1)
    pid = np.where(covered.any(-1), np.argmax(covered, axis=-1), -2)
    pid = np.where(nz.any(-1), pid, -1)
    if np.any(pid == -2):
        f, c = np.argwhere(pid == -2)[0]
        raise CocogenError(
            f"kernel (filter {f}, channel {c}) has non-zeros at taps "
            f"{np.flatnonzero(nz[f, c]).tolist()}, which no pattern of the library covers"
        )
    return pid


def encode(kernel_hwio: np.ndarray, bias: np.ndarray | None, library: PatternLibrary) -> FKWLayer:
    """Dense Keras kernel (with zeros following ``library``) -> :class:`FKWLayer`."""
    ks = kernels_of(np.asarray(kernel_hwio, dtype=np.float32))
    cout, cin, _ = ks.shape
    pid = assign_patterns(kernel_hwio, library)
    lib = library.array
    counts = (pid >= 0).sum(1)
    mix = [tuple(np.bincount(pid[f][pid[f] >= 0], minlength=len(library))) for f in range(cout)]
    reorder = sorted(range(cout), key=lambda f: (-counts[f], tuple(-m for m in mix[f]), f))
    offset = [0]
    index, pattern, weights = [], [], []
    for f in reorder:
        chans = sorted(np.flatnonzero(pid[f] >= 0), key=lambda c: (pid[f, c], c))
        for c in chans:
            index.append(c)
            pattern.append(pid[f, c])
            weights.append(ks[f, c, lib[pid[f, c]]])
        offset.append(len(index))
    w = np.asarray(weights, dtype=np.float32).reshape(-1) if weights else np.zeros(0, np.float32)
    return FKWLayer(
        cout=cout,
        cin=cin,
        library=library,
        offset=np.asarray(offset, dtype=np.uint16 if offset[-1] <= 0xFFFF else np.int32),
        reorder=np.asarray(reorder, dtype=_index_dtype(cout)),
        index=np.asarray(index, dtype=_index_dtype(cin)),
        pattern=np.asarray(pattern, dtype=np.uint8),
        weights=w,
        bias=(
            np.zeros(cout, np.float32)
            if bias is None
            else np.asarray(bias, np.float32).reshape(cout)
        ),
    )


def decode(layer: FKWLayer) -> tuple[np.ndarray, np.ndarray]:
    """:class:`FKWLayer` -> (Keras kernel ``(3, 3, Cin, Cout)``, bias)."""
    return layer.to_dense(), layer.bias.copy()


_ARRAYS = ("offset", "reorder", "index", "pattern", "weights", "bias")


def write_fkw(layer: FKWLayer, path: str | Path) -> int:
    """Write ``layer`` to ``path``; returns the file size in bytes."""
    arrays = {n: getattr(layer, n) for n in _ARRAYS}
    return write_container(
        path,
        MAGIC,
        {"cout": layer.cout, "cin": layer.cin, "library": layer.library.to_json()},
        arrays,
    )


def read_fkw(path: str | Path) -> FKWLayer:
    """Read a file written by :func:`write_fkw`.

    Raises:
        CocogenError: not an FKW file, or truncated.
    """
    header, arrays = read_container(path, MAGIC, "an FKW", _ARRAYS)
    return FKWLayer(
        cout=int(header["cout"]),
        cin=int(header["cin"]),
        library=PatternLibrary.from_json(header["library"]),
        **arrays,
    )
