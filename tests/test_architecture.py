"""The shape of the code base: no import cycles, and a generated model that needs no compiler.

The import graph is built statically from the source (``ast``), so a cycle hidden in a function
body counts as much as one at the top of a module: both make "which module may import which"
a question without an answer. Imports under ``if TYPE_CHECKING:`` never run and are left out; a
module importing its own package (or a parent package) is not a cycle either.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "cocotune"

# Imports allowed to close a cycle, as (importer, imported): none today. A new cycle fails
# test_no_import_cycles; an entry that no longer closes a cycle fails test_allowlist_is_exact.
KNOWN_CYCLE_EDGES: frozenset[tuple[str, str]] = frozenset()


def _module_files() -> dict[str, Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(tree: ast.AST, module: str, is_package: bool, modules) -> set[str]:
    """Every cocotune module that ``module`` imports anywhere, resolved to a module name."""
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                names.add(sub if sub in modules else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def import_graph() -> dict[str, set[str]]:
    """module -> the cocotune modules it imports (and the packages those imports run)."""
    files = _module_files()
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        edges: set[str] = set()
        for name in _imported_names(tree, module, path.name == "__init__.py", files):
            # importing a.b.c also runs a/__init__ and a/b/__init__
            while name and name not in files:
                name = name.rpartition(".")[0]
            while name.startswith("cocotune"):
                if name != module and not module.startswith(name + "."):
                    edges.add(name)
                name = name.rpartition(".")[0]
        graph[module] = edges
    return graph


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> list[str] | None:
    """A shortest import path start -> ... -> goal, or None."""
    previous: dict[str, str | None] = {start: None}
    queue = [start]
    for node in queue:
        for nxt in sorted(graph[node]):
            if nxt not in previous:
                previous[nxt] = node
                if nxt == goal:
                    path = [nxt]
                    while previous[path[-1]] is not None:
                        path.append(previous[path[-1]])
                    return path[::-1]
                queue.append(nxt)
    return None


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One shortest cycle through each module that is on a cycle (deduplicated)."""
    found: dict[frozenset[str], list[str]] = {}
    for module in sorted(graph):
        for nxt in sorted(graph[module]):
            back = _reaches(graph, nxt, module)
            if back is not None:
                cycle = [module, *back]
                found.setdefault(frozenset(cycle), cycle)
                break
    return list(found.values())


def test_graph_sees_function_level_imports():
    graph = import_graph()
    # cli imports the command modules inside a function, runtime.model at module level
    assert "cocotune.convert.command" in graph["cocotune.cli"]
    assert "cocotune.tuning.pruning_rule" in graph["cocotune.runtime.model"]
    # under TYPE_CHECKING only: not an edge
    assert not any(m.startswith("cocotune.frontend") for m in graph["cocotune.ir.net"])


def test_no_import_cycles():
    graph = import_graph()
    for importer, imported in KNOWN_CYCLE_EDGES:
        graph[importer].discard(imported)
    cycles = _cycles(graph)
    assert not cycles, "import cycles inside cocotune:\n" + "\n".join(
        "  " + " -> ".join(c) for c in cycles
    )


def test_allowlist_is_exact():
    """Every allowed edge still exists and still closes a cycle (else: delete it above)."""
    graph = import_graph()
    stale = []
    for importer, imported in sorted(KNOWN_CYCLE_EDGES):
        if imported not in graph.get(importer, ()) or _reaches(graph, imported, importer) is None:
            stale.append(f"{importer} -> {imported}")
    assert not stale, "no longer a cycle, remove from KNOWN_CYCLE_EDGES: " + ", ".join(stale)


def test_ir_and_pruning_rule_need_no_parser():
    """The IR and the rule the generated model uses import nothing from the frontend."""
    graph = import_graph()
    for module in ("cocotune.ir.net", "cocotune.tuning.pruning_rule", "cocotune.runtime.model"):
        assert not [m for m in graph[module] if m.startswith("cocotune.frontend")], module


@pytest.mark.slow
def test_generated_model_loads_no_compiler(tmp_path):
    """build_model('full') of a generated package imports neither Lark, the frontend nor
    caffe_pb2 (TensorFlow's own protobuf use is fine): model.py runs without the compiler."""
    example = REPO / "examples" / "resnet_digits"
    generated_package = tmp_path / "pkg"
    gen = subprocess.run(
        [
            sys.executable,
            "-m",
            "cocotune",
            "gen",
            str(example / "net.prototxt"),
            str(example / "subspace.txt"),
            "-o",
            str(generated_package),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert gen.returncode == 0, gen.stderr[-3000:]
    code = textwrap.dedent("""
        import json, sys
        sys.path.insert(0, sys.argv[1])
        import model
        model.build_model("full")
        print(json.dumps(sorted(sys.modules)))
        """)
    result = subprocess.run(
        [sys.executable, "-c", code, str(generated_package)],
        capture_output=True,
        text=True,
        cwd=generated_package,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert "cocotune.runtime.model" in loaded  # the check below looked at a real build
    compiler = [
        m
        for m in loaded
        if m == "lark"
        or m.startswith(("lark.", "cocotune.frontend", "cocotune.convert"))
        or m == "cocotune._proto.caffe_pb2"
    ]
    assert not compiler, f"build_model('full') imported the compiler: {compiler}"


def test_nothing_shipped_points_outside_the_repository():
    """Code, --help texts, templates and the grammar cite docs/design.md, never a file beside the
    repository (a user of the wheel has neither ../shared nor the original DESIGN.md)."""
    offenders = []
    for root in ("cocotune", "codegen_templates", "grammar", "proto", "examples"):
        for path in sorted((REPO / root).rglob("*")):
            if not path.is_file() or path.suffix in (".pyc", ".so", ".png", ".bin", ".h5"):
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            for needle in ("../shared", "DESIGN §", "DESIGN.md"):
                if needle in text:
                    offenders.append(f"{path.relative_to(REPO)}: {needle}")
    assert not offenders, "\n".join(offenders)
