"""The code's shape, checked: the CLI and the server import nothing below the application layer, no package
imports from a layer above its own (the contracts in pyproject.toml, checked by import-linter), and no module
is part of an import cycle, counting imports inside functions too (grimp's graph)."""
from __future__ import annotations

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
