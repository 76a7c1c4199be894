"""The house keeps its floors (DESIGN.md, Layout): ``muster`` on the ground; ``edge`` and
``controller`` side by side on it, never importing each other; ``provisioning`` on ``edge``.
Every import counts, those inside functions included, and no module imports in a circle."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("muster", "edge", "controller", "provisioning")

# package -> the packages of ours it may import (besides itself)
ALLOWED: dict[str, frozenset[str]] = {
    "muster": frozenset(),
    "edge": frozenset({"muster"}),
    "controller": frozenset({"muster"}),
    "provisioning": frozenset({"muster", "edge"}),
}


@dataclass(frozen=True, slots=True)
class ImportEdge:
    module: str  # the importing module, dotted
    target: str  # the imported module, dotted (ours only)
    line: int

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.target}"


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "migrations" in path.parts and "versions" in path.parts:
                continue  # Alembic revisions are loaded by Alembic, not imported
            found[_module_name(path, root)] = path
    return found


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(root: Path) -> Iterator[ImportEdge]:
    """Every import between our modules in the tree at ``root``, wherever it is written."""
    modules = _modules(root)
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(module, is_package, node)
                # "from pkg import sub" imports the submodule when there is one
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            for target in targets:
                if target.split(".")[0] in PACKAGES:
                    yield ImportEdge(module, _known(target, modules), node.lineno)


def _known(target: str, modules: dict[str, Path]) -> str:
    """The longest prefix of ``target`` that is one of our modules."""
    parts = target.split(".")
    while parts and ".".join(parts) not in modules:
        parts.pop()
    return ".".join(parts) or target


def floor_violations(root: Path) -> list[ImportEdge]:
    bad = []
    for edge in imports_of(root):
        source, target = edge.module.split(".")[0], edge.target.split(".")[0]
        if source != target and target not in ALLOWED[source]:
            bad.append(edge)
    return bad


def import_cycles(root: Path) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {m: set() for m in _modules(root)}
    for edge in imports_of(root):
        if edge.target in graph and edge.target != edge.module:
            # A package's __init__ re-exporting its own modules is how a package is built, not
            # a circle between rooms.
            if edge.module and edge.target.startswith(edge.module + "."):
                continue
            graph[edge.module].add(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = 0

    def visit(start: str) -> None:
        nonlocal counter
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        groups.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return groups


def test_each_package_imports_only_the_floors_below_it() -> None:
    """muster imports none of ours; edge and controller only muster; provisioning muster and
    edge. Imports inside functions count: hiding one there does not move a boundary."""
    bad = floor_violations(ROOT)
    assert not bad, "imports across the floors:\n" + "\n".join(map(str, bad))


def test_no_module_imports_in_a_circle() -> None:
    """A circle between modules means a boundary in the wrong place."""
    cycles = import_cycles(ROOT)
    assert not cycles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"edge/daemon.py": "import controller.app\n"}, "edge.daemon:1 imports controller"),
        (
            {"edge/daemon.py": "def f():\n    from controller import app\n"},
            "edge.daemon:2 imports controller",
        ),
        ({"muster/x.py": "from edge import y\n"}, "muster.x:1 imports edge"),
        ({"controller/x.py": "import provisioning.cli\n"}, "controller.x:1 imports provisioning"),
        ({"edge/x.py": "from provisioning import enroll\n"}, "edge.x:1 imports provisioning"),
    ],
)
def test_the_checker_catches_an_added_import(
    tmp_path: Path, files: dict[str, str], expected: str
) -> None:
    """The test above is not vacuous: an import from controller added to an edge module (even
    inside a function), or any other upward arrow, is reported with its line."""
    found = [str(e) for e in floor_violations(_tree(tmp_path, files))]
    assert any(line.startswith(expected) for line in found), found


def test_the_checker_catches_a_circle(tmp_path: Path) -> None:
    """Two modules importing each other, one of them inside a function, are a circle."""
    root = _tree(
        tmp_path,
        {
            "controller/a.py": "from controller import b\n",
            "controller/b.py": "def f():\n    from controller.a import x\n",
        },
    )
    assert import_cycles(root) == [["controller.a", "controller.b"]]
