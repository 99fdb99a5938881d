"""The CoCo-Gen kernels inside stock TensorFlow Lite: an external delegate (classic C
``TfLiteDelegate`` ABI) built next to the kernels by ``cocogen compile``.

::

    build/model.tflite              the pruned Keras model converted (float32, no quantisation)
    build/libcocogen_delegate.so    kernels + descriptor table + ABI shim + plugin entry points
    build/cocogen_weights.bin       the kernels' weight arrays (read when the delegate is created)

    d = cocotune.cocogen.delegate.load("build/", verbose=1)
    it = tf.lite.Interpreter("build/model.tflite", experimental_delegates=[d])
    cocotune.cocogen.delegate.stats("build/", d)   # counters: which nodes ran through our kernels

The delegate claims a CONV_2D node only when its filter has the shape and the support (zero
pattern; FNV-1a 64 of one 0/1 byte per OHWI entry) of a layer the build compiled, every non-zero
entry is one the kernel reads, and stride, padding, dilation 1 and fused activation (NONE or
RELU) match; every other node stays with the stock runtime (XNNPACK is applied after user
delegates, so it takes the rest). Block-pruned 1×1 CONV_2D and FULLY_CONNECTED nodes are
matched the same way against the build's pointwise layers
(:mod:`cocotune.cocogen.pointwise_compile`) and run NHWC kernels with no layout conversion.
Each claimed node is its own partition. The kernel's weights
are gathered from the node's own filter when the node is initialised: the converter folds
BatchNorm (and a Caffe Scale) into the filter and bias, which changes the values but not the
support, and the kernel computes exactly what the converted model stores.

ABI: the TensorFlow wheel ships no TFLite headers and exports no ``TfLite*`` symbols, so the
delegate is plain C against our own declarations (``codegen_templates/c/tflite_abi.h.j2``,
layouts pinned with ``_Static_assert``). At each delegate Prepare it self-checks the live
runtime's layout and claims nothing on a mismatch; :func:`load` passes ``runtime=`` so that a
runtime outside :data:`ACCEPTED_RUNTIMES` is refused at load time with a message.
"""

from __future__ import annotations

import ctypes
import struct
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cocotune.cocogen.errors import CocogenError

if TYPE_CHECKING:  # annotation only: the ctypes runtime is imported where it is used
    from cocotune.cocogen.runtime import KernelData

__all__ = [
    "DELEGATE_LIB",
    "WEIGHTS_FILE",
    "TFLITE_FILE",
    "ACCEPTED_RUNTIMES",
    "STAT_NAMES",
    "runtime_tag",
    "load",
    "stats",
    "fnv1a64",
    "support_fnv1a64",
    "gather_index",
    "write_weights",
]

DELEGATE_LIB = "libcocogen_delegate.so"
WEIGHTS_FILE = "cocogen_weights.bin"
TFLITE_FILE = "model.tflite"
WEIGHTS_MAGIC = b"CGDELW02"
# Runtimes (name-version prefixes) whose TFLite structs were checked against tflite_abi.h.
ACCEPTED_RUNTIMES = ("tensorflow-2.21.", "ai-edge-litert-2.3.")
# Order of the counters cocogen_delegate_stats() fills (COCOGEN_STAT_* in delegate.c.j2).
STAT_NAMES = (
    "prepares",
    "claimed",
    "claimed_total",
    "refused",
    "abi_failures",
    "kernel_inits",
    "kernel_frees",
    "kernel_prepares",
    "invokes",
    "images",
)


def fnv1a64(data: bytes, lib: ctypes.CDLL | None = None) -> int:
    """FNV-1a 64 of ``data`` (through ``lib.cocogen_fnv1a64`` when given: fast for big filters)."""
    if lib is not None:
        fn = lib.cocogen_fnv1a64
        fn.restype = ctypes.c_uint64
        fn.argtypes = [ctypes.c_char_p, ctypes.c_uint64]
        return int(fn(data, len(data)))
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def filter_ohwi_bytes(kernel_hwio: np.ndarray) -> bytes:
    """A Keras 3×3 kernel (HWIO) as TFLite stores CONV_2D filters: OHWI float32 bytes."""
    return np.ascontiguousarray(np.asarray(kernel_hwio, np.float32).transpose(3, 0, 1, 2)).tobytes()


