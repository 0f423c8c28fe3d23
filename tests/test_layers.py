"""The import layers: the import-linter contracts in ``pyproject.toml`` hold (and would catch a
violation), and no package has an import cycle -- counting imports inside functions and under
``TYPE_CHECKING``, which never fail at import time and so hide cycles until someone moves code."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("monitor", "detectors", "slices", "ui", "simulator")
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}  # the tree at root, not the installed one
    return subprocess.run([LINT_IMPORTS, "--no-cache", "--no-logo"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def test_import_linter_contracts_hold():
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 kept, 0 broken" in done.stdout, done.stdout


def test_import_linter_catches_the_core_importing_a_detector(tmp_path):
    for package in PACKAGES:
        for f in (ROOT / package).rglob("*.py"):
            target = tmp_path / f.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, target)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    windows = tmp_path / "monitor" / "core" / "windows.py"
    windows.write_text(windows.read_text() + "\n\ndef _late():\n    import detectors.fairness\n")
    done = lint_imports(tmp_path)
    assert done.returncode != 0
    assert "monitor.core is not allowed to import detectors" in done.stdout, done.stdout


def modules(root: Path, packages: Iterable[str] = PACKAGES) -> dict[str, Path]:
    found = {}
    for package in packages:
        for f in (root / package).rglob("*.py"):
            rel = f.relative_to(root).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            found[".".join(parts)] = f
    return found


def import_graph(mods: Mapping[str, Path]) -> dict[str, set[str]]:
    """Module -> the modules it imports anywhere in its code (functions and TYPE_CHECKING
    blocks included). ``from a import b`` counts as importing ``a.b`` if that is a module,
    else ``a``."""
    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, *([base] if base else [])])
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                           for a in node.names]
            else:
                continue
            deps |= {r for t in targets if (r := resolve(t)) and r != name}
        graph[name] = deps
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
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


def test_no_import_cycle_counting_function_level_and_type_checking_imports():
    graph = import_graph(modules(ROOT))
    assert len(graph) > 100 and "monitor.core.checkpoint" in graph["monitor.alerting.engine"]
    assert cycles(graph) == []


def test_the_cycle_finder_sees_a_cycle_hidden_in_a_function_and_type_checking(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from pkg import b\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                              "    from .c import C\n")
    (pkg / "c.py").write_text("import pkg.a\n")
    (pkg / "d.py").write_text("from pkg.a import f\n")
    graph = import_graph(modules(tmp_path, ["pkg"]))
    assert graph["pkg.d"] == {"pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]


def test_sql_is_written_only_in_the_store_and_the_ui_queries():
    """Elsewhere SQLAlchemy appears only as types (``Engine``, ``Connection``)."""
    allowed = ("monitor.store", "ui.queries")
    offenders = []
    for name, path in modules(ROOT).items():
        if name.startswith(allowed):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
                offenders += [f"{name}: {a.name}" for a in node.names
                              if a.name not in {"Engine", "Connection"}]
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                offenders += [f"{name}: {m}" for m in mods if (m or "").startswith("psycopg")]
    assert offenders == []


def test_every_package_says_what_it_owns_and_may_import():
    for name, path in modules(ROOT, (*PACKAGES, "migrations")).items():
        if path.name == "__init__.py":
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            assert len(doc) > 60 and "import" in doc.lower(), f"{name}: {doc!r}"
