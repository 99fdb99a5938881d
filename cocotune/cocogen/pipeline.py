"""``cocogen compile``: a Keras model -> FKW weights, C sources, a kernel library, a report.

Build directory::

    build/
      build.json              the report: every layer, qualifying or not (and why), kernel names,
                              tiles, FKW and CSR bytes, autotuning times
      model.keras             a copy of the compiled model (the stock runtime runs the rest)
      <layer>.fkw             FKW weights of each qualifying 3x3 layer
      <layer>.pwb             PWB weights of each qualifying block-pruned 1x1 / Dense layer
      src/*.c                 generated sources (one file per kernel, kernel_table.c)
      libcocogen_model.so     the kernels, callable through ctypes (cocotune.cocogen.runtime)
      model.tflite            the model converted for stock TensorFlow Lite (float32, batch 1:
                              every tensor static; BatchNorm folded by the converter)
      libcocogen_delegate.so  the same kernels as a TFLite external delegate
                              (cocotune.cocogen.delegate), with cocogen_weights.bin (3x3) and
                              cocogen_pw_weights.bin (1x1 / fully connected)

Pruned 1×1 convolutions and Dense layers (:mod:`cocotune.cocogen.pointwise_compile`) get NHWC
pointwise kernels that only the delegate runs (``kind`` "pointwise" / "fc" in ``build.json`` for
block-pruned ones, "csr_pointwise" / "csr_fc" for ones pruned weight by weight; the ctypes
:class:`Build` runs those layers with Keras).
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cocotune.cocogen import depthwise_compile as dwc
from cocotune.cocogen import pointwise_compile as pwc
from cocotune.cocogen.build import (
    compile_objects,
    isa_tag,
    link_library,
    native_flags,
    portable_flags,
)
from cocotune.cocogen.emit_c import delegate_headers, render_delegate, render_library
from cocotune.cocogen.errors import CocogenError, NoQualifyingLayerError
from cocotune.cocogen.fkw import encode, read_fkw, write_fkw
from cocotune.cocogen.kernel_spec import KernelSpec, default_tile
from cocotune.cocogen.model import LayerVerdict, analyse_model, is_chain
from cocotune.cocogen.patterns import PatternLibrary
from cocotune.cocogen.pointwise_storage import encode_pointwise, write_pwb
from cocotune.cocogen.runtime import (
    KernelLibrary,
    aligned_empty,
    chw_to_nhwc,
    kernel_data,
    nhwc_to_chw,
)

__all__ = [
    "compile_model",
    "load_model",
    "Build",
    "load_build",
    "is_pattern_row",
    "LIB_NAME",
    "REPORT",
]

LIB_NAME = "libcocogen_model.so"
REPORT = "build.json"


def load_model(path: str | Path):
    """Load a Keras model file, turning every failure into a :class:`CocogenError`."""
    p = Path(path)
    if not p.exists():
        raise CocogenError(f"model '{path}' does not exist")
    if p.is_dir():
        raise CocogenError(f"model '{path}' is a directory; pass the .keras file")
    import keras

    try:
        return keras.models.load_model(p, compile=False)
    except Exception as exc:  # keras raises many types for unreadable files
        raise CocogenError(
            f"cannot load Keras model '{path}': {str(exc).splitlines()[0]}"
        ) from None


def is_pattern_row(row: dict) -> bool:
    """A ``build.json`` layer row compiled to a 3×3 pattern kernel (not a pointwise one)."""
    return bool(row["qualifies"]) and row.get("kind", "pattern") == "pattern"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def _pattern_parts(v: LayerVerdict) -> tuple[tuple[int, int, int], np.ndarray, PatternLibrary]:
    """``(input shape, kernel, pattern library)`` of a qualifying 3×3 layer's verdict
    (:func:`~cocotune.cocogen.model.analyse_model` sets all three when a layer qualifies)."""
    shape, kernel, library = v.input_shape, v.kernel, v.library
    assert shape is not None and kernel is not None and library is not None, v.name
    return shape, kernel, library


def compile_model(
    model_path: str | Path,
    out_dir: str | Path,
    max_patterns: int = 8,
    tune: bool = True,
    threads: int = 1,
    native: bool = True,
    log=print,
    delegate: bool = True,
) -> dict:
    """Compile every qualifying layer of the model at ``model_path`` into ``out_dir``.

    Returns the report written to ``build.json``.

    Raises:
        NoQualifyingLayerError: no layer qualifies (the notes say why, layer by layer).
    """
    model = load_model(model_path)
    verdicts = analyse_model(model, max_patterns)
    pw_verdicts = pwc.analyse_pointwise(model)
    dw_verdicts = dwc.analyse_depthwise(model)  # depthwise 3x3: docs/design.md §7
    good = [v for v in verdicts if v.qualifies] + [v for v in pw_verdicts.values() if v.qualifies]
    if not good and not any(v.qualifies for v in dw_verdicts.values()):
        reasons = {v.name: v.reason for v in verdicts}
        reasons.update({n: v.reason for n, v in pw_verdicts.items()})
        reasons.update({n: v.reason for n, v in dw_verdicts.items()})
        raise NoQualifyingLayerError(
            f"no layer of '{model_path}' can be compiled to a pattern, pointwise or depthwise "
            "kernel",
            notes=[f"{v.name} ({v.type}): {reasons[v.name]}" for v in verdicts]
            or ["the model has no layers"],
        )
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise CocogenError(f"output '{out_dir}' exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    isa = isa_tag(native)
    specs: list[tuple[LayerVerdict, KernelSpec]] = []
    for i, v in enumerate(verdicts):
        if not v.qualifies:
            continue
        (h, w, c), kernel, library = _pattern_parts(v)
        base = KernelSpec(
            "pattern",
            c,
            h,
            w,
            kernel.shape[3],
            v.stride,
            v.padding,
            library,
            v.relu,
            index=i,
            isa=isa,
        )
        specs.append((v, base.with_tile(default_tile(base))))
    pw_specs = [
        (pw_verdicts[v.name], pwc.pointwise_spec(pw_verdicts[v.name], i, native))
        for i, v in enumerate(verdicts)
        if v.name in pw_verdicts and pw_verdicts[v.name].qualifies
    ]
    dw_specs = [
        (dw_verdicts[v.name], dwc.depthwise_spec(dw_verdicts[v.name], i, native))
        for i, v in enumerate(verdicts)
        if v.name in dw_verdicts and dw_verdicts[v.name].qualifies
    ]
    tuned = {}
    if tune:
        from cocotune.cocogen.autotune import tune as run_tune

        with tempfile.TemporaryDirectory(prefix="cocogen_tune_") as tmp:
            res = run_tune(  # the NHWC entry point: what the delegate runs
                [(s, _pattern_parts(v)[1], v.bias) for v, s in specs],
                tmp,
                nthreads=threads,
                native=native,
                layout="nhwc",
            )
        for (v, _), r in zip(specs, res):
            tuned[v.name] = r
        specs = [(v, tuned[v.name].best) for v, _ in specs]
        pw_specs = _tune_pointwise(pw_specs, tuned, threads, native)
        dw_specs = _tune_depthwise(dw_specs, tuned, threads, native)
    files = render_library([s for _, s in specs], source=Path(model_path).name)
    if pw_specs:
        files.update(pwc.render_sources([s for _, s in pw_specs], source=Path(model_path).name))
    if dw_specs:
        from cocotune.cocogen.emit_depthwise import render_depthwise_library

        files.update(
            render_depthwise_library([s for _, s in dw_specs], source=Path(model_path).name)
        )
    src = out / "src"
    if src.exists():
        shutil.rmtree(src)
    objs = compile_objects(files, src, native=native)
    lib = link_library(list(objs.values()), src, LIB_NAME, native=native)
    delegate_info = None
    if delegate:
        delegate_info = _build_delegate(
            model, specs, pw_specs, objs, lib, src, out, native, dw_specs=dw_specs
        )
    for obj in objs.values():
        obj.unlink(missing_ok=True)
    shutil.move(str(lib), out / LIB_NAME)
    if Path(model_path).resolve() != (out / "model.keras").resolve():
        shutil.copyfile(model_path, out / "model.keras")
    layers = []
    spec_of = {v.name: s for v, s in specs}
    pw_spec_of = {v.name: s for v, s in pw_specs}
    dw_spec_of = {v.name: s for v, s in dw_specs}
    for v in verdicts:
        if v.name in dw_verdicts:
            hashes = delegate_info["hashes"] if delegate_info is not None else None
            layers.append(dwc.build_row(dw_verdicts[v.name], dw_spec_of.get(v.name), hashes, tuned))
            continue
        if v.name in pw_verdicts:
            layers.append(
                _pointwise_row(pw_verdicts[v.name], pw_spec_of, delegate_info, tuned, out)
            )
            continue
        row = {"name": v.name, "type": v.type, "qualifies": v.qualifies}
        if not v.qualifies:
            row["runtime"] = "stock"
            row["reason"] = v.reason
        else:
            s = spec_of[v.name]
            _, kernel, library = _pattern_parts(v)
            layer = encode(kernel, v.bias, library)
            fname = f"{_safe(v.name)}.fkw"
            write_fkw(layer, out / fname)
            row.update(
                runtime="cocogen",
                kernel=s.name,
                spec=s.to_json(),
                fkw=fname,
                patterns=len(library),
                kernels_kept=layer.n_kernels,
                kernels_total=s.cin * s.cout,
                fkw_bytes=layer.nbytes,
                csr_bytes=layer.csr_nbytes,
                macs_dense=s.macs_dense,
                macs_pruned=int(np.count_nonzero(kernel)) * s.ho * s.wo,
            )
            if v.absorbs:
                row["absorbs"] = v.absorbs
            if delegate_info is not None:
                row["support_fnv1a64"] = f"{delegate_info['hashes'][v.name]:016x}"
            if v.name in tuned:
                row["tuning_seconds"] = tuned[v.name].times
        layers.append(row)
    report = {
        "model": "model.keras",
        "source": str(model_path),
        "library": LIB_NAME,
        "isa": isa,
        "cflags": native_flags() if native else portable_flags(),
        "chain": is_chain(model),
        "layers": layers,
        "stock_layers": [r["name"] for r in layers if not r["qualifies"]],
    }
    if delegate_info is not None:
        report["delegate"] = {k: v for k, v in delegate_info.items() if k != "hashes"}
    (out / REPORT).write_text(json.dumps(report, indent=2) + "\n")
    return report


def _tune_pointwise(pw_specs, tuned, threads, native):
    """Autotune the pointwise kernels (one library, interleaved timing); fills ``tuned``."""
    block = [(v, s) for v, s in pw_specs if v.kind == "block"]
    csr = [(v, s) for v, s in pw_specs if v.kind == "csr"]
    if block:
        from cocotune.cocogen.pointwise_runtime import tune_pointwise

        with tempfile.TemporaryDirectory(prefix="cocogen_tune_pw_") as tmp:
            res = tune_pointwise(
                [(s, encode_pointwise(v.kernel, v.bias)) for v, s in block],
                tmp,
                nthreads=threads,
                native=native,
            )
        for (v, _), r in zip(block, res):
            tuned[v.name] = r
    if csr:  # 1 thread: the delegate splits a node into (pixel chunk, channel block) items
        from cocotune.cocogen.sparse_pointwise import tune_csr

        with tempfile.TemporaryDirectory(prefix="cocogen_tune_csr_") as tmp:
            res = tune_csr([(s, v.kernel, v.bias) for v, s in csr], tmp, native=native)
        for (v, _), r in zip(csr, res):
            tuned[v.name] = r
    return [(v, tuned[v.name].best if v.name in tuned else s) for v, s in pw_specs]


def _tune_depthwise(dw_specs, tuned, threads, native):
    """Autotune the depthwise kernels (one library, interleaved timing); fills ``tuned``."""
    if not dw_specs:
        return dw_specs
    from cocotune.cocogen.depthwise_runtime import tune_depthwise

    with tempfile.TemporaryDirectory(prefix="cocogen_tune_dw_") as tmp:
        res = tune_depthwise(
            [(s, v.kernel, v.bias) for v, s in dw_specs], tmp, nthreads=threads, native=native
        )
    for (v, _), r in zip(dw_specs, res):
        tuned[v.name] = r
    return [(v, r.best) for (v, _), r in zip(dw_specs, res)]


def _pointwise_row(v, spec_of, delegate_info, tuned, out) -> dict:
    """The ``build.json`` row of a 1×1 Conv2D / Dense layer."""
    row = {"name": v.name, "type": v.type, "qualifies": v.qualifies}
    if not v.qualifies:
        row["runtime"] = "stock"
        row["reason"] = v.reason
        return row
    s = spec_of[v.name]
    if v.kind == "csr":
        row.update(pwc.csr_report(v, s))
        if delegate_info is not None:
            row["support_fnv1a64"] = f"{delegate_info['hashes'][v.name]:016x}"
        if v.name in tuned:
            row["tuning_seconds"] = tuned[v.name].times
        return row
    layer = encode_pointwise(v.kernel, v.bias, s.group)
    fname = f"{_safe(v.name)}.pwb"
    write_pwb(layer, out / fname)
    row.update(
        runtime="cocogen",
        kind="fc" if v.fc else "pointwise",
        kernel=s.name,
        spec=s.to_json(),
        pwb=fname,
        fused_relu=v.relu,
        blocks_kept=layer.n_blocks,
        blocks_total=s.cin * s.n_groups,
        pwb_bytes=layer.nbytes,
        csr_bytes=layer.csr_nbytes,
        macs_dense=s.macs_dense,
        macs_pruned=layer.macs_per_pixel * s.n_pixels,
    )
    if delegate_info is not None:
        row["support_fnv1a64"] = f"{delegate_info['hashes'][v.name]:016x}"
    if v.name in tuned:
        row["tuning_seconds"] = tuned[v.name].times
    return row


def _build_delegate(
    model, specs, pw_specs, objs, kernel_lib, src, out, native, dw_specs=()
) -> dict:
    """``model.tflite``, ``cocogen_weights.bin``, ``cocogen_pw_weights.bin`` and
    ``libcocogen_delegate.so`` (the kernel objects already compiled for the ctypes library, plus
    the delegate's C layers)."""
    import ctypes

    from cocotune.cocogen import delegate as dg
    from cocotune.cocogen.bench import tflite_bytes

    try:
        klib = ctypes.CDLL(str(kernel_lib.resolve()))
    except OSError:  # e.g. an AddressSanitizer build loaded without libasan preloaded
        klib = None
    rows = []
    for v, s in specs:
        gather, data = dg.gather_index(s, v.kernel, v.library)
        rows.append(
            {
                "spec": s,
                "layer": v.name,
                "hash": dg.support_fnv1a64(v.kernel, klib),
                "nnz": int(np.count_nonzero(v.kernel)),
                "gather": gather,
                "data": data,
                "n_w": gather.size,
                "n_koff": data.koff.size,
                "n_g": data.g.size,
                "n_reorder": data.reorder.size,
            }
        )
    pw_rows = [pwc.delegate_row(v, s, klib) for v, s in pw_specs]
    dw_rows = [dwc.delegate_row(v, s, klib) for v, s in dw_specs]
    build_id = "-".join(f"{r['hash']:016x}" for r in rows + pw_rows + dw_rows)[:200]
    dfiles = render_delegate(rows, build_id, dg.ACCEPTED_RUNTIMES)
    dfiles.update(pwc.render_table(pw_rows))
    dfiles.update(dwc.render_table(dw_rows))
    dobjs = compile_objects(
        dfiles,
        src,
        native=native,
        static={**delegate_headers(), **pwc.headers(), **dwc.headers()},
    )
    lib = link_library(
        [*objs.values(), *dobjs.values()],
        src,
        dg.DELEGATE_LIB,
        native=native,
        extra=["-Wl,-Bsymbolic", "-ldl"],
    )
    for o in dobjs.values():
        o.unlink(missing_ok=True)
    shutil.move(str(lib), out / dg.DELEGATE_LIB)
    dg.write_weights(out / dg.WEIGHTS_FILE, rows)
    pwc.write_weights(out / pwc.PW_WEIGHTS_FILE, pw_rows)
    try:
        content = tflite_bytes(model, batch=1)
    except Exception as exc:  # the converter raises many types
        raise CocogenError(
            f"converting the model to TensorFlow Lite failed: {str(exc).splitlines()[0]}"
        ) from None
    (out / dg.TFLITE_FILE).write_bytes(content)
    return {
        "library": dg.DELEGATE_LIB,
        "tflite": dg.TFLITE_FILE,
        "weights": dg.WEIGHTS_FILE,
        "accepted_runtimes": list(dg.ACCEPTED_RUNTIMES),
        "layers": [r["layer"] for r in rows + pw_rows + dw_rows],
        "hashes": {r["layer"]: r["hash"] for r in rows + pw_rows + dw_rows},
    }


@dataclass
class Build:
    """A loaded build directory: the report, the library and one bound kernel per layer."""

    path: Path
    report: dict
    library: KernelLibrary
    kernels: dict  # layer name -> runtime.Kernel
    _model: object = None
    _buffers: dict | None = None
    _tflite: dict | None = None

    @property
    def model(self):
        if self._model is None:
            self._model = load_model(self.path / self.report["model"])
        return self._model

    def run(self, x_nhwc: np.ndarray, nthreads: int = 1, stock: str = "keras") -> np.ndarray:
        """The whole model on a batch: our kernels for compiled layers, the stock runtime for the
        rest: ``stock='keras'`` calls the Keras layer, ``'tflite'`` runs it as a one-layer
        TFLite model (stock interpreter, ``nthreads`` threads; what ``cocogen bench`` times).

        Only for Sequential-like chains. Activations stay CHW between consecutive kernels (and
        through ReLU / 2×2 max pooling, done here); they are converted to NHWC for stock layers.
        """
        if stock not in ("keras", "tflite"):
            raise ValueError(f"stock must be 'keras' or 'tflite', got {stock!r}")
        if not self.report.get("chain"):
            raise CocogenError(
                "the compiled model is not a chain of layers; run its kernels one by one"
            )
        return np.concatenate(
            [self._run_one(x[None], nthreads, stock) for x in np.asarray(x_nhwc, np.float32)]
        )

    def _stock_tflite(self, layer, nthreads):
        """A one-layer TFLite model of ``layer`` (cached per layer and thread count)."""
        import keras

        from cocotune.cocogen.bench import TFLiteRunner, tflite_bytes

        if self._tflite is None:
            self._tflite = {}
        key = (layer.name, nthreads)
        if key not in self._tflite:
            inp = keras.Input(batch_shape=(1, *layer.input.shape[1:]))
            clone = type(layer).from_config(layer.get_config())
            m = keras.Model(inp, clone(inp))
            clone.set_weights(layer.get_weights())
            content = next(
                (r.content for (n, _), r in self._tflite.items() if n == layer.name), None
            )
            self._tflite[key] = TFLiteRunner(None, nthreads, content or tflite_bytes(m))
        return self._tflite[key]

    def _run_one(self, x, nthreads, stock="keras"):
        import keras

        if self._buffers is None:  # one shared workspace, one output buffer per kernel
            need = max(k.spec.workspace_floats for k in self.kernels.values())
            ws = aligned_empty(need)
            for k in self.kernels.values():
                k.use_workspace(ws)
            self._buffers = {n: np.empty(k.out_shape, np.float32) for n, k in self.kernels.items()}
        cur, chw = np.asarray(x, np.float32), False
        absorbed = {r["absorbs"] for r in self.report["layers"] if r.get("absorbs")}
        for layer in self.model.layers:
            if type(layer).__name__ == "InputLayer" or layer.name in absorbed:
                continue  # a ZeroPadding2D is done by the next kernel's 'same' padding
            k = self.kernels.get(layer.name)
            if k is not None:
                if not chw:
                    cur, chw = nhwc_to_chw(cur), True
                cur = k(cur, nthreads, self._buffers[layer.name])
                continue
            if chw and type(layer).__name__ == "ReLU" and not layer.get_config().get("max_value"):
                cur = np.maximum(cur, 0)
                continue
            if (
                chw
                and isinstance(layer, keras.layers.MaxPooling2D)
                and tuple(layer.pool_size) == (2, 2)
                and tuple(layer.strides) == (2, 2)
                and layer.padding == "valid"
            ):
                cur = self.library.maxpool2x2(np.ascontiguousarray(cur), nthreads)
                continue
            if chw:
                cur, chw = chw_to_nhwc(cur), False
            if stock == "tflite":
                cur = self._stock_tflite(layer, nthreads)(cur)
            else:
                cur = np.asarray(layer(cur))
        return chw_to_nhwc(cur) if chw else np.array(cur)


def load_build(path: str | Path) -> Build:
    """Open a build directory written by :func:`compile_model`.

    Raises:
        CocogenError: not a build directory, or its files do not match the report.
    """
    p = Path(path)
    rep = p / REPORT
    if not rep.is_file():
        raise CocogenError(
            f"'{path}' is not a cocogen build directory (no {REPORT}; run 'cocotune cocogen compile')"
        )
    try:
        report = json.loads(rep.read_text())
    except json.JSONDecodeError as exc:
        raise CocogenError(f"'{rep}' is not valid JSON: {exc}") from None
    lib = KernelLibrary(p / report["library"])
    kernels = {}
    for row in report["layers"]:
        if not is_pattern_row(row):
            continue
        spec = KernelSpec.from_json(row["spec"])
        fkw = read_fkw(p / row["fkw"])
        dense = fkw.to_dense()
        kernels[row["name"]] = lib.kernel(spec, kernel_data(spec, dense, fkw.bias, fkw))
    return Build(p, report, lib, kernels)