def support_fnv1a64(kernel_hwio: np.ndarray, lib: ctypes.CDLL | None = None) -> int:
    """FNV-1a 64 of a Keras 3×3 kernel's support as the delegate hashes a TFLite filter: one byte
    per OHWI entry, 1 where the value is non-zero."""
    ohwi = np.asarray(kernel_hwio, np.float32).transpose(3, 0, 1, 2)
    return fnv1a64(np.ascontiguousarray(ohwi != 0).astype(np.uint8).tobytes(), lib)


def gather_index(spec, kernel_hwio: np.ndarray, library) -> tuple[np.ndarray, KernelData]:
    """Where each weight of ``spec``'s kernel comes from in the TFLite filter.

    Runs the kernel's weight layout (:func:`cocotune.cocogen.runtime.kernel_data`) on a kernel
    holding ``1 + OHWI index`` at every non-zero entry (0 elsewhere): same support, so the same
    layout; the float32 values read back are the indices. Returns ``(gather, data)``: int32
    ``gather`` (-1 where the kernel reads a zero it stores), and the layout's
    :class:`~cocotune.cocogen.runtime.KernelData` (its ``koff``, ``g``, ``reorder`` go with
    ``gather``).

    Raises:
        CocogenError: the filter has 2^24 entries or more (indices would not be exact in
            float32), or the layout does not read every non-zero entry exactly once.
    """
    from cocotune.cocogen.fkw import encode
    from cocotune.cocogen.runtime import kernel_data

    k = np.asarray(kernel_hwio, np.float32)
    n = k.size
    if n >= 1 << 24:
        raise CocogenError(f"a 3x3 filter of {n} entries is too large for the delegate (< 2^24)")
    ohwi_index = np.arange(1, n + 1, dtype=np.float32).reshape(
        k.shape[3], k.shape[0], k.shape[1], k.shape[2]
    )
    idx = np.where(k != 0, ohwi_index.transpose(1, 2, 3, 0), np.float32(0))
    data = kernel_data(
        spec, idx, None, encode(idx, None, library) if spec.kind == "pattern" else None
    )
    gather = np.rint(data.w).astype(np.int64) - 1
    used = gather[gather >= 0]
    want = np.flatnonzero(k.transpose(3, 0, 1, 2).reshape(-1) != 0)
    if len(np.unique(used)) != len(used) or not np.array_equal(np.sort(used), want):
        raise CocogenError(
            "the kernel layout does not read each non-zero filter entry exactly once"
        )
    return gather.astype(np.int32), data


def write_weights(path: str | Path, layers: list[dict]) -> None:
    """Write ``cocogen_weights.bin``: per layer (descriptor order) its support hash and the
    kernel's ``gather`` (see :func:`gather_index`), ``koff``, ``g``, ``reorder`` arrays
    (``layers``: dicts with ``hash``, ``gather`` and ``data``, a
    :class:`cocotune.cocogen.runtime.KernelData`)."""
    with open(path, "wb") as f:
        f.write(WEIGHTS_MAGIC + struct.pack("<II", len(layers), 0))
        for r in layers:
            d = r["data"]
            arrays = [
                np.ascontiguousarray(r["gather"], "<i4"),
                np.ascontiguousarray(d.koff, "<i4"),
                np.ascontiguousarray(d.g, "<i4"),
                np.ascontiguousarray(d.reorder, "<i4"),
            ]
            f.write(struct.pack("<Q4q", int(r["hash"]), *[a.size for a in arrays]))
            for a in arrays:
                f.write(a.tobytes())


