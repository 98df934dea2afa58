"""ref/ has no import cycle, counting imports inside functions too.

A function-level import can hide a cycle (it runs later, so Python does not
complain); this test reads every module of ``ref/`` with ``ast``, takes every
``import`` / ``from ... import`` anywhere in it (module level, functions,
branches), resolves relative imports, and looks for a cycle among ``ref``'s
own modules. A package's ``__init__`` counts as the module ``ref.fast`` etc.;
importing ``ref.x.y`` is an edge to ``ref.x.y`` (not to its parent packages,
which Python imports first but which are not what the code asks for).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def module_files(package: str, root: Path = ROOT) -> dict[str, Path]:
    """``{dotted module name: file}`` for every ``.py`` under the package folder."""
    mods = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that the file imports anywhere (resolved, deduplicated)."""
    is_pkg = path.name == "__init__.py"
    package = name.split(".") if is_pkg else name.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                # "import ref.fast.device" names every prefix; the deepest known one is meant
                for k in range(len(parts), 0, -1):
                    if ".".join(parts[:k]) in known:
                        out.add(".".join(parts[:k]))
                        break
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for alias in node.names:
                sub = f"{mod}.{alias.name}"
                if sub in known:  # "from . import fast": the submodule
                    out.add(sub)
                elif mod in known:  # "from .chain import prepare": the module
                    out.add(mod)
    out.discard(name)
    return out


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle that a depth-first search meets (each as a closed path of names)."""
    state, stack, cycles = {}, [], []

    def visit(u):
        state[u] = "open"
        stack.append(u)
        for v in sorted(graph.get(u, ())):
            if state.get(v) == "open":
                cycles.append(stack[stack.index(v):] + [v])
            elif v not in state:
                visit(v)
        stack.pop()
        state[u] = "done"

    for u in sorted(graph):
        if u not in state:
            visit(u)
    return cycles


def import_graph(package: str, root: Path = ROOT) -> dict[str, set[str]]:
    """``{module: the package's modules it imports}``."""
    mods = module_files(package, root)
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def test_ref_has_no_import_cycle():
    cycles = find_cycles(import_graph("ref"))
    assert not cycles, "import cycles in ref/: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_finder_sees_function_level_imports(tmp_path):
    """The check can fail: a cycle closed by an import inside a function is found."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("def f():\n    from .. import a\n    return a\n")
    assert find_cycles(import_graph("pkg", tmp_path)) == [["pkg.a", "pkg.sub.b", "pkg.a"]]


@pytest.mark.parametrize("module,expected", [
    ("ref.dispatch", {"ref.chain", "ref.fast", "ref.fast.device"}),
    ("ref.chain", set()),
])
def test_dispatch_is_the_only_module_that_knows_every_path(module, expected):
    """ref.chain (the specification) imports no kernel; ref.dispatch imports all three paths."""
    graph = import_graph("ref")
    paths = {"ref.chain", "ref.fast", "ref.fast.device"}
    assert graph[module] & paths == expected
    assert not any("ref.dispatch" in graph[m] for m in paths)
