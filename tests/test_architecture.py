"""Data flows one way: a stage (train, export, calib, serve) imports only data/, common/ and itself; data/ and
trackers/ only common/; common/ nothing of ours. Composition of stages lives in cli.py and workflows/. No module
imports itself back through others (no import circle, at any level), and no function outside the tests is longer
than 60 lines.

The checks parse every module, so imports inside functions and under TYPE_CHECKING count too.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("train", "export", "calib", "serve")
OURS = {*STAGES, "common", "data", "trackers", "cli", "cli_options", "workflows"}
ALLOWED = {
    **{stage: {stage, "data", "common"} for stage in STAGES},
    "data": {"data", "common"},
    "trackers": {"trackers", "common"},
    "common": {"common"},
}
SOURCES = [*STAGES, "common", "data", "trackers", "workflows"]
MAX_FUNCTION_LINES = 60


def imported_modules(path: Path) -> set[str]:
    """The module of every absolute import in a file (`from a.b import c` gives a.b and, if it is one, a.b.c)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def imported_packages(path: Path) -> set[str]:
    """The top-level package of every absolute import in a module."""
    return {name.split(".")[0] for name in imported_modules(path)}


def module_files() -> dict[str, Path]:
    """Every module of ours by dotted name."""
    files = {"cli": ROOT / "cli.py", "cli_options": ROOT / "cli_options.py"}
    for package in SOURCES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


@pytest.mark.parametrize("package", [*STAGES, "data", "common"])
def test_a_package_imports_only_what_it_may(package):
    offenders = {
        str(path.relative_to(ROOT)): sorted((imported_packages(path) & OURS) - ALLOWED[package])
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_module_imports_itself_back():
    """No circle through imports of any kind (inside functions and under TYPE_CHECKING too): a circle means two
    modules that are one concern, or a contract in the wrong one."""
    files = module_files()
    graph = {name: {m for m in imported_modules(path) if m in files and m != name} for name, path in files.items()}
    cycles = []
    for start in graph:
        stack, seen = [(start, [start])], set()
        while stack:
            node, trail = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    cycles.append(" -> ".join([*trail, start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*trail, nxt]))
    assert cycles == []


def test_no_function_is_longer_than_sixty_lines():
    long = {}
    for module, path in module_files().items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long[f"{module}.{node.name}"] = f"{path.relative_to(ROOT)}:{node.lineno} ({length} lines)"
    assert long == {}


def test_the_checks_see_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from serve.backends import open_runner\n    import calib.int8\n")
    assert imported_packages(module) == {"serve", "calib"}


def test_every_package_is_installed():
    """pyproject lists packages by name (setuptools does not add subpackages): a new one left out of the list imports
    from a checkout but not from a wheel."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in Python 3.11+")
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for source in SOURCES
        for init in (ROOT / source).rglob("__init__.py")
    }
    assert found == listed
