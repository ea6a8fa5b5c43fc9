"""Data flows one way: a stage (train, export, calib, serve) imports only common/ and itself; common/ no stage.

Composition of stages lives in cli.py and workflows/. The check parses every module, so imports inside functions
and under TYPE_CHECKING count too.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("train", "export", "calib", "serve")


def imported_packages(path: Path) -> set[str]:
    """The top-level package of every absolute import in a module."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", [*STAGES, "common"])
def test_a_package_imports_no_other_stage(package):
    allowed = {package, "common"}
    offenders = {
        str(path.relative_to(ROOT)): sorted((imported_packages(path) & {*STAGES, "cli", "workflows"}) - allowed)
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_check_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from serve.backends import open_runner\n    import calib.int8\n")
    assert imported_packages(module) == {"serve", "calib"}
