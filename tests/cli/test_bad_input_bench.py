"""`cli.py bench` (every artifact of an export folder on every runtime here, against its model) refuses bad input
with exit status 2, one line on stderr naming the option or file and what is wrong, no traceback, and no file
created or changed (see conftest.assert_refused)."""

import pytest

from tests.cli.conftest import W, assert_refused, table, usage

pytestmark = pytest.mark.slow  # the session's world trains and exports a run

SMALL = ["--data", f"{W}/images"]  # 60 images: should a case not be refused, its evaluation is quick

CASES = [
    ("folder-missing", [f"{W}/nope"], f"no such export folder: {W}/nope"),
    ("folder-without-exports", [f"{W}/empty"], f"{W}/empty holds no exported model (model.onnx"),
    (
        "not-a-run-without-reference",
        [f"{W}/exported-elsewhere"],
        "is not a run directory: name the model its artifacts",
    ),
    ("int8-gate-negative", [f"{W}/run", *SMALL, "--max-drop-int8", "-1"], "--max-drop-int8 must be a finite number"),
    ("gate-nan", [f"{W}/run", *SMALL, "--max-drop", "nan"], "--max-drop must be a finite number at least 0, got nan"),
    ("gate-not-a-number", [f"{W}/run", "--max-drop", "one"], usage("--max-drop")),
    ("report-over-a-foreign-file", [f"{W}/run", *SMALL, "--out", f"{W}/notes.json"], "exists and is not a report of"),
    (
        "reference-missing",
        [f"{W}/run", *SMALL, "--reference", f"{W}/nope"],
        f"not a run directory (no run.json): {W}/nope",
    ),
    ("data-missing", [f"{W}/run", "--data", f"{W}/nope"], f"no such dataset: {W}/nope"),
    ("runtime-is-not-bench-s", [f"{W}/run", "--runtime", "openvino"], usage("--runtime")),
]


@pytest.mark.parametrize(("name", "args", "message"), table(CASES))
def test_bench_refuses_bad_input(name, args, message, cwd, world):
    assert_refused(["bench", *args], message, cwd, world)
