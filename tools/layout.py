"""The code's shape, checked by `make test`: no import cycle, no oversized module and no
import by a bare folder name (the wheel installs only `crm_renewals`) in the shipped packages
(connector/, webhooks/, jobs/, console/).

    python -m tools.layout [--max-lines N]

Every import counts, also one inside a function (a cycle deferred to call time is still a
cycle), except under `if TYPE_CHECKING:` (annotations only, never run)."""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

PACKAGES = ("connector", "webhooks", "jobs", "console")
#: the one import name the wheel installs: each package imports as crm_renewals.<folder>
PREFIX = "crm_renewals"
MAX_LINES = 400


def modules(root: Path) -> dict[str, Path]:
    """Dotted name -> file of every module in the shipped packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((PREFIX, *parts))] = path
    return found


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The shipped modules `name` imports (a `from package import module` names the module)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    bare: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
                bare.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if not child.level:
                    bare.add(base)
                if child.level:
                    here = name.split(".") if is_package else name.split(".")[:-1]
                    here = here[: len(here) - (child.level - 1)]
                    base = ".".join([*here, base] if base else here)
                for alias in child.names:
                    full = f"{base}.{alias.name}"
                    found.add(full if full in known else base)
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    unshipped = sorted(m for m in bare if m.split(".")[0] in PACKAGES)
    if unshipped:
        raise NameError(f"imports {', '.join(unshipped)}: the wheel installs it as {PREFIX}.*")
    return {m for m in found if m in known and m != name}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each strongly connected group of more than one module (Tarjan), as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(groups)


def problems(root: Path, max_lines: int = MAX_LINES) -> list[str]:
    known = modules(root)
    out = []
    for path in known.values():
        lines = len(path.read_text().splitlines())
        if lines > max_lines:
            out.append(f"{path.relative_to(root)}: {lines} lines (at most {max_lines})")
    graph = {}
    for name, path in known.items():
        try:
            graph[name] = imports(name, path, known)
        except NameError as exc:
            out.append(f"{path.relative_to(root)}: {exc}")
            graph[name] = set()
    for group in cycles(graph):
        out.append("import cycle: " + " <-> ".join(group))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.layout", description=__doc__)
    parser.add_argument("--max-lines", type=int, default=MAX_LINES)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args(argv)
    found = problems(args.root, args.max_lines)
    for line in found:
        print(line)
    count = len(modules(args.root))
    print(f"{count} modules: " + (f"{len(found)} to fix" if found else "layout OK"))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
