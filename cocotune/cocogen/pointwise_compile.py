"""``cocogen compile`` for pruned 1×1 convolutions and fully connected layers: which layers get a
generated pointwise kernel (read from their zeros), of which kind, and the delegate's artefacts.

A ``Conv2D`` with a 1×1 kernel (equal strides 1 or 2, no dilation, one group, channels_last,
static input shape) or a ``Dense`` layer (2-D kernel) qualifies when its activation is linear or
ReLU and its kernel is pruned. Kind, per layer: ``block`` when it is block-pruned
(:func:`cocotune.cocogen.pointwise.infer_blocks`: at most half of its (input channel × 16
filters) blocks non-zero); else ``csr`` (:mod:`cocotune.cocogen.sparse_pointwise`, pruned weight
by weight, e.g. by magnitude) when at most ``CSR_MAX_DENSITY`` (half) of its weights are
non-zero; a denser one stays with the stock runtime, listed in ``build.json`` with the reason.

ReLU: the converter fuses a ReLU that follows a convolution, directly or through a BatchNorm it
folds, into the CONV_2D / FULLY_CONNECTED node. A linear layer whose only consumer is a plain
ReLU (or a BatchNorm whose only consumer is one) gets a kernel with ReLU fused in its store; the
delegate refuses such a kernel for a node without RELU, and applies ReLU after a kernel without
it when the node has one, so a wrong guess costs speed, never correctness.

Delegate artefacts (see ``codegen_templates/c/delegate_pointwise.c.j2``): the descriptor table
``delegate_pw_table.c``, the header ``cocogen_delegate_pw.h`` and ``cocogen_pw_weights.bin``
(per layer: support hash, ``gather`` = the [Cout][Cin] filter index of each kernel weight, and
the PWB ``idx``, ``g``, ``reorder`` arrays; for the CSR kind ``idx`` = each non-zero's input
channel, ``g`` = the row pointers, ``reorder`` = identity: the same file format). TFLite stores a 1×1 CONV_2D filter as
``[Cout][1][1][Cin]`` and a FULLY_CONNECTED one as ``[Cout][Cin]``: the same bytes, the
transpose of our ``(Cin, Cout)`` matrix.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cocotune.cocogen.emit_c import environment
from cocotune.cocogen.emit_pointwise import PointwiseSpec, pointwise_context
from cocotune.cocogen.errors import CocogenError
from cocotune.cocogen.model import _input_shape, keras_activation
from cocotune.cocogen.pointwise import infer_blocks, matrix_of
from cocotune.cocogen.pointwise_runtime import PointwiseData, pointwise_data, spec_for
from cocotune.cocogen.pointwise_storage import PWBLayer, encode_pointwise
from cocotune.cocogen.sparse_pointwise import (
    CsrSpec,
    csr_context,
    csr_spec,
    density_reason,
    spec_data,
)

__all__ = [
    "PointwiseVerdict",
    "analyse_pointwise",
    "pointwise_spec",
    "support_fnv1a64",
    "gather_index",
    "delegate_row",
    "write_weights",
    "render_table",
    "render_sources",
    "csr_report",
    "headers",
    "PW_WEIGHTS_FILE",
]

PW_WEIGHTS_FILE = "cocogen_pw_weights.bin"
PW_WEIGHTS_MAGIC = b"CGPWW001"
HEADERS = ("cocogen_delegate_pw.h",)


@dataclass
class PointwiseVerdict:
    """Whether one 1×1 Conv2D / Dense layer gets a generated kernel, and if not why."""

    name: str
    type: str
    qualifies: bool
    reason: str = ""
    fc: bool = False
    input_shape: tuple[int, int, int] = (1, 1, 1)  # (h, w, c); (1, 1, cin) for fc
    stride: int = 1
    relu: bool = False
    kernel: np.ndarray | None = None  # Keras layout
    bias: np.ndarray | None = None
    kept: np.ndarray | None = None  # (n_groups, Cin) kept blocks (block kind)
    kind: str = "block"  # "block" (PWB kernel) or "csr" (unstructured sparse kernel)

    @property
    def qualified_kernel(self) -> np.ndarray:
        """The Keras kernel of a qualifying verdict (only those carry one).

        Raises:
            ValueError: the layer does not qualify, so there is no kernel to generate from.
        """
        if self.kernel is None:
            raise ValueError(f"{self.name} gets no generated kernel: {self.reason}")
        return self.kernel

    @property
    def matrix(self) -> np.ndarray:
        return matrix_of(self.qualified_kernel)


def _plain_relu(layer) -> bool:
    t = type(layer).__name__
    if t == "ReLU":
        c = layer.get_config()
        return c.get("max_value") is None and not c.get("negative_slope") and not c.get("threshold")
    return t == "Activation" and keras_activation(layer) == "relu"


def _consumers(model) -> dict[str, list]:
    """Layer name -> the layers (and ``None`` for a model output) that take its output."""
    import keras

    out: dict[str, list] = {}
    for layer in model.layers:
        try:
            inputs = keras.tree.flatten(layer.input)
        except (AttributeError, ValueError, RuntimeError, TypeError):
            continue
        for t in inputs:
            hist = getattr(t, "_keras_history", None)
            if hist:
                out.setdefault(hist[0].name, []).append(layer)
    for t in keras.tree.flatten(model.outputs):
        hist = getattr(t, "_keras_history", None)
        if hist:
            out.setdefault(hist[0].name, []).append(None)
    return out


def _relu_follows(layer, consumers: dict[str, list]) -> bool:
    """``layer``'s only consumer is a plain ReLU, or a BatchNorm whose only consumer is one."""
    c = consumers.get(layer.name, [])
    if len(c) != 1 or c[0] is None:
        return False
    if type(c[0]).__name__ == "BatchNormalization":
        c = consumers.get(c[0].name, [])
        if len(c) != 1 or c[0] is None:
            return False
    return _plain_relu(c[0])


