"""NetPlan → the source of the generated ``model.py`` (Jinja2 templates, then black).

Templates only loop and print: every name, literal and layer call is prepared here and in
the emitters. Caffe names reach the code only as ``repr`` string literals, escaped comments or
identifiers from :class:`~cocotune.ir.names.NameTable`.
"""

from __future__ import annotations

from dataclasses import dataclass

from cocotune import __version__
from cocotune.convert.emitters.base import Call, CodeContext, LayerPlan, pyrepr
from cocotune.convert.plan import NetPlan, hidden_by_fusion
from cocotune.convert.render import render_python
from cocotune.ir.names import comment_text, docstring_text, py_string


@dataclass
class _CallView:
    out: str
    ctor: str | None
    inputs: list[str]
    args: list[str]
    kwargs_items: list[str]
    name: str | None
    list_input: bool


def _view(call: Call) -> _CallView:
    return _CallView(
        call.out,
        call.ctor,
        call.inputs,
        call.args,
        [f"{k}={v}" for k, v in call.kwargs.items()],
        call.name,
        call.list_input,
    )


def _comment(plan: LayerPlan) -> str:
    text = f"{plan.layer.name} ({plan.layer.type})"
    if plan.fused is not None:
        text += f" + {plan.fused.name} ({plan.fused.type}, folded in)"
    if plan.emitter.skip:
        text += ": training only, not part of the model"
    return comment_text(text)


def _width_expr(plan: LayerPlan, full: int) -> str:
    return f"w[{py_string(plan.layer.name)}]" if plan.prunable else str(full)


@dataclass
class _LayerCode:
    comment: str
    calls: list[_CallView]


def layer_calls(plan: LayerPlan, in_module: bool, producers: dict[str, str]) -> list[Call]:
    """The emitter's calls for one layer; records which Keras layer ends up holding each blob."""
    gen = CodeContext(in_module, _width_expr)
    calls = plan.emitter.calls(plan, gen)
    var_producer: dict[str, str] = {}
    for call in calls:
        if call.ctor is None:
            src = call.inputs[0]
            var_producer[call.out] = var_producer.get(src, producers.get(src, ""))
        elif call.name is not None:
            var_producer[call.out] = getattr(call.name, "raw", None) or ""
    for var, producer in var_producer.items():
        if producer:
            producers[var] = producer
    return calls


def generate_model_source(net_plan: NetPlan, source_path: str, command: str) -> str:
    """The complete, black-formatted ``model.py`` for a net."""
    net = net_plan.net
    producers: dict[str, str] = {}  # python var -> keras layer producing its current value
    blob_producers: dict[str, str] = {}
    module_of = {id(p.layer): m for m in net_plan.modules for p in m.plans}
    modules_code = []
    body = []
    emitted_modules: set[str] = set()
    for plan in net_plan.plans:
        module = module_of.get(id(plan.layer))
        if module is None:
            calls = layer_calls(plan, False, producers)
            for blob, var in zip(plan.layer.outputs, plan.out_vars):
                if var in producers and not hidden_by_fusion(plan, blob):
                    blob_producers[blob.name] = producers[var]
            if plan.fused_into:
                continue  # folded into the BatchNorm above; its comment says so
            body.append(
                {"module": False, "comment": _comment(plan), "calls": [_view(c) for c in calls]}
            )
            continue
        if module.name in emitted_modules:
            continue
        emitted_modules.add(module.name)
        layers_code = []
        for mplan in module.plans:
            calls = layer_calls(mplan, True, producers)
            for blob, var in zip(mplan.layer.outputs, mplan.out_vars):
                if var in producers and not hidden_by_fusion(mplan, blob):
                    blob_producers[blob.name] = producers[var]
            if not mplan.fused_into:
                layers_code.append(_LayerCode(_comment(mplan), [_view(c) for c in calls]))
        args = [net_plan.var(b) for b in module.inputs]
        outs = [net_plan.var(b) for b in module.outputs]
        returns = outs[0] if len(outs) == 1 else "(" + ", ".join(outs) + ",)"
        prunable = ", ".join(module.prunable) or "none"
        modules_code.append(
            {
                "function": module.function,
                "doc_name": docstring_text(module.name),
                "doc": docstring_text(f"{len(module.plans)} Caffe layers; prunable: {prunable}."),
                "args": args,
                "layers": layers_code,
                "returns": returns,
            }
        )
        call = f"{returns} = {module.function}({', '.join(args)}{', ' if args else ''}w)"
        body.append({"module": True, "comment": comment_text(module.name), "call": call})
    inputs = [(b.name, net_plan.var(b)) for b in net_plan.model_inputs]
    outputs = [(b.name, net_plan.var(b)) for b in net_plan.model_outputs]
    modules_table = (
        "{"
        + ", ".join(
            f"{py_string(m.name)}: ({m.function}, {pyrepr([b.name for b in m.inputs])}, "
            f"{pyrepr([b.name for b in m.outputs])}, {pyrepr(m.prunable)})"
            for m in net_plan.modules
        )
        + "}"
    )
    context = {
        "transforms": _transforms(net_plan),
        "title": docstring_text(net.name or source_path),
        "net_name": py_string(net.name or ""),
        "inputs_doc": docstring_text(", ".join(n for n, _ in inputs)),
        "outputs_doc": docstring_text(", ".join(n for n, _ in outputs)),
        "full_widths": pyrepr_dict(net_plan.prunable),
        "modules": modules_code,
        "body": body,
        "inputs_dict": "{" + ", ".join(f"{py_string(n)}: {v}" for n, v in inputs) + "}",
        "outputs_dict": "{" + ", ".join(f"{py_string(n)}: {v}" for n, v in outputs) + "}",
        "modules_table": modules_table,
        "blob_producers": pyrepr_dict(blob_producers),
    }
    return render_python(
        "keras/model.py.j2",
        context,
        header={
            "version": __version__,
            "source": comment_text(source_path),
            "command": comment_text(command),
        },
    )


def _transforms(net_plan: NetPlan) -> list[dict]:
    """Each data layer's transform_param as CaffeTransform arguments (set fields only)."""
    from cocotune.convert.emitters.io import InputEmitter

    out = []
    for plan in net_plan.plans:
        layer = plan.layer
        if not isinstance(plan.emitter, InputEmitter) or not layer.param.HasField(
            "transform_param"
        ):
            continue
        fields = {
            fd.name: list(value) if fd.is_repeated else value
            for fd, value in layer.param.transform_param.ListFields()
        }
        out.append(
            {
                "layer": comment_text(layer.name),
                "input": py_string(layer.tops[0]),
                "fields": pyrepr_dict(fields),
            }
        )
    return out


def pyrepr_dict(mapping: dict) -> str:
    return "{" + ", ".join(f"{pyrepr(k)}: {pyrepr(v)}" for k, v in mapping.items()) + "}"
