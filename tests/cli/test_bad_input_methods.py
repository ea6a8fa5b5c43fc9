"""The method options of `cli.py train` (losses, heads, LP-FT, TeS, recipes), `cli.py wise` and `cli.py compare`
refuse bad input with exit status 2, one line on stderr naming the option and what is wrong, no traceback, and no
file created or changed (see conftest.assert_refused)."""

import json
import shutil
from pathlib import Path

import pytest

from tests.cli.conftest import W, assert_refused, snapshot, table
from train.recipes import RECIPES

pytestmark = pytest.mark.slow  # the session's world trains and exports a run

CHOICES = ", ".join(RECIPES)
# Fast, small inputs for cases about something else: should a case not be refused, it trains one step on 60 images.
FAST = ["--data", f"{W}/images", "--max-steps", "1"]
LP_FT = "LP-FT fits a trainable head first, then fine-tunes: it needs --head trainable or linear and a fraction below 1"

TRAIN_CASES = [
    ("tes-with-text-head", [*FAST, "--loss", "tes", "--head", "text"], "head 'text' does not go with loss 'tes'"),
    (
        "head-init-random-with-text-head",
        [*FAST, "--head-init", "random"],
        "--head-init random: only a linear head can start anywhere but the text classifier",
    ),
    ("head-init-unknown", [*FAST, "--head", "linear", "--head-init", "zeros"], "unknown head init 'zeros'"),
    ("head-unknown", [*FAST, "--head", "mlp"], "unknown head 'mlp' (choose from text, trainable, linear)"),
    ("lp-fraction-1", [*FAST, "--lp-fraction", "1", "--head", "trainable"], f"--lp-fraction 1.0: {LP_FT}"),
    ("lp-fraction-with-text-head", [*FAST, "--lp-fraction", "0.3"], f"--lp-fraction 0.3: {LP_FT}"),
    (
        "lp-fraction-negative",
        [*FAST, "--lp-fraction", "-0.1", "--head", "trainable"],
        "--lp-fraction must be a finite number at least 0 and at most 1, got -0.1",
    ),
    (
        "tes-lv-above-1",
        [*FAST, "--loss", "tes", "--tes-lv", "1.5"],
        "tes_lv must be a finite number at least 0 and at most 1, got 1.5",
    ),
    (
        "tes-lt-negative",
        [*FAST, "--loss", "tes", "--tes-lt", "-1"],
        "tes_lt must be a finite number at least 0, got -1.0",
    ),
    ("tes-tau-0", [*FAST, "--loss", "tes", "--tes-tau", "0"], "tes_tau must be a finite number above 0, got 0.0"),
    ("tes-tau-nan", [*FAST, "--loss", "tes", "--tes-tau", "nan"], "tes_tau must be a finite number above 0, got nan"),
    ("head-lr-scale-0", [*FAST, "--head", "trainable", "--head-lr-scale", "0"], "--head-lr-scale must be a finite"),
    ("recipe-unknown", [*FAST, "--recipe", "magic"], f"unknown recipe 'magic' (choose from {CHOICES})"),
    (
        "recipe-wise-alpha-2",
        [*FAST, "--recipe", "proreg+wise2"],
        "recipe 'proreg+wise2': the WiSE-FT alpha must lie in [0, 1], got 2",
    ),
    (
        "recipe-wise-alpha-1.5",
        [*FAST, "--recipe", "proreg+wise1.5"],
        "recipe 'proreg+wise1.5': the WiSE-FT alpha must lie in [0, 1], got 1.5",
    ),
    ("recipe-wise-alpha-abc", [*FAST, "--recipe", "proreg+wiseabc"], "'proreg+wiseabc'"),
    # a method option typed beside a recipe changes the recipe's settings, and is checked like any other
    ("recipe-tes-with-text-head", [*FAST, "--recipe", "tes", "--head", "text"], "head 'text' does not go with loss"),
    ("recipe-lp-ft-with-text-head", [*FAST, "--recipe", "lp-ft", "--head", "text"], f"--lp-fraction 0.5: {LP_FT}"),
    (
        "recipe-wise-with-random-head",
        [*FAST, "--recipe", "tes+wise", "--head-init", "random"],
        "WiSE-FT interpolates towards the zero-shot head: a random linear head has none",
    ),
]


@pytest.mark.parametrize(("name", "args", "message"), table(TRAIN_CASES))
def test_train_refuses_bad_method_options(name, args, message, cwd, world):
    assert_refused(["train", *args], message, cwd, world)


