"""The code's shape, checked: the CLI and the server import nothing below the application layer, no package
imports from a layer above its own (the contracts in pyproject.toml, checked by import-linter), no module is
part of an import cycle, counting imports inside functions too (grimp's graph), and the server decides
nothing about a run's fate."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

importlinter = pytest.importorskip("importlinter", reason="import-linter is a test extra: pip install -e '.[test]'")
grimp = pytest.importorskip("grimp")

ROOT = Path(__file__).resolve().parents[1]


def test_the_import_contracts_hold():
    import subprocess
    import sys
    tool = Path(sys.executable).with_name("lint-imports")  # beside this Python: the test extras install it
    if not tool.exists():
        pytest.skip(f"{tool} is missing: pip install -e '.[test]'")
    done = subprocess.run([str(tool), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 kept, 0 broken" in done.stdout


# What the adapters may import of cnnlab: the application layer, the errors it raises, the version, and each
# other (`cnnlab serve` starts the server). Anything else — a module added tomorrow too — is below the line.
ADAPTERS = ("cnnlab.cli", "cnnlab.serve")
ALLOWED = ADAPTERS + ("cnnlab.app", "cnnlab.errors", "cnnlab.version")


def test_the_cli_and_the_server_import_only_the_application_layer():
    graph = grimp.build_graph("cnnlab")
    below = sorted(f"{m} -> {d}" for m in graph.modules if m.startswith(ADAPTERS)
                   for d in graph.find_modules_directly_imported_by(m)
                   if d != "cnnlab" and not any(d == a or d.startswith(a + ".") for a in ALLOWED) or d == "cnnlab")
    assert below == []


def cycles(graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iteratively)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_no_module_is_part_of_an_import_cycle():
    assert cycles(grimp.build_graph("cnnlab")) == []


def test_the_cycle_finder_finds_a_cycle():
    class Graph:
        modules = {"a", "b", "c", "d"}
        edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}

        def find_modules_directly_imported_by(self, m):
            return self.edges.get(m, set())
    assert cycles(Graph()) == [["a", "b", "c"]]


# A run's fate is decided in cnnlab.app.lifecycle, for both front ends: the server may pass a status on, never
# name one as its decision (compare with it, assign it, return it, put it in an event) nor record an ending.
ENDINGS = {"finished", "interrupted", "diverged", "failed"}
RECORDERS = {"record_end", "_record_failure"}


def fate_decisions(source: str) -> list[str]:
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Compare, ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Return)):
            found |= {f"line {c.lineno}: {c.value!r}" for c in ast.walk(node)
                      if isinstance(c, ast.Constant) and c.value in ENDINGS}
        elif isinstance(node, ast.Dict):
            found |= {f"line {v.lineno}: {v.value!r}" for v in node.values
                      if isinstance(v, ast.Constant) and v.value in ENDINGS}
        elif isinstance(node, ast.Call):
            name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
            if name in RECORDERS:
                found.add(f"line {node.lineno}: calls {name}")
        elif isinstance(node, ast.ImportFrom):
            found |= {f"line {node.lineno}: imports {a.name}" for a in node.names if a.name in RECORDERS}
    return sorted(found)


def test_the_server_decides_nothing_about_a_run_s_fate():
    decided = {str(path.relative_to(ROOT)): fate_decisions(path.read_text())
               for path in sorted((ROOT / "cnnlab" / "serve").rglob("*.py"))}
    assert {path: found for path, found in decided.items() if found} == {}
    # what the check catches: the worker as it was before cnnlab.app.lifecycle.run_submitted took this over
    assert fate_decisions('status = "interrupted" if stopped else "failed"\n'
                          'result = record_end(run_dir, status, message, store, force=True)\n'
                          'deliver({"type": "end", "data": {"status": "failed"}})\n') == [
        "line 1: 'failed'", "line 1: 'interrupted'", "line 2: calls record_end", "line 3: 'failed'"]
