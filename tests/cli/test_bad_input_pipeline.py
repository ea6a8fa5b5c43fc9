"""`cli.py pipeline` refuses bad input with exit status 2, one line on stderr naming the option and what is wrong,
no traceback, and no file created or changed (see conftest.assert_refused)."""

import pytest

from tests.cli.conftest import assert_refused, table, usage

pytestmark = pytest.mark.slow  # the session's world trains and exports a run; the set takes ~65 s

ONE_STEP = ["--max-steps", "1"]  # should a case not be refused, the main job trains one step, not ten epochs

CASES = [
    ("epochs-0", [*ONE_STEP, "--epochs", "0"], "--epochs must be a finite number at least 1, got 0"),
    ("epochs-negative", [*ONE_STEP, "--epochs", "-1"], "--epochs must be a finite number at least 1, got -1"),
    ("epochs-not-a-number", [*ONE_STEP, "--epochs", "ten"], usage("--epochs")),
    ("max-steps-0", ["--max-steps", "0"], "--max-steps must be a finite number at least 1, got 0"),
    ("max-steps-negative", ["--max-steps", "-2"], "--max-steps must be a finite number at least 1, got -2"),
    ("loss-unknown", [*ONE_STEP, "--loss", "magic"], "unknown loss 'magic' (choose from proreg, kd, ce, tes, flyp)"),
    ("recipe-unknown", [*ONE_STEP, "--recipe", "magic"], "unknown recipe 'magic' (choose from ce, kd, proreg,"),
    ("recipe-bad-wise", [*ONE_STEP, "--recipe", "kd+wise2"], "the WiSE-FT alpha must lie in [0, 1], got 2"),
    ("recipe-and-loss", [*ONE_STEP, "--recipe", "ce", "--loss", "kd"], "give --recipe or --loss, not both"),
    ("max-drop-negative", [*ONE_STEP, "--max-drop", "-1"], "--max-drop must be a finite number at least 0, got -1.0"),
    ("max-drop-nan", [*ONE_STEP, "--max-drop", "nan"], "--max-drop must be a finite number at least 0, got nan"),
    ("max-drop-inf", [*ONE_STEP, "--max-drop", "inf"], "--max-drop must be a finite number at least 0, got inf"),
    (
        "max-drop-int8-inf",
        [*ONE_STEP, "--max-drop-int8", "inf"],
        "--max-drop-int8 must be a finite number at least 0, got inf",
    ),
    (
        "max-drop-int8-negative",
        [*ONE_STEP, "--max-drop-int8", "-0.5"],
        "--max-drop-int8 must be a finite number at least 0, got -0.5",
    ),
    pytest.param(
        "seed-huge",
        [*ONE_STEP, "--seed", "99999999999999999999999"],
        "--seed must be a finite number at least 0 and at most 4294967295",
        id="seed-huge",
    ),
    ("runs-is-a-file", ONE_STEP, "cannot create run directory runs/"),  # the working directory holds a file `runs`
]

CWD_FILES = {"runs-is-a-file": {"runs": "a file where the runs folder would go\n"}}  # the working directory's files


@pytest.mark.parametrize(("name", "args", "message"), table(CASES))
def test_pipeline_refuses_bad_input(name, args, message, cwd, world):
    assert_refused(["pipeline", *args], message, cwd, world, CWD_FILES.get(name))