ALPHA_RANGE = "alpha must be a finite number at least 0 and at most 1"

WISE_CASES = [
    ("alpha-1.5", ["--checkpoint", f"{W}/run", "--alpha", "1.5"], f"{ALPHA_RANGE}, got 1.5"),
    ("alpha-negative-in-sweep", ["--checkpoint", f"{W}/run", "--alpha", "0,-0.5,1"], f"{ALPHA_RANGE}, got -0.5"),
    ("alpha-nan", ["--checkpoint", f"{W}/run", "--alpha", "nan"], f"{ALPHA_RANGE}, got nan"),
    ("alpha-abc", ["--checkpoint", f"{W}/run", "--alpha", "abc"], "--alpha 'abc': give numbers in [0, 1]"),
    ("alpha-empty", ["--checkpoint", f"{W}/run", "--alpha", ","], "--alpha: give at least one number in [0, 1]"),
    ("checkpoint-not-a-run", ["--checkpoint", f"{W}/empty", "--alpha", "0.5"], "not a run directory (no run.json)"),
    ("base-not-a-run", ["--checkpoint", f"{W}/run", "--base", f"{W}/empty"], "not a run directory (no run.json)"),
    (
        "out-holds-a-run",
        ["--checkpoint", f"{W}/run", "--alpha", "0.5", "--out", f"{W}/run-running"],
        f"{W}/run-running already holds a run: give a new --out",
    ),
    (
        "out-is-the-checkpoint",
        ["--checkpoint", f"{W}/run", "--alpha", "0.5", "--out", f"{W}/run"],
        f"{W}/run already holds a run: give a new --out",
    ),
    (
        "sweep-out-holds-a-run",
        ["--checkpoint", f"{W}/run", "--alpha", "0,1", "--data", f"{W}/images", "--out", f"{W}/run-running"],
        f"{W}/run-running already holds a run: give a new --out",
    ),
    (
        "out-is-a-file",
        ["--checkpoint", f"{W}/run", "--alpha", "0.5", "--out", f"{W}/afolder"],
        f"{W}/afolder is a file, not a folder",
    ),
    (
        "data-beside-one-alpha",
        ["--checkpoint", f"{W}/run", "--alpha", "0.5", "--data", f"{W}/images"],
        "--data and --batch-size configure a sweep; one --alpha evaluates nothing",
    ),
    (
        "batch-size-0",
        ["--checkpoint", f"{W}/run", "--batch-size", "0"],
        "batch size must be a finite number at least 1",
    ),
    (
        "checkpoint-unfinished",
        ["--checkpoint", f"{W}/run-running", "--alpha", "0.5", "--out", f"{W}/new"],
        "has not finished training (running): finish or resume it first",
    ),
]


@pytest.mark.parametrize(("name", "args", "message"), table(WISE_CASES))
def test_wise_refuses_bad_input(name, args, message, cwd, world):
    assert_refused(["wise", *args], message, cwd, world)


@pytest.fixture(scope="module")
def other_classes_run(world, tmp_path_factory) -> Path:
    """A copy of the world's run whose run.json lists its classes (and prompts) in reverse order: same architecture,
    another class list. Kept outside the world, which every case snapshots; the test checks it is left alone."""
    run = tmp_path_factory.mktemp("other-classes") / "run"
    shutil.copytree(world / "run", run, ignore=shutil.ignore_patterns("*.onnx", "*.onnx.data"))
    data = json.loads((run / "run.json").read_text())
    data["classifier"]["classes"] = data["classifier"]["classes"][::-1]
    data["classifier"]["prompts"] = data["classifier"]["prompts"][::-1]
    (run / "run.json").write_text(json.dumps(data, indent=2))
    return run


@pytest.mark.parametrize("alphas", ["0.5", "0,0.5,1"], ids=["one-alpha", "sweep"])
def test_wise_refuses_a_base_run_with_other_classes(alphas, other_classes_run, cwd, world):
    before = snapshot(other_classes_run)
    assert_refused(
        ["wise", "--checkpoint", f"{W}/run", "--base", str(other_classes_run), "--alpha", alphas],
        f"cannot interpolate {W}/run with {other_classes_run}: their class list differs",
        cwd,
        world,
    )
    assert snapshot(other_classes_run) == before


