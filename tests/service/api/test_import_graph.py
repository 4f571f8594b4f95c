"""The modules of `usqa.service.api` import each other at the top of the file only, and never in a circle.

A function-local import is how a circle hides: the cycle is still there, only moved from import time to
call time. Read from the source with `ast`, so a cycle fails here before it fails an import.
"""

from __future__ import annotations

import ast
from pathlib import Path

from ..conftest import REPO_ROOT

PACKAGE = "usqa.service.api"
PACKAGE_DIR = REPO_ROOT / "usqa" / "service" / "api"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE_DIR.rglob("*.py"))}


def imported_modules(node: ast.Import | ast.ImportFrom, importer: str) -> list[str]:
    """The `usqa.service.api` modules an import statement names (a `from package import module` names the module)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: resolved against the importing module's package
            package = importer if MODULES[importer].name == "__init__.py" else importer.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{base}" if base else package
        named = [f"{base}.{alias.name}" for alias in node.names]
        names = [name if name in MODULES else base for name in named]
    return sorted({name for name in names if name == PACKAGE or name.startswith(PACKAGE + ".")})


def imports_of(module: str) -> tuple[set[str], list[str]]:
    """(every module `module` imports, `file:line` of each import of the package not at its top level)."""
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    top_level = {id(node) for node in tree.body}
    imported: set[str] = set()
    nested: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        targets = imported_modules(node, module)
        imported.update(targets)
        if targets and id(node) not in top_level:
            where = MODULES[module].relative_to(REPO_ROOT)
            nested.append(f"{where}:{node.lineno} imports {', '.join(targets)}")
    return imported, nested


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` as [a, b, ..., a], or None."""
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return [*visiting[visiting.index(node) :], node]
        if node in done:
            return None
        visiting.append(node)
        for target in sorted(graph.get(node, ())):
            cycle = visit(target)
            if cycle is not None:
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start)
        if cycle is not None:
            return cycle
    return None


def test_the_package_has_its_modules() -> None:
    assert {f"{PACKAGE}.app", f"{PACKAGE}.errors", f"{PACKAGE}.routes.assess"} <= MODULES.keys()


def test_no_module_imports_another_inside_a_function() -> None:
    nested = [line for module in MODULES for line in imports_of(module)[1]]
    assert nested == [], "import at the top of the module; to break a cycle, move the shared thing down"


def test_no_import_cycle() -> None:
    # Nested imports count: they move a circle from import time to call time, they do not remove it.
    # Importing `usqa.service.api.x` runs the package's `__init__` first; that implicit edge is left out, as
    # import-linter does, or every module would sit in one circle with the app the package exports.
    graph = {module: imports_of(module)[0] - {module} for module in MODULES}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_checks_see_a_function_local_import_and_a_cycle() -> None:
    function = ast.parse("def f():\n    from usqa.service.api.deps import ServiceDep\n").body[0]
    assert isinstance(function, ast.FunctionDef) and isinstance(function.body[0], ast.ImportFrom)
    assert imported_modules(function.body[0], f"{PACKAGE}.errors") == [f"{PACKAGE}.deps"]
    assert imported_modules(ast.ImportFrom("routes", [ast.alias("scan")], 1), f"{PACKAGE}.app") == [
        f"{PACKAGE}.routes.scan"
    ]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
