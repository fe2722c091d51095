"""The import contract of dmsl_core (issue 21), checked on the source: every ``import`` statement of
every module, the ones inside functions included (a lazy import is still a dependency).

- No module of the library outside ``dmsl_core/commands/`` and ``dmsl_core/cli.py`` imports the
  command line: the CLI parses arguments and prints; the workflows live below it.
- The library has no import cycle (the module graph's strongly connected components are single
  modules). A package's ``__init__`` importing its own submodules, and a submodule importing a
  sibling *through* its package (``from . import sibling``), are edges to those modules only.
- Nothing in the library imports the app.
"""
from __future__ import annotations

import ast
from pathlib import Path

import dmsl_core

ROOT = Path(dmsl_core.__file__).resolve().parent


def _modules() -> dict[str, Path]:
    mods = {}
    for p in ROOT.rglob("*.py"):
        parts = ["dmsl_core", *p.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = p
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> dict[str, int]:
    """The modules ``name`` imports (of ``mods``, or anything for absolute names) -> first line."""
    is_pkg = path.name == "__init__.py"
    out: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            subs = [f"{prefix}.{a.name}" for a in node.names if f"{prefix}.{a.name}" in mods]
            targets = subs + ([prefix] if len(subs) < len(node.names) else [])
        for t in targets:
            if t != name:
                out.setdefault(t, node.lineno)
    return out


def _graph() -> tuple[dict[str, Path], dict[str, dict[str, int]]]:
    mods = _modules()
    return mods, {m: _imports(m, p, mods) for m, p in mods.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in graph:
                    continue
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def _is_cli(mod: str) -> bool:
    return mod == "dmsl_core.cli" or mod == "dmsl_core.commands" or mod.startswith("dmsl_core.commands.")


def test_the_checker_sees_lazy_imports_and_finds_a_cycle(tmp_path):
    # the checker itself: a function-level import counts, and a two-module cycle is reported
    mods = {"dmsl_core.a": tmp_path / "a.py", "dmsl_core.b": tmp_path / "b.py"}
    mods["dmsl_core.a"].write_text("def f():\n    from .b import g\n")
    mods["dmsl_core.b"].write_text("from .a import f\n")
    g = {m: set(_imports(m, p, mods)) for m, p in mods.items()}
    assert g == {"dmsl_core.a": {"dmsl_core.b"}, "dmsl_core.b": {"dmsl_core.a"}}
    assert _cycles(g) == [["dmsl_core.a", "dmsl_core.b"]]
    assert _cycles({"x": {"y"}, "y": set()}) == []


def test_the_library_never_imports_its_command_line():
    mods, graph = _graph()
    assert "dmsl_core.evaluation" in graph and "dmsl_core.commands.train" in graph
    bad = [f"{mods[m].relative_to(ROOT.parent)}:{line} imports {t}"
           for m, deps in graph.items() if not _is_cli(m)
           for t, line in deps.items() if _is_cli(t)]
    assert not bad, "library modules import the CLI:\n" + "\n".join(bad)


def test_the_library_has_no_import_cycle():
    _, graph = _graph()
    cycles = _cycles({m: set(d) for m, d in graph.items()})
    assert not cycles, "import cycles in dmsl_core: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_library_never_imports_the_app():
    mods, graph = _graph()
    bad = [f"{mods[m].relative_to(ROOT.parent)}:{line} imports {t}"
           for m, deps in graph.items() for t, line in deps.items()
           if t == "app" or t.startswith("app.") or t.split(".")[0] in ("PySide6", "pyqtgraph", "shiboken6")]
    assert not bad, "\n".join(bad)
