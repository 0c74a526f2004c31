"""The package's layering, read from the source with ``ast`` (nothing is imported).

- No import cycles between ``kinema`` modules. Imports under ``if TYPE_CHECKING:`` do not count (they never
  run); imports inside functions do (they run, only later). Importing ``a.b.c`` counts as importing that
  module, not its parent packages: those are already being imported when a package imports its own modules.
- The ``kinema`` command groups (``kinema.cli.*``) import only ``kinema.cli.common``, never each other.
- ``kinema.config`` does not depend on ``kinema.services``.
- bench/ and testkit/ never import ``tests``: what they share with the tests lives in testkit/.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

ALLOWED_CYCLES: set[frozenset[str]] = set()
"""Known cycles, each with the reason it is tolerated. Remove an entry once its cycle is gone."""


def _module_name(path: Path, base: Path) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _kinema_modules() -> dict[str, Path]:
    # Alembic's migrations are scripts run by alembic, not modules anything imports.
    return {
        _module_name(p, SRC): p
        for p in sorted((SRC / "kinema").rglob("*.py"))
        if "migrations" not in p.relative_to(SRC).parts
    }


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, package: str, *, type_checking: bool = False) -> Iterator[tuple[str, list[str]]]:
    """Every import in ``path``, anywhere in the file: ``(module, [])`` for ``import module`` and
    ``(module, names)`` for ``from module import names``, relative imports resolved against ``package``.

    Without ``type_checking``, the bodies of ``if TYPE_CHECKING:`` are skipped.
    """

    def walk(node: ast.AST) -> Iterator[tuple[str, list[str]]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and not type_checking and _is_type_checking(child):
                for other in child.orelse:
                    yield from walk_one(other)
            else:
                yield from walk_one(child)

    def walk_one(node: ast.AST) -> Iterator[tuple[str, list[str]]]:
        if isinstance(node, ast.Import):
            yield from ((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                parts = package.split(".")
                module = ".".join([*parts[: len(parts) - (node.level - 1)], *([module] if module else [])])
            yield module, [alias.name for alias in node.names]
        else:
            yield from walk(node)

    return walk(ast.parse(path.read_text(), filename=str(path)))


def _import_graph() -> dict[str, set[str]]:
    """Module -> the ``kinema`` modules it imports. ``from a import b`` is an edge to module ``a.b`` when
    there is one, else to ``a``."""
    modules = _kinema_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for module, names in _imports(path, package):
            if not names:
                targets.add(module)
            for imported in names:
                targets.add(f"{module}.{imported}" if f"{module}.{imported}" in modules else module)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def _imported_modules(path: Path, package: str) -> set[str]:
    """Every module ``path`` names in an import, TYPE_CHECKING ones included (``from a import b``: ``a``)."""
    return {module for module, _ in _imports(path, package, type_checking=True)}


def _cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in graph:
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(frozenset(component))
    return found


def test_the_checker_sees_imports_of_every_kind(tmp_path: Path) -> None:
    """Module-level, function-local and relative imports count; ``if TYPE_CHECKING:`` bodies do not."""
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "import kinema.a\n"
        "from . import sibling\n"
        "if TYPE_CHECKING:\n"
        "    from kinema.hidden import T\n"
        "else:\n"
        "    import kinema.shown\n"
        "def f():\n"
        "    from ..up import thing\n"
    )
    found = dict(_imports(source, "kinema.pkg"))
    assert found == {
        "typing": ["TYPE_CHECKING"],
        "kinema.a": [],
        "kinema.pkg": ["sibling"],
        "kinema.shown": [],
        "kinema.up": ["thing"],
    }
    assert "kinema.hidden" in dict(_imports(source, "kinema.pkg", type_checking=True))
    graph = _import_graph()
    assert "kinema.engine.tiny" in graph["kinema.engine.hub"]  # inside pull()
    assert {"kinema.cli.serve", "kinema.cli.accounts"} <= graph["kinema.cli"]  # `from package import module`


def test_no_import_cycles() -> None:
    cycles = set(_cycles(_import_graph()))
    unexpected = cycles - ALLOWED_CYCLES
    assert not unexpected, f"import cycles: {[sorted(c) for c in unexpected]}"
    gone = ALLOWED_CYCLES - cycles
    assert not gone, f"no longer cycles, remove them from ALLOWED_CYCLES: {[sorted(c) for c in gone]}"


def test_cli_command_groups_import_only_the_common_module() -> None:
    modules = _kinema_modules()
    groups = [
        n for n in modules if n.startswith("kinema.cli.") and n not in ("kinema.cli.common", "kinema.cli.__main__")
    ]
    assert {"kinema.cli.serve", "kinema.cli.accounts", "kinema.cli.report", "kinema.cli.audit"} <= set(groups)
    for name in [*groups, "kinema.cli.common"]:
        allowed = set() if name == "kinema.cli.common" else {"kinema.cli.common"}
        cli = {
            m
            for m in _imported_modules(modules[name], "kinema.cli")
            if m == "kinema.cli" or m.startswith("kinema.cli.")
        }
        assert cli <= allowed, f"{name} imports {sorted(cli - allowed)}"


def test_config_does_not_depend_on_services() -> None:
    imported = _imported_modules(SRC / "kinema" / "config.py", "kinema")
    offending = sorted(m for m in imported if m == "kinema.services" or m.startswith("kinema.services."))
    assert not offending, f"kinema.config imports {offending}"


def test_bench_and_testkit_never_import_tests() -> None:
    files = sorted((ROOT / "bench").glob("*.py")) + sorted((ROOT / "testkit").rglob("*.py"))
    assert files
    for path in files:
        package = _module_name(path, ROOT).rpartition(".")[0]
        imported = _imported_modules(path, package)
        offending = sorted(m for m in imported if m == "tests" or m.startswith("tests."))
        assert not offending, f"{path.relative_to(ROOT)} imports {offending}"