def runtime_tag(runtime: str = "tensorflow") -> str:
    """``name-version`` of the runtime that will load the delegate, e.g. ``tensorflow-2.21.0``."""
    if runtime == "tensorflow":
        import tensorflow as tf

        return f"tensorflow-{tf.__version__}"
    if runtime == "ai_edge_litert":
        from importlib.metadata import version

        return f"ai-edge-litert-{version('ai-edge-litert')}"
    raise ValueError(f"runtime must be 'tensorflow' or 'ai_edge_litert', got {runtime!r}")


def _library_path(build_dir: str | Path) -> Path:
    p = Path(build_dir) / DELEGATE_LIB
    if not p.is_file():
        raise CocogenError(
            f"'{build_dir}' has no {DELEGATE_LIB} (run 'cocotune cocogen compile' again)"
        )
    return p.resolve()


def load(build_dir: str | Path, runtime: str = "tensorflow", **options):
    """``load_delegate`` of the build's delegate library, with ``model_dir`` (the build directory)
    and ``runtime`` (this process's runtime, checked by the library against its accepted list)
    filled in. Other options: ``verbose`` (0/1), ``num_threads`` (0: the interpreter's).

    Returns the runtime's delegate object (pass it in ``experimental_delegates``).

    Raises:
        ValueError: the library refused an option or the runtime (the message says why).
        CocogenError: the build directory has no delegate library.
    """
    path = _library_path(build_dir)
    opts = {"model_dir": str(Path(build_dir).resolve()), "runtime": runtime_tag(runtime)}
    opts.update({k: v for k, v in options.items() if v is not None})
    if runtime == "ai_edge_litert":
        from ai_edge_litert.interpreter import load_delegate
    else:
        import tensorflow as tf

        load_delegate = tf.lite.experimental.load_delegate
    return load_delegate(str(path), {k: str(v) for k, v in opts.items()})


def _native(delegate) -> int | None:
    if delegate is None:
        return None
    getter = getattr(delegate, "_get_native_delegate_pointer", None)
    return int(getter()) if getter else int(delegate)


def stats(build_dir: str | Path, delegate=None) -> dict:
    """The delegate's counters: ``prepares``, ``claimed`` (nodes claimed by its last Prepare),
    ``claimed_total``, ``refused`` (CONV_2D and FULLY_CONNECTED nodes left to the stock
    runtime), ``abi_failures``,
    ``kernel_inits`` / ``frees`` / ``prepares``, ``invokes``, ``images``, ``layers`` (invocations
    per compiled layer), ``layer_seconds`` (wall time inside each layer's invocations) and
    ``last_error``. ``delegate=None``: totals over every delegate of
    the library in this process."""
    lib = ctypes.CDLL(str(_library_path(build_dir)))
    fn = lib.cocogen_delegate_stats
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int64), ctypes.c_int]
    ptr = _native(delegate)
    n = fn(ptr, None, 0)
    buf = (ctypes.c_int64 * n)()
    fn(ptr, buf, n)
    names = lib.cocogen_delegate_layer_name
    names.restype = ctypes.c_char_p
    names.argtypes = [ctypes.c_int]
    out = dict(zip(STAT_NAMES, buf[: len(STAT_NAMES)]))
    out["layers"] = {
        names(i).decode(): buf[len(STAT_NAMES) + i] for i in range(n - len(STAT_NAMES))
    }
    tfn = lib.cocogen_delegate_layer_ns
    tfn.restype = ctypes.c_int
    tfn.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int64), ctypes.c_int]
    nl = tfn(ptr, None, 0)
    tbuf = (ctypes.c_int64 * nl)()
    tfn(ptr, tbuf, nl)
    out["layer_seconds"] = {names(i).decode(): tbuf[i] * 1e-9 for i in range(nl)}
    err = lib.cocogen_delegate_last_error
    err.restype = ctypes.c_char_p
    err.argtypes = [ctypes.c_void_p]
    out["last_error"] = err(ptr).decode() if ptr else ""
    return out
