"""The file layout FKW and PWB layers share: magic, a JSON header, then little-endian arrays.

``MAGIC (4 bytes) | header length (uint32 LE) | header (JSON) | array bytes in header order``;
the header's ``arrays`` maps each name to ``[numpy dtype string, element count]``. One reader
and one writer, so both formats reject bad magic, corrupt headers and truncation the same way.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from cocotune.cocogen.errors import CocogenError


def write_container(
    path: str | Path, magic: bytes, meta: dict[str, Any], arrays: dict[str, np.ndarray]
) -> int:
    """Write ``meta`` plus ``arrays`` (in the dict's order) to ``path``; returns its size."""
    header = {
        **meta,
        "arrays": {n: [np.dtype(a.dtype).str, int(a.size)] for n, a in arrays.items()},
    }
    hb = json.dumps(header, sort_keys=True).encode("utf-8")
    with open(path, "wb") as fh:
        fh.write(magic + struct.pack("<I", len(hb)) + hb)
        for a in arrays.values():
            fh.write(np.ascontiguousarray(a, dtype=np.dtype(a.dtype).newbyteorder("<")).tobytes())
    return Path(path).stat().st_size


def read_container(
    path: str | Path, magic: bytes, kind: str, names: tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read the header and the arrays ``names`` of a file written by :func:`write_container`.

    ``kind`` names the format in errors (``"an FKW"``, ``"a PWB"``).

    Raises:
        CocogenError: bad magic, a corrupt header, or a truncated file.
    """
    data = Path(path).read_bytes()
    if data[:4] != magic or len(data) < 8:
        raise CocogenError(f"'{path}' is not {kind} file (bad magic)")
    (hl,) = struct.unpack("<I", data[4:8])
    label = kind.split()[-1]
    try:
        header = json.loads(data[8 : 8 + hl].decode("utf-8"))
        specs = [(n, np.dtype(header["arrays"][n][0]), int(header["arrays"][n][1])) for n in names]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise CocogenError(f"'{path}' has a corrupt {label} header") from None
    pos = 8 + hl
    arrays = {}
    for n, dt, size in specs:
        nb = dt.itemsize * size
        if pos + nb > len(data):
            raise CocogenError(f"'{path}' is truncated (array '{n}')")
        arrays[n] = np.frombuffer(data, dtype=dt, count=size, offset=pos).astype(
            dt.newbyteorder("=")
        )
        pos += nb
    return header, arrays