def _analyse(layer, consumers) -> PointwiseVerdict | None:
    import keras

    tname = type(layer).__name__
    if tname == "Conv2D" and isinstance(layer, keras.layers.Conv2D):
        if tuple(layer.kernel_size) != (1, 1):
            return None
        v = PointwiseVerdict(layer.name, tname, False)
        st = tuple(layer.strides)
        if st[0] != st[1] or st[0] not in (1, 2):
            v.reason = f"strides {st}; only (1, 1) and (2, 2) are generated"
            return v
        if tuple(layer.dilation_rate) != (1, 1) or getattr(layer, "groups", 1) != 1:
            v.reason = "dilated or grouped 1x1 convolution"
            return v
        if layer.data_format != "channels_last":
            v.reason = f"data_format {layer.data_format}"
            return v
        shape = _input_shape(layer)
        if shape is None or len(shape) != 4 or any(d is None for d in shape[1:]):
            v.reason = f"input shape {shape} is not static"
            return v
        h, w, c = (int(d) for d in shape[1:])
        v.input_shape = (h, w, c)
        v.stride = st[0]
    elif tname == "Dense" and isinstance(layer, keras.layers.Dense):
        v = PointwiseVerdict(layer.name, tname, False, fc=True)
    else:
        return None
    act = keras_activation(layer)
    if act not in ("linear", "relu"):
        v.reason = f"activation {act!r} (only linear and relu are fused)"
        return v
    weights = layer.get_weights()
    kernel = np.asarray(weights[0], dtype=np.float32)
    if kernel.ndim not in (2, 4):
        v.reason = f"kernel shape {kernel.shape}"
        return v
    kept, why = infer_blocks(kernel)
    if kept is None:
        dense_why = density_reason(kernel)
        if dense_why:
            v.reason = f"{why}; {dense_why}" if "not block-pruned" in why else why
            return v
        v.kind = "csr"
    if kernel.size >= 1 << 24:
        v.reason = f"a filter of {kernel.size} entries is too large for the delegate (< 2^24)"
        return v
    cin = kernel.shape[-2]
    if v.fc:
        v.input_shape = (1, 1, cin)
    v.qualifies = True
    v.relu = act == "relu" or (act == "linear" and _relu_follows(layer, consumers))
    v.kernel = kernel
    v.bias = np.asarray(weights[1], dtype=np.float32) if layer.use_bias else None
    v.kept = kept
    return v


