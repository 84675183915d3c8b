"""The layout holds: the package maps name every module, no function is over 50 lines, the top level stays small,
no module imports another that imports it back, and the README stays a front door. import-linter (the layers
contract in pyproject.toml) and ruff run in .ci/run beside these."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "zoo"
MAX_FUNCTION_LINES = 50
MAX_TOP_LEVEL_MODULES = 12  # besides __init__ and __main__
MAX_README_LINES = 250


def _map(init: Path) -> str:
    return init.read_text().split('"""')[1]


def test_the_package_map_names_every_module():
    layout = _map(PACKAGE / "__init__.py")
    names = sorted(path.name for path in PACKAGE.iterdir()
                   if path.suffix == ".py" and path.name not in ("__main__.py", "__init__.py")
                   or (path / "__init__.py").is_file())
    missing = [name for name in names if not re.search(rf"^\s+{re.escape(name)}/?\s", layout, re.M)]
    assert not missing, f"zoo/__init__.py's package map does not name {missing}"
    for package_dir in (path for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()):
        docstring = _map(package_dir / "__init__.py")
        files = sorted(path.name for path in package_dir.glob("*.py") if path.name != "__init__.py")
        unlisted = [name for name in files if not re.search(rf"^\s+{re.escape(name)}\s", docstring, re.M)]
        assert not unlisted, f"zoo/{package_dir.name}/__init__.py's map does not name {unlisted}"


def _functions() -> list[tuple[str, int]]:
    """(path:line name, lines) of every function and method in zoo/, nested ones included."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno, *(decorator.lineno for decorator in node.decorator_list)])
                found.append((f"{path.relative_to(ROOT)}:{node.lineno} {node.name}", node.end_lineno - first + 1))
    return found


def test_no_function_is_longer_than_50_lines():
    functions = _functions()
    assert len(functions) > 500  # the walk found the code
    long = [(where, lines) for where, lines in functions if lines > MAX_FUNCTION_LINES]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_the_top_level_stays_small():
    modules = sorted(path.name for path in PACKAGE.glob("*.py") if path.name not in ("__init__.py", "__main__.py"))
    assert len(modules) <= MAX_TOP_LEVEL_MODULES, modules


def test_no_module_imports_one_that_imports_it_back():
    grimp = pytest.importorskip("grimp")  # import-linter's graph builder, in the dev extra
    graph = grimp.build_graph("zoo")
    modules = sorted(graph.modules)
    assert len(modules) > 50
    on_stack: dict[str, int] = {}
    done: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:  # depth-first; a module met again on the path closes a cycle
        on_stack[module] = len(path)
        path.append(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported in on_stack:
                cycles.append(path[on_stack[imported]:] + [imported])
            elif imported not in done:
                visit(imported, path)
        path.pop()
        del on_stack[module]
        done.add(module)

    for module in modules:
        if module not in done:
            visit(module, [])
    assert not cycles, f"import cycles: {cycles[:5]}"


def test_the_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md is {len(lines)} lines; the rest belongs in docs/"
