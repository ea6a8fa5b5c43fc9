"""docs/DESIGN.md's worked examples are the code the "add one" tests run: each example block follows a marker naming
its test file and must stand in that file as it is; and nothing in the project points at a design document outside
the repository."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DESIGN = ROOT / "docs" / "DESIGN.md"
EXAMPLE = re.compile(r"<!-- example: (?P<path>\S+) -->\n```python\n(?P<code>.*?)```", re.S)


def test_every_worked_example_is_the_code_its_test_runs():
    examples = list(EXAMPLE.finditer(DESIGN.read_text()))
    assert {m["path"] for m in examples} == {
        "tests/e2e/test_add_a_method.py",
        "tests/e2e/test_add_a_backend.py",
        "tests/e2e/test_add_a_suite.py",
        "tests/e2e/test_add_a_tracker.py",
    }
    for m in examples:
        assert m["code"].strip() in (ROOT / m["path"]).read_text(), f"docs/DESIGN.md's example of {m['path']} differs"


def test_nothing_points_outside_the_repository_for_the_design():
    pointing = []
    for path in [*ROOT.glob("*.md"), *ROOT.glob("docs/*.md"), *ROOT.glob("*.py"), *ROOT.rglob("*/**/*.py")]:
        if "build" in path.parts or ".git" in path.parts:
            continue
        text = path.read_text(errors="replace")
        if "../shared" in text or "shared/DESIGN" in text:
            pointing.append(str(path.relative_to(ROOT)))
    assert pointing == [str(Path(__file__).relative_to(ROOT))]  # this test names what it looks for
