"""Render the C sources of a kernel library from :class:`KernelSpec` s with Jinja2.

Templates receive a prepared context (:func:`kernel_context`): every bound, offset and pattern
tap is worked out here, so the templates only loop and branch over constants. Each kernel goes
into its own ``.c`` file (gcc compiles them in parallel); ``kernel_table.c`` enumerates them.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import jinja2

from cocotune.cocogen.kernel_spec import KernelSpec, filter_block_bounds
from cocotune.cocogen.patterns import PatternLibrary

__all__ = [
    "templates_dir",
    "environment",
    "kernel_context",
    "render_kernel",
    "render_table",
    "render_library",
    "render_delegate",
    "delegate_headers",
    "file_header",
    "one_file_per_kernel",
]


def templates_dir() -> Path:
    """The C templates directory (``codegen_templates/c``, installed as package data)."""
    from cocotune.resources import templates_dir as root

    return Path(str(root())) / "c"


@cache
def environment() -> jinja2.Environment:
    from cocotune.convert.render import make_environment

    return make_environment(templates_dir())


def _version() -> str:
    from cocotune import __version__

    return __version__


def _valid_range(n_out: int, n_in: int, stride: int, shift: int) -> tuple[int, int]:
    """Output positions x in [lo, hi) with 0 <= stride*x + shift < n_in, clamped to [0, n_out]."""
    lo = max(0, -(-(-shift) // stride)) if shift < 0 else 0
    hi = min(n_out, (n_in - 1 - shift) // stride + 1) if n_in - 1 - shift >= 0 else 0
    return lo, max(lo, hi)


def kernel_context(spec: KernelSpec) -> dict:
    """Everything ``conv3x3_pattern.c.j2`` needs, as plain values."""
    t = spec.tile
    row = t.mode == "row"
    s = spec.stride
    if row:
        # (destination offset in the padded row, length, shift): row[off + x] = in[s*x + shift]
        if not spec.single_copy:
            segs = [(dx * spec.wv, spec.wv, dx - spec.pad_left) for dx in range(3)]
        elif s == 1:
            segs = [(0, spec.row_len, -spec.pad_left)]
        else:  # even padded columns, then odd ones
            hr_ = spec.half_row
            segs = [(0, hr_, -spec.pad_left), (hr_, hr_, 1 - spec.pad_left)]
        copies = []
        for dx, (off, n, shift) in enumerate(segs):
            lo, hi = _valid_range(n, spec.w, s, shift)
            copies.append({"dx": dx, "off": off, "n": n, "shift": shift, "lo": lo, "hi": hi})
    else:
        copies = []
        for dy in range(3):
            for dx in range(3):
                shift = dx - spec.pad_left
                lo, hi = _valid_range(spec.wo, spec.w, s, shift)
                copies.append(
                    {
                        "dy": dy,
                        "dx": dx,
                        "shift": shift,
                        "lo": lo,
                        "hi": hi,
                        "plane": (dy * 3 + dx) * spec.pv,
                    }
                )
    lib = PatternLibrary.dense() if spec.kind == "dense" else spec.library
    patterns = []
    if spec.kind != "csr":
        for pid, taps in enumerate(lib.patterns):
            patterns.append(
                {
                    "id": pid,
                    "taps_str": "{" + ",".join(map(str, taps)) + "}",
                    "taps": [
                        {"tap": tp, "off": spec.tap_offset(tp // 3, tp % 3), "set": i % t.acc}
                        for i, tp in enumerate(taps)
                    ],
                }
            )
    nv = spec.nv
    tv = min(t.tv, nv)
    tr = min(t.tr, spec.ho) if row else 1
    n_full_rows, tail_rows = (spec.ho // tr, spec.ho % tr) if row else (1, 0)
    n_full_x, tail_v = nv // tv, nv % tv
    zero_rows = []  # flat mode: (dy, y) output rows whose input row is padding
    if not row:
        for dy in range(3):
            for y in range(spec.ho):
                iy = s * y + dy - spec.pad_top
                if iy < 0 or iy >= spec.h:
                    zero_rows.append({"dy": dy, "y": y})
    tiles = []
    for r in [tr] + ([tail_rows] if tail_rows else []):
        for v in ([tv] if n_full_x else []) + ([tail_v] if tail_v else []):
            tiles.append({"tr": r, "tv": v})
    return {
        "name": spec.name,
        "prefix": spec.name.upper(),
        "kind": spec.kind,
        "cin": spec.cin,
        "h": spec.h,
        "w": spec.w,
        "cout": spec.cout,
        "ho": spec.ho,
        "wo": spec.wo,
        "stride": s,
        "padding": spec.padding,
        "pad_top": spec.pad_top,
        "pad_left": spec.pad_left,
        "relu": spec.relu,
        "mode": t.mode,
        "tr": tr,
        "tv": tv,
        "acc": t.acc if spec.kind != "csr" else 1,
        "ku": t.ku if spec.kind != "csr" else 1,
        "fb": t.fb,
        "fb_bounds": [int(x) for x in filter_block_bounds(spec.cout, t.fb)],
        "n_chunks": spec.n_chunks,
        "srow": spec.scratch_row,
        "ngx": spec.wv // (spec.vw * t.tv) if row else 1,  # chunks per row (is, row mode)
        "order": t.order if (row or t.order == "is") else "fy",
        "hr": spec.hr,
        "wv": spec.wv,
        "pv": spec.pv,
        "channel_stride": spec.channel_stride,
        "row_len": spec.row_len if row else 0,
        "tapload": (
            ("CG_LOADU16" if spec.vw == 16 else "CG_LOADU")
            if spec.single_copy
            else ("CG_LOAD16" if spec.vw == 16 else "CG_LOAD")
        ),
        "workspace_floats": spec.workspace_floats,
        "copies": copies,
        "patterns": patterns,
        "taps": lib.taps,
        "tiles": tiles,
        "row_step": spec.row_step if row else 0,
        "out_row": spec.wo if row else 0,
        "xlen": spec.wo if row else spec.ho * spec.wo,
        "n_full_rows": n_full_rows,
        "tail_rows": tail_rows,
        "n_row_tiles": n_full_rows + (1 if tail_rows else 0),
        # NHWC entry point: output pixels per filter in a thread's staging tile (a row tile, or
        # the whole plane in flat mode), padded input rows the prep loop visits, zero rows
        "tp": tr * spec.wo if row else spec.ho * spec.wo,
        "prep_items": spec.hr if row else spec.h + 1,
        "zero_rows": zero_rows,
        "n_full_x": n_full_x,
        "tail_v": tail_v,
        "gstride": 1 if spec.kind == "csr" else len(lib) + 1,
        **_vector_names(spec.vw),
    }


def _vector_names(vw: int) -> dict:
    """The C vector type and helpers of a vector width (``file_header.c.j2`` defines both)."""
    if vw == 16:
        return {
            "vw": 16,
            "vt": "cg_v16f",
            "load": "CG_LOAD16",
            "bcast": "cg_bcast16",
            "relu_fn": "cg_relu16",
            "store": "cg_store16",
        }
    return {
        "vw": 8,
        "vt": "cg_v8f",
        "load": "CG_LOAD",
        "bcast": "cg_bcast",
        "relu_fn": "cg_relu",
        "store": "cg_store",
    }


def file_header(template: str, source: str | None, generator: str = __name__) -> str:
    """The header every generated C file starts with: where it comes from (template, generator
    module, source model) and the shared vector types and helpers."""
    return (
        environment()
        .get_template("file_header.c.j2")
        .render(template=template, version=_version(), source=source, generator=generator)
    )


def one_file_per_kernel(specs: list, render) -> dict[str, str]:
    """``{name}.c`` -> ``render(spec)`` for kernels whose names must be unique (a library's
    table and the delegate find kernels by name).

    Raises:
        ValueError: two specs share a name.
    """
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"duplicate kernel names: {dup}")
    return {f"{s.name}.c": render(s) for s in specs}


def render_kernel(spec: KernelSpec, source: str | None = None) -> str:
    """The C source of one kernel (with the file header)."""
    name = "conv3x3_is.c.j2" if spec.tile.order == "is" else "conv3x3_pattern.c.j2"
    body = environment().get_template(name).render(k=kernel_context(spec))
    return file_header(name, source) + "\n" + body


def render_table(specs: list[KernelSpec], source: str | None = None) -> str:
    """The enumerator file (one row per kernel) plus the small runtime helpers."""
    rows = [kernel_context(s) for s in specs]
    body = environment().get_template("kernel_table.c.j2").render(kernels=rows)
    return file_header("kernel_table.c.j2", source) + "\n" + body


def render_library(specs: list[KernelSpec], source: str | None = None) -> dict[str, str]:
    """File name -> C text for a whole library: one file per kernel plus ``kernel_table.c``."""
    files = one_file_per_kernel(specs, lambda s: render_kernel(s, source))
    files["kernel_table.c"] = render_table(specs, source)
    return files


DELEGATE_HEADERS = ("tflite_abi.h", "cocogen_delegate.h")


def delegate_headers() -> dict[str, str]:
    """The static headers of the TFLite delegate (our minimal TFLite ABI declarations and the
    interfaces between the delegate's layers), name -> text."""
    env = environment()
    return {n: env.get_template(n + ".j2").render() for n in DELEGATE_HEADERS}


def render_delegate(
    layers: list[dict], build_id: str, accepted_runtimes: tuple[str, ...]
) -> dict[str, str]:
    """The C sources of the TFLite external delegate around already generated kernels.

    ``layers``: one dict per compiled layer with ``spec`` (its :class:`KernelSpec`), ``layer``
    (the Keras name), ``hash`` (FNV-1a 64 of the OHWI filter's support), ``nnz`` (its non-zero
    entries) and ``n_w``, ``n_koff``, ``n_g``, ``n_reorder`` (lengths of its arrays, in
    ``cocogen_weights.bin``).
    Returns ``delegate_table.c`` (descriptors), ``delegate.c`` (ABI shim) and
    ``delegate_plugin.c`` (entry points); the headers come from :func:`delegate_headers`.
    """
    env = environment()
    rows = []
    for r in layers:
        spec = r["spec"]
        rows.append(
            {
                "k": kernel_context(spec),
                "layer": r["layer"],
                "padding_code": 1 if spec.padding == "same" else 2,
                "hash": int(r["hash"]),
                "nnz": int(r["nnz"]),
                "n_w": int(r["n_w"]),
                "n_koff": int(r["n_koff"]),
                "n_g": int(r["n_g"]),
                "n_reorder": int(r["n_reorder"]),
            }
        )
    v = _version()
    return {
        "delegate_table.c": env.get_template("delegate_table.c.j2").render(
            layers=rows, build_id=build_id
        ),
        "delegate.c": env.get_template("delegate.c.j2").render(version=v),
        "delegate_plugin.c": env.get_template("delegate_plugin.c.j2").render(
            version=v, accepted_runtimes=list(accepted_runtimes)
        ),
    }
