"""`cli.py export` refuses bad input with exit status 2, one line on stderr naming the option or file and what is
wrong, no traceback, and no file created or changed (see conftest.assert_refused)."""

import pytest

from tests.cli.conftest import PROC_DIR, W, assert_refused, table, usage

pytestmark = pytest.mark.slow  # the session's world trains and exports a run; the set takes ~65 s

# The finished run, exported into the case's working directory: should a case not be refused, its files land there.
RUN = ["--checkpoint", f"{W}/run", "--out", "exported"]
INT8 = [*RUN, "--int8"]
WARNS_PER_IMAGE = (
    "refused with the right line, but only after 24 'warning: image not readable: ...' lines, one per image: the "
    "{what} images are read with read_batch (which logs every unreadable image) without check_some_readable first, "
    "so stderr has 25 lines"
)

CASES = [
    # the run to export
    ("default-run-missing", [], "not a run directory (no run.json): runs/latest"),
    ("checkpoint-missing", ["--checkpoint", f"{W}/nope"], f"not a run directory (no run.json): {W}/nope"),
    ("checkpoint-builtin", ["--checkpoint", "builtin"], "not a run directory (no run.json): builtin"),
    ("checkpoint-a-file", ["--checkpoint", f"{W}/notes.json"], f"not a run directory (no run.json): {W}/notes.json"),
    ("checkpoint-not-a-run", ["--checkpoint", f"{W}/images"], f"not a run directory (no run.json): {W}/images"),
    ("run-json-corrupt", ["--checkpoint", f"{W}/run-json-corrupt"], f"corrupt {W}/run-json-corrupt/run.json"),
    (
        "run-json-other-format",
        ["--checkpoint", f"{W}/run-json-format"],
        f"{W}/run-json-format/run.json: not a proreg-clip-run/3 record (format 'proreg-clip-run/1')",
    ),
    (
        "run-json-missing-key",
        ["--checkpoint", f"{W}/run-json-nokey"],
        f"{W}/run-json-nokey/run.json: train_config is missing",
    ),
    (
        "best-weights-5-rows",
        ["--checkpoint", f"{W}/run-best-5rows", "--out", "exported"],
        f"the weights in {W}/run-best-5rows/best.safetensors do not fit the classifier its metadata describes: "
        "5 class vectors for 6 classes",
    ),
    (
        "best-weights-truncated",
        ["--checkpoint", f"{W}/run-best-truncated", "--out", "exported"],
        f"cannot read weights {W}/run-best-truncated/best.safetensors",
    ),
    (
        "best-weights-missing",
        ["--checkpoint", f"{W}/run-no-best", "--out", "exported"],
        f"no weights in run directory (expected best.safetensors): {W}/run-no-best",
    ),
    # INT8 calibration
    ("calib-method-unknown", [*INT8, "--calib-method", "magic"], "unknown calibration method 'magic'"),
    pytest.param(
        "calib-method-unknown-without-int8",
        [*RUN, "--calib-method", "magic"],
        "--calib-method: only with --int8",
        id="calib-method-unknown-without-int8",
    ),
    ("calib-size-0", [*INT8, "--calib-size", "0"], "calibration needs at least 16 images, asked for 0"),
    ("calib-size-negative", [*INT8, "--calib-size", "-5"], "calibration needs at least 16 images, asked for -5"),
    ("calib-size-too-few", [*INT8, "--calib-size", "8"], "calibration needs at least 16 images, asked for 8"),
    ("calib-size-not-a-number", [*INT8, "--calib-size", "many"], usage("--calib-size")),
    ("int8-keep-unknown", [*INT8, "--int8-keep", "head,bogus"], "unknown INT8 part(s) to keep in FP32 'bogus'"),
    ("calib-data-missing-npy", [*INT8, "--calib-data", f"{W}/nope.npy"], f"no such calibration array: {W}/nope.npy"),
    ("calib-data-missing-folder", [*INT8, "--calib-data", f"{W}/nope"], f"no such dataset: {W}/nope"),
    (
        "calib-data-garbage-npy",
        [*INT8, "--calib-data", f"{W}/calib-garbage.npy"],
        f"cannot read calibration array {W}/calib-garbage.npy",
    ),
    (
        "calib-data-wrong-shape",
        [*INT8, "--calib-data", f"{W}/calib-shape.npy"],
        f"calibration array {W}/calib-shape.npy has shape [20, 3, 32, 32]; the model takes [N, 3, 64, 64]",
    ),
    (
        "calib-data-integers",
        [*INT8, "--calib-data", f"{W}/calib-int.npy"],
        f"calibration array {W}/calib-int.npy must hold floating-point images",
    ),
    (
        "calib-data-too-few",
        [*INT8, "--calib-data", f"{W}/calib-few.npy"],
        f"calibration array {W}/calib-few.npy has 4 images; at least 16 are needed",
    ),
    (
        "calib-data-other-classes",
        [*INT8, "--calib-data", f"{W}/images-pentagon"],
        "dataset 'images-pentagon': classes differ from the requested ones (missing: -; extra: pentagon)",
    ),
    pytest.param(
        "calib-data-all-unreadable",
        [*INT8, "--calib-data", f"{W}/images-garbage"],
        "none of 16 images tried in 'images-garbage' could be read",
        id="calib-data-all-unreadable",
    ),
    # TensorRT profile
    ("min-batch-0", [*RUN, "--min-batch", "0"], "needs 1 <= --min-batch <= --opt-batch <= --max-batch, got 0, 32, 256"),
    (
        "min-batch-negative",
        [*RUN, "--min-batch", "-4"],
        "needs 1 <= --min-batch <= --opt-batch <= --max-batch, got -4, 32, 256",
    ),
    (
        "opt-batch-above-max",
        [*RUN, "--opt-batch", "512"],
        "needs 1 <= --min-batch <= --opt-batch <= --max-batch, got 1, 512, 256",
    ),
    ("max-batch-0", [*RUN, "--max-batch", "0"], "needs 1 <= --min-batch <= --opt-batch <= --max-batch, got 1, 32, 0"),
    (
        "min-batch-above-opt",
        [*RUN, "--min-batch", "64"],
        "needs 1 <= --min-batch <= --opt-batch <= --max-batch, got 64, 32, 256",
    ),
    ("workspace-0", [*RUN, "--workspace-gib", "0"], "workspace_gib must be a finite number above 0, got 0.0"),
    ("workspace-negative", [*RUN, "--workspace-gib", "-1"], "workspace_gib must be a finite number above 0, got -1.0"),
    ("workspace-nan", [*RUN, "--workspace-gib", "nan"], "workspace_gib must be a finite number above 0, got nan"),
    ("workspace-inf", [*RUN, "--workspace-gib", "inf"], "workspace_gib must be a finite number above 0, got inf"),
    pytest.param(
        "timing-cache-a-folder",
        [*RUN, "--timing-cache", f"{W}/empty"],
        f"--timing-cache {W}/empty is not a file",
        id="timing-cache-a-folder",
    ),
    # parity images
    ("parity-data-missing", [*RUN, "--parity-data", f"{W}/nope"], f"no such dataset: {W}/nope"),
    pytest.param(
        "parity-data-all-unreadable",
        [*RUN, "--parity-data", f"{W}/images-garbage"],
        "none of 16 images tried in 'images-garbage' could be read",
        id="parity-data-all-unreadable",
    ),
    ("parity-data-empty-folder", [*RUN, "--parity-data", f"{W}/empty"], f"no class folders in dataset: {W}/empty"),
    # the output folder
    ("out-is-a-file", [*RUN, "--out", f"{W}/afolder"], f"output folder {W}/afolder is a file, not a folder"),
    ("out-under-proc", [*RUN, "--out", f"{PROC_DIR}/out"], f"cannot create output folder {PROC_DIR}/out"),
]


@pytest.mark.parametrize(("name", "args", "message"), table(CASES))
def test_export_refuses_bad_input(name, args, message, cwd, world):
    assert_refused(["export", *args], message, cwd, world)
