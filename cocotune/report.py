"""What ``cocotune check`` shows: a per-layer summary of a net, as a table or as JSON."""

from __future__ import annotations

from typing import Any

from cocotune.ir.net import Net


def net_summary(net: Net) -> dict[str, Any]:
    """JSON-able summary: layers (name, type, module, bottoms, tops with shapes, params, MACs)."""
    layers = []
    for layer in net.layers:
        entry: dict[str, Any] = {
            "name": layer.name,
            "type": layer.type,
            "module": layer.module,
            "bottoms": layer.bottoms,
            "tops": {b.name: list(b.inferred_shape) for b in layer.outputs},
            "params": layer.params,
            "macs": layer.macs,
        }
        if layer.fork:
            entry["fork_extension"] = layer.fork
        layers.append(entry)
    return {
        "net": net.name,
        "file": net.source.path,
        "phase": net.phase,
        "layers": layers,
        "modules": [
            {"name": m.name, "layers": [layer.name for layer in m.layers]} for m in net.modules
        ],
        "outputs": {b.name: list(b.inferred_shape) for b in net.output_blobs()},
        "totals": {
            "layers": len(net.layers),
            "params": sum(layer.params for layer in net.layers),
            "macs": sum(layer.macs for layer in net.layers),
            "modules": len(net.modules),
            "fork_extensions": sum(1 for layer in net.layers if layer.fork),
        },
    }


def human(n: int) -> str:
    """1234567 → '1.23M' (for the table; JSON keeps exact integers)."""
    for unit, scale in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def _shape(shape: list[int]) -> str:
    return "(" + ",".join(str(d) for d in shape) + ")" if shape else "()"


def render_table(summary: dict[str, Any]) -> str:
    headers = ["layer", "type", "module", "top shapes (N,C,H,W)", "params", "MACs"]
    rows = []
    for entry in summary["layers"]:
        tops = " ".join(
            (
                f"{name}{_shape(shape)}"
                if len(entry["tops"]) > 1 or name != entry["name"]
                else _shape(shape)
            )
            for name, shape in entry["tops"].items()
        )
        kind = entry["type"] + (" *" if entry.get("fork_extension") else "")
        rows.append(
            [
                entry["name"],
                kind,
                entry["module"] or "",
                tops,
                human(entry["params"]) if entry["params"] else "",
                human(entry["macs"]) if entry["macs"] else "",
            ]
        )
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    right = {4, 5}

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    t = summary["totals"]
    out.append("")
    out.append(
        f"{summary['net'] or summary['file']}: {t['layers']} layers, {t['modules']} modules, "
        f"{t['params']:,} parameters ({human(t['params'])}), "
        f"{t['macs']:,} MACs per image ({human(t['macs'])})"
    )
    outs = ", ".join(f"{k}{_shape(v)}" for k, v in summary["outputs"].items())
    out.append(f"outputs: {outs}")
    if t["fork_extensions"]:
        forks = sorted({e["fork_extension"] for e in summary["layers"] if e.get("fork_extension")})
        out.append(f"* Caffe-fork extension ({t['fork_extensions']} layers): {'; '.join(forks)}")
    return "\n".join(out) + "\n"