def analyse_pointwise(model) -> dict[str, PointwiseVerdict]:
    """A verdict for every 1×1 Conv2D and Dense layer of ``model`` (layer name -> verdict)."""
    consumers = _consumers(model)
    out = {}
    for layer in model.layers:
        v = _analyse(layer, consumers)
        if v is not None:
            out[layer.name] = v
    return out


def pointwise_spec(v: PointwiseVerdict, index: int, native: bool = True) -> PointwiseSpec | CsrSpec:
    """The kernel spec (default tile) of a qualifying verdict, of its kind."""
    h, w, cin = v.input_shape
    if v.kind == "csr":
        cout = v.qualified_kernel.shape[-1]
        return csr_spec(cin, cout, h, w, v.stride, v.relu, v.fc, index, native)
    return spec_for(
        encode_pointwise(v.qualified_kernel, v.bias),
        h=h,
        w=w,
        stride=v.stride,
        relu=v.relu,
        fc=v.fc,
        index=index,
        native=native,
    )


def render_sources(specs: list, source: str | None = None) -> dict[str, str]:
    """File name -> C text of the pointwise kernels of both kinds."""
    from cocotune.cocogen.emit_pointwise import render_pointwise_library
    from cocotune.cocogen.sparse_pointwise import render_csr_library

    files = render_pointwise_library([s for s in specs if not isinstance(s, CsrSpec)], source)
    files.update(render_csr_library([s for s in specs if isinstance(s, CsrSpec)], source))
    return files


def csr_report(v: PointwiseVerdict, spec: CsrSpec) -> dict:
    """The ``build.json`` fields of a layer with a CSR kernel (no weights file of its own: the
    delegate gathers the non-zeros from the node's filter)."""
    from cocotune.cocogen.fkw import csr_nbytes

    m = v.matrix
    nnz = int(np.count_nonzero(m))
    return {
        "runtime": "cocogen",
        "kind": "csr_fc" if v.fc else "csr_pointwise",
        "kernel": spec.name,
        "spec": spec.to_json(),
        "fused_relu": v.relu,
        "nnz": nnz,
        "density": nnz / max(1, m.size),
        "csr_bytes": csr_nbytes(spec.cout, nnz),
        "macs_dense": spec.macs_dense,
        "macs_pruned": nnz * spec.n_pixels,
    }


def support_fnv1a64(matrix: np.ndarray, lib=None) -> int:
    """FNV-1a 64 of a ``(Cin, Cout)`` matrix's support as the delegate hashes the TFLite filter
    (``[Cout][Cin]``, one 0/1 byte per entry)."""
    from cocotune.cocogen.delegate import fnv1a64

    sup = np.ascontiguousarray(np.asarray(matrix).T != 0).astype(np.uint8)
    return fnv1a64(sup.tobytes(), lib)


def gather_index(spec: PointwiseSpec, matrix: np.ndarray) -> tuple[np.ndarray, PointwiseData]:
    """Where each weight of ``spec``'s kernel comes from in the TFLite filter (``[Cout][Cin]``
    flat index; -1 for the zero lanes of a last group narrower than the block).

    Runs the PWB layout on a matrix holding ``1 + index`` at every non-zero entry: same support,
    so the same blocks and order; the float32 values read back are the indices. Returns
    ``(gather, data)`` with data the :class:`~cocotune.cocogen.pointwise_runtime.PointwiseData`
    (its ``idx``, ``g``, ``reorder`` go with ``gather``).

    Raises:
        CocogenError: the filter has 2^24 entries or more, or the layout does not read every
            non-zero entry exactly once.
    """
    m = np.asarray(matrix, np.float32)
    cin, cout = m.shape
    if m.size >= 1 << 24:
        raise CocogenError(f"a {cin}x{cout} filter is too large for the delegate (< 2^24)")
    flat = np.arange(1, m.size + 1, dtype=np.float32).reshape(cout, cin).T  # (Cin, Cout)
    idx = np.where(m != 0, flat, np.float32(0))
    layer: PWBLayer = encode_pointwise(idx, None, spec.group)
    data = pointwise_data(spec, layer)
    n_w = layer.weights.size
    gather = np.rint(data.w[:n_w]).astype(np.int64) - 1
    used = gather[gather >= 0]
    want = np.flatnonzero(m.T.reshape(-1) != 0)
    if len(np.unique(used)) != len(used) or not np.array_equal(np.sort(used), want):
        raise CocogenError("the pointwise layout does not read each non-zero entry exactly once")
    return gather.astype(np.int32), data


