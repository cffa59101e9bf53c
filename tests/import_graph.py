"""The project's own import graph, read from the source (every import, at module level or inside a function):
for the layout tests and for checking that dvc.yaml lists the code each stage runs."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("memskill_cli", "stages")


def module_file(name: str) -> Path | None:
    """The file of a first-party module name (a package's __init__.py), or None."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def imports(path: Path) -> set[Path]:
    """First-party files that `path` imports."""
    found: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            names = [n if module_file(n) else node.module for n in names]
        else:
            continue
        found.update(f for f in map(module_file, names) if f is not None and f != path)
    return found


def graph() -> dict[Path, set[Path]]:
    files = [f for package in PACKAGES for f in (ROOT / package).rglob("*.py")]
    return {f: imports(f) for f in files}


def closure(entries: list[Path], edges: dict[Path, set[Path]]) -> set[Path]:
    seen: set[Path] = set()
    todo = list(entries)
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(edges.get(current, ()))
    return seen


def cycles(edges: dict[Path, set[Path]]) -> list[list[Path]]:
    """Every strongly connected component of more than one file (Tarjan)."""
    index: dict[Path, int] = {}
    low: dict[Path, int] = {}
    stack: list[Path] = []
    on_stack: set[Path] = set()
    found: list[list[Path]] = []

    def visit(node: Path) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found