# Should a case not be refused, the comparison trains one cell for one step on 60 images and evaluates it on them,
# into a folder of the case's working directory.
EVAL = ["--eval-data", f"id:{W}/images", "--eval-data", f"ood:{W}/images"]
SMALL = ["--data", f"{W}/images", *EVAL, "--max-steps", "1", "--alpha", "0.5"]
ONE_CELL = [*SMALL, "--recipes", "ce", "--seeds", "0"]

COMPARE_CASES = [
    (
        "methods-unknown",
        [*SMALL, "--seeds", "0", "--recipes", "magic"],
        f"unknown recipe 'magic' (choose from {CHOICES})",
    ),
    (
        "methods-one-unknown",
        [*SMALL, "--seeds", "0", "--recipes", "ce,magic"],
        f"unknown recipe 'magic' (choose from {CHOICES})",
    ),
    (
        "methods-with-wise",
        [*SMALL, "--seeds", "0", "--recipes", "proreg+wise"],
        "--recipes proreg+wise: every recipe is measured with WiSE-FT already; name it alone",
    ),
    (
        "methods-with-wise-alpha",
        [*SMALL, "--seeds", "0", "--recipes", "ce,kd+wise0.3"],
        "--recipes kd+wise0.3: every recipe is measured with WiSE-FT already",
    ),
    ("seeds-not-numbers", [*SMALL, "--recipes", "ce", "--seeds", "a"], "--seeds 'a': give comma-separated ints"),
    ("seeds-float", [*SMALL, "--recipes", "ce", "--seeds", "0,1.5"], "--seeds '0,1.5': give comma-separated ints"),
    ("seeds-empty", [*SMALL, "--recipes", "ce", "--seeds", ","], "--seeds: give at least one value"),
    ("wise-alpha-2", [*ONE_CELL, "--wise-alpha", "2"], f"{ALPHA_RANGE}, got 2.0"),
    ("alpha-negative", [*ONE_CELL, "--alpha", "-0.1"], f"{ALPHA_RANGE}, got -0.1"),
    ("alpha-abc", [*ONE_CELL, "--alpha", "abc"], "--alpha 'abc': give numbers in [0, 1]"),
    ("data-missing", [*ONE_CELL, "--data", f"{W}/nope"], f"no such dataset: {W}/nope"),
    ("eval-data-missing", [*ONE_CELL, "--eval-data", f"{W}/nope"], f"no such dataset: {W}/nope"),
    (
        "eval-data-other-classes",
        [*ONE_CELL, "--eval-data", f"{W}/images-pentagon"],
        "dataset 'images-pentagon': classes differ",
    ),
    ("holdout-missing", [*ONE_CELL, "--holdout", f"{W}/nope"], f"no such dataset: {W}/nope"),
    ("out-is-a-file", [*ONE_CELL, "--out", f"{W}/afolder"], f"comparison folder {W}/afolder is a file, not a folder"),
    # checked before the comparison folder is made
    (
        "eval-data-without-ood",
        ["--data", f"{W}/images", "--eval-data", f"{W}/images", "--recipes", "ce", "--seeds", "0"],
        "--eval-data: give at least one ID set and one OOD set (id:SPEC, ood:SPEC)",
    ),
    (
        "eval-data-missing-beside-own-data",
        ["--data", f"{W}/images", "--recipes", "ce", "--seeds", "0"],
        "--eval-data: give the ID and OOD sets to compare on",
    ),
    ("seeds-negative", [*SMALL, "--recipes", "ce", "--seeds", "-1"], "--seed must be a finite number"),
    ("seeds-huge", [*SMALL, "--recipes", "ce", "--seeds", "99999999999"], "--seed must be a finite"),
    ("epochs-0", [*ONE_CELL, "--epochs", "0"], "--epochs must be a finite number at least 1, got 0"),
    ("max-steps-0", [*ONE_CELL, "--max-steps", "0"], "--max-steps must be a finite number at least 1"),
    ("methods-empty", [*SMALL, "--seeds", "0", "--recipes", ","], "--recipes"),
    ("wise-alpha-named", [*ONE_CELL, "--wise-alpha", "2"], "--wise-alpha"),
]


@pytest.mark.parametrize(("name", "args", "message"), table(COMPARE_CASES))
def test_compare_refuses_bad_input(name, args, message, cwd, world):
    assert_refused(["compare", *args], message, cwd, world)  # the comparison folder defaults to runs/compare in cwd