def delegate_row(v: PointwiseVerdict, spec: PointwiseSpec | CsrSpec, lib=None) -> dict:
    """Everything the descriptor table and the weights file need for one layer."""
    m = v.matrix
    if isinstance(spec, CsrSpec):
        if m.size >= 1 << 24:
            raise CocogenError(f"a {m.shape[0]}x{m.shape[1]} filter is too large for the delegate")
        csr = spec_data(spec, m)
        return {
            "spec": spec,
            "kind": 1,
            "n_cb": spec.n_blocks,
            "layer": v.name,
            "hash": support_fnv1a64(m, lib),
            "nnz": int(np.count_nonzero(m)),
            "gather": csr.gather,
            "data": csr,
            "n_w": int(csr.gather.size),
            "n_idx": int(csr.idx.size),
            "n_g": int(csr.g.size),
            "n_reorder": int(csr.reorder.size),
        }
    gather, data = gather_index(spec, m)
    return {
        "spec": spec,
        "layer": v.name,
        "hash": support_fnv1a64(m, lib),
        "nnz": int(np.count_nonzero(m)),
        "gather": gather,
        "data": data,
        "n_w": int(gather.size),
        "n_idx": int(data.idx.size),
        "n_g": int(data.g.size),
        "n_reorder": int(data.reorder.size),
        "kind": 0,
        "n_cb": 0,
    }


def write_weights(path: str | Path, rows: list[dict]) -> None:
    """``cocogen_pw_weights.bin``: magic, u32 layer count, u32 0, then per layer (descriptor
    order) u64 support hash, i64 lengths of gather / idx / g / reorder and the int32 arrays."""
    with open(path, "wb") as f:
        f.write(PW_WEIGHTS_MAGIC + struct.pack("<II", len(rows), 0))
        for r in rows:
            d = r["data"]
            arrays = [np.ascontiguousarray(a, "<i4") for a in (r["gather"], d.idx, d.g, d.reorder)]
            f.write(struct.pack("<Q4q", int(r["hash"]), *[a.size for a in arrays]))
            for a in arrays:
                f.write(a.tobytes())


def _c_text(name: str) -> str:
    """``name`` safe inside a C string literal and a C comment (printable ASCII, escaped)."""
    out = []
    for ch in name:
        if ch in '"\\':
            out.append("\\" + ch)
        elif " " <= ch <= "~" and ch not in "*/?":
            out.append(ch)
        else:
            out.append("".join(f"\\{b:03o}" for b in ch.encode("utf-8")))
    return "".join(out)


def render_table(rows: list[dict]) -> dict[str, str]:
    """``delegate_pw_table.c`` for the delegate's pointwise layers (possibly none)."""
    ctx = [
        {
            "k": (
                csr_context(r["spec"])
                if isinstance(r["spec"], CsrSpec)
                else pointwise_context(r["spec"])
            ),
            "kind": int(r["kind"]),
            "n_cb": int(r["n_cb"]),
            "layer": _c_text(r["layer"]),
            "hash": int(r["hash"]),
            "nnz": int(r["nnz"]),
            "n_w": int(r["n_w"]),
            "n_idx": int(r["n_idx"]),
            "n_g": int(r["n_g"]),
            "n_reorder": int(r["n_reorder"]),
        }
        for r in rows
    ]
    text = environment().get_template("delegate_pw_table.c.j2").render(layers=ctx)
    return {"delegate_pw_table.c": text}


def headers() -> dict[str, str]:
    """The pointwise part's static header(s), name -> text."""
    env = environment()
    return {n: env.get_template(n + ".j2").render() for n in HEADERS}
