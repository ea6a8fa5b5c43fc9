"""`cli.py checks` refuses bad input with exit status 2, one line on stderr naming the option and what is wrong, no
traceback, and no file created or changed (see conftest.assert_refused): before any check runs."""

import pytest

from tests.cli.conftest import PROC_DIR, W, assert_refused, table, usage

pytestmark = pytest.mark.slow  # the session's world trains and exports a run

CASES = [
    ("timeout-0", ["--timeout", "0"], "--timeout must be a finite number above 0, got 0.0"),
    ("timeout-negative", ["--timeout", "-5"], "--timeout must be a finite number above 0, got -5.0"),
    ("timeout-nan", ["--timeout", "nan"], "--timeout must be a finite number above 0, got nan"),
    ("timeout-not-a-number", ["--timeout", "soon"], usage("--timeout")),
    ("json-is-a-folder", ["--json", f"{W}/run"], f"--json {W}/run is a folder"),
    ("json-not-ours", ["--json", f"{W}/run/run.json"], "exists and is not a checks file of ours: refusing to over"),
    ("json-under-proc", ["--json", f"{PROC_DIR}/checks.json"], f"cannot create --json folder {PROC_DIR}"),
    ("keep-is-a-file", ["--keep", f"{W}/run/run.json"], "--keep folder"),
    ("keep-not-empty", ["--keep", f"{W}/run"], f"--keep {W}/run is not empty: name a new folder"),
    ("keep-under-proc", ["--keep", f"{PROC_DIR}/work"], f"cannot create --keep folder {PROC_DIR}/work"),
]


@pytest.mark.parametrize(("name", "args", "message"), table(CASES))
def test_checks_refuses_bad_input(name, args, message, cwd, world):
    assert_refused(["checks", *args], message, cwd, world)
