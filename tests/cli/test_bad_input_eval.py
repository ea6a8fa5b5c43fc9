"""`cli.py eval` refuses bad input with exit status 2, one line on stderr naming the option or file and what is
wrong, no traceback, and no file created or changed (see conftest.assert_refused)."""

import pytest

from tests.cli.conftest import PROC_DIR, W, assert_refused, table, usage

pytestmark = pytest.mark.slow  # the session's world trains and exports a run; the set takes ~65 s

ONNX = f"{W}/run/model.onnx"  # the finished run's FP32 export
SMALL = ["--data", f"{W}/images"]  # 60 images: should a case not be refused, its evaluation is quick
ZERO_SHOT = ["--checkpoint", "builtin"]

CASES = [
    # a bad input with --out in folders that do not exist yet: refused before the folders are made
    (
        "out-in-new-folders",
        ["--onnx", f"{W}/nope.onnx", "--out", "new/sub/r.json"],
        f"no such ONNX file: {W}/nope.onnx",
    ),
    # which artifact
    ("no-artifact", [], "give exactly one of --checkpoint, --zero-shot, --onnx, --engine"),
    (
        "checkpoint-and-onnx",
        [*ZERO_SHOT, "--onnx", ONNX],
        "give exactly one of --checkpoint, --zero-shot, --onnx, --engine",
    ),
    ("onnx-and-engine", ["--onnx", ONNX, "--engine", f"{W}/valid.plan"], "give exactly one of --checkpoint"),
    ("checkpoint-and-zero-shot", [*ZERO_SHOT, "--zero-shot", "builtin"], "give exactly one of --checkpoint"),
    ("onnx-named-builtin", ["--onnx", "builtin", *SMALL], "no such ONNX file: builtin"),
    # --zero-shot
    ("pretrained-alone", [*ZERO_SHOT, "--pretrained", "openai"], "--pretrained names the weights of the --zero-shot"),
    (
        "zero-shot-unknown-model",
        ["--zero-shot", "NoSuchNet-9", *SMALL],
        "unknown model 'NoSuchNet-9' (open_clip knows: ",
    ),
    (
        "zero-shot-builtin-with-weights",
        ["--zero-shot", "builtin", "--pretrained", "openai", *SMALL],
        "the built-in model carries its own weights; --pretrained 'openai' would be ignored",
    ),
    (
        "zero-shot-with-precision",
        ["--zero-shot", "builtin", "--inference-precision", "bf16"],
        "the torch backend offers no choice of inference precision (bf16): a choice of openvino only",
    ),
    # --checkpoint
    ("checkpoint-missing", ["--checkpoint", f"{W}/nope"], f"not a run directory (no run.json): {W}/nope"),
    ("checkpoint-a-file", ["--checkpoint", f"{W}/notes.json"], f"not a run directory (no run.json): {W}/notes.json"),
    (
        "checkpoint-corrupt-run-json",
        ["--checkpoint", f"{W}/run-json-corrupt"],
        f"corrupt {W}/run-json-corrupt/run.json",
    ),
    (
        "checkpoint-run-json-other-format",
        ["--checkpoint", f"{W}/run-json-format"],
        "not a proreg-clip-run/3 record (format 'proreg-clip-run/1')",
    ),
    (
        "checkpoint-run-json-missing-key",
        ["--checkpoint", f"{W}/run-json-nokey"],
        f"{W}/run-json-nokey/run.json: train_config is missing",
    ),
    (
        "checkpoint-best-5-rows",
        ["--checkpoint", f"{W}/run-best-5rows", *SMALL],
        f"the weights in {W}/run-best-5rows/best.safetensors do not fit the classifier its metadata describes: "
        "5 class vectors for 6 classes",
    ),
    (
        "checkpoint-best-truncated",
        ["--checkpoint", f"{W}/run-best-truncated", *SMALL],
        f"cannot read weights {W}/run-best-truncated/best.safetensors",
    ),
    (
        "checkpoint-without-best",
        ["--checkpoint", f"{W}/run-no-best", *SMALL],
        f"no weights in run directory (expected best.safetensors): {W}/run-no-best",
    ),
    # --onnx
    ("onnx-missing", ["--onnx", f"{W}/nope.onnx"], f"no such ONNX file: {W}/nope.onnx"),
    ("onnx-a-folder", ["--onnx", f"{W}/empty"], f"no such ONNX file: {W}/empty"),
    ("onnx-corrupt", ["--onnx", f"{W}/corrupt.onnx"], f"cannot read ONNX file {W}/corrupt.onnx"),
    ("onnx-without-metadata", ["--onnx", f"{W}/nometa.onnx"], f"{W}/nometa.onnx carries no 'proreg_clip' metadata"),
    ("onnx-metadata-not-json", ["--onnx", f"{W}/badjson.onnx"], f"{W}/badjson.onnx metadata is not valid JSON"),
    (
        "onnx-metadata-old-format",
        ["--onnx", f"{W}/flat.onnx"],
        f"{W}/flat.onnx metadata: not a proreg-clip-artifact/1 description (format None)",
    ),
    (
        "onnx-metadata-other-tensors",
        ["--onnx", f"{W}/pixels.onnx", *SMALL],
        f"{W}/pixels.onnx: its graph has inputs ['image'] and outputs ['logits'], its metadata says 'pixels'",
    ),
    (
        "onnx-weights-stripped",
        ["--onnx", f"{W}/stripped.onnx", *SMALL],
        f"ONNX Runtime cannot load {W}/stripped.onnx",
    ),
    # --engine
    ("engine-missing", ["--engine", f"{W}/nope.plan"], f"no such engine: {W}/nope.plan"),
    (
        "engine-without-sidecar",
        ["--engine", f"{W}/nosidecar.plan"],
        f"no sidecar nosidecar.plan.json beside the engine {W}/nosidecar.plan",
    ),
    ("engine-corrupt-sidecar", ["--engine", f"{W}/badsidecar.plan"], f"{W}/badsidecar.plan.json is not valid JSON"),
    ("engine-without-tensorrt", ["--engine", f"{W}/valid.plan", *SMALL], "TensorRT is not installed"),
    # --data
    ("data-missing", [*ZERO_SHOT, "--data", f"{W}/nope"], f"no such dataset: {W}/nope"),
    ("data-ood-missing", [*ZERO_SHOT, "--data", f"ood:{W}/nope"], f"no such dataset: {W}/nope"),
    (
        "data-role-on-a-suite",
        [*ZERO_SHOT, "--data", "ood:builtin"],
        "a suite's sets carry their own roles and names; drop 'ood:'",
    ),
    (
        "data-role-on-a-named-suite",
        ["--onnx", ONNX, "--data", f"id:pacs/sketch:{W}"],
        f"--data id:pacs/sketch:{W}: a suite's sets carry their own roles and names; drop 'id:'"
        f" (--data pacs/sketch:{W})",
    ),
    (
        "data-other-classes",  # the zero-shot built-in model would be made for its classes instead
        ["--onnx", ONNX, "--data", f"{W}/images-pentagon"],
        "dataset 'images-pentagon': classes differ from the requested ones (missing: -; extra: pentagon)",
    ),
    (
        "data-repeated-rows",
        [*ZERO_SHOT, "--data", f"{W}/repeated.csv"],
        f"manifest {W}/repeated.csv lists 1 image(s) more than once",
    ),
    (
        "data-manifest-without-label",
        [*ZERO_SHOT, "--data", f"{W}/nolabel.csv"],
        f"manifest {W}/nolabel.csv: missing column(s) label",
    ),
    (
        "data-builtin-unknown-split",
        [*ZERO_SHOT, "--data", "builtin:nosuchsplit"],
        "no split 'nosuchsplit' in the built-in benchmark",
    ),
    (
        "data-all-unreadable",
        [*ZERO_SHOT, "--data", f"{W}/images-garbage"],
        "none of 16 images tried in 'images-garbage' could be read",
    ),
    ("data-empty-folder", [*ZERO_SHOT, "--data", f"{W}/empty"], f"no class folders in dataset: {W}/empty"),
    (
        "data-empty-class",
        [*ZERO_SHOT, "--data", f"{W}/images-emptyclass"],
        f"class folder is empty: {W}/images-emptyclass/zebra",
    ),
    (
        "data-plain-file",
        [*ZERO_SHOT, "--data", f"{W}/afolder"],
        f"not a dataset (expected a folder or a .csv manifest): {W}/afolder",
    ),
    # evaluating on the training data
    (
        "run-on-its-training-data",
        ["--checkpoint", f"{W}/run", "--data", "builtin:train"],
        "images of 'train' were in the training data",
    ),
    (
        "run-on-its-training-data-names-the-way-out",
        ["--checkpoint", f"{W}/run", "--data", "builtin:train"],
        "--allow-overlap to evaluate anyway",
    ),
    (
        "export-on-its-training-data",
        ["--onnx", ONNX, "--data", "builtin:train"],
        "3000 of the 3000 images of 'train' were in the training data",
    ),
    # --reference and --max-drop
    (
        "reference-missing",
        ["--onnx", ONNX, *SMALL, "--reference", f"{W}/nope"],
        f"not a run directory (no run.json): {W}/nope",
    ),
    (
        "reference-corrupt-onnx",
        ["--onnx", ONNX, *SMALL, "--reference", f"{W}/corrupt.onnx"],
        f"cannot read ONNX file {W}/corrupt.onnx",
    ),
    (
        "reference-other-classes",
        ["--onnx", ONNX, *SMALL, "--reference", f"{W}/reordered.onnx"],
        f"the reference {W}/reordered.onnx classifies other classes (or in another order) than {ONNX}",
    ),
    ("max-drop-without-reference", [*ZERO_SHOT, "--max-drop", "1"], "--max-drop needs --reference"),
    (
        "set-named-twice",
        [*ZERO_SHOT, "--data", f"a={W}/images", "--data", f"ood:a={W}/images"],
        "two --data sets are named 'a': a report keys its sets by name; name them apart",
    ),
    (
        "suite-given-a-name",
        [*ZERO_SHOT, "--data", f"ood:a=pacs:{W}/empty"],
        f"--data ood:a=pacs:{W}/empty: a suite's sets carry their own roles and names; drop 'ood:a='",
    ),
    # suites (SUITE[/VARIANT]:ROOT)
    ("suite-root-missing", [*ZERO_SHOT, "--data", f"pacs:{W}/nope"], "PACS (Li et al., ICCV 2017): no such folder"),
    ("suite-unknown-variant", [*ZERO_SHOT, "--data", f"pacs/clipart:{W}/empty"], "pacs: unknown variant 'clipart'"),
    ("suite-no-root", [*ZERO_SHOT, "--data", "pacs:"], "data 'pacs:' names the suite pacs but no root folder"),
    (
        "suite-layout-missing",
        [*ZERO_SHOT, "--data", f"imagenet-r:{W}/empty"],
        "ImageNet-R",
    ),
    # a folder of exported files against their model is `bench`'s (it was eval --artifacts)
    ("artifacts-is-bench-now", ["--artifacts", f"{W}/run"], usage("--artifacts")),
    ("int8-gate-is-bench-s", [*ZERO_SHOT, "--max-drop-int8", "1"], usage("--max-drop-int8")),
    (
        "max-drop-negative",
        ["--onnx", ONNX, *SMALL, "--reference", f"{W}/run", "--max-drop", "-1"],
        "--max-drop must be a finite number at least 0, got -1.0",
    ),
    (
        "max-drop-nan",
        ["--onnx", ONNX, *SMALL, "--reference", f"{W}/run", "--max-drop", "nan"],
        "--max-drop must be a finite number at least 0, got nan",
    ),
    (
        "max-drop-inf",
        ["--onnx", ONNX, *SMALL, "--reference", f"{W}/run", "--max-drop", "inf"],
        "--max-drop must be a finite number at least 0, got inf",
    ),
    # loading
    ("batch-size-0", [*ZERO_SHOT, *SMALL, "--batch-size", "0"], "batch size must be a finite number at least 1, got 0"),
    (
        "batch-size-negative",
        [*ZERO_SHOT, *SMALL, "--batch-size", "-1"],
        "batch size must be a finite number at least 1",
    ),
    ("batch-size-not-a-number", [*ZERO_SHOT, *SMALL, "--batch-size", "big"], usage("--batch-size")),
    ("workers-negative", [*ZERO_SHOT, *SMALL, "--workers", "-1"], "workers must be a finite number at least 0, got -1"),
    # --out
    (
        "out-markdown",
        [*ZERO_SHOT, *SMALL, "--out", "report.md"],
        "--out names the report's .json file (report.md and .png go beside it), not report.md",
    ),
    (
        "out-an-existing-folder",
        [*ZERO_SHOT, *SMALL, "--out", f"{W}/empty"],
        f"--out names the report's .json file (report.md and .png go beside it), not {W}/empty",
    ),
    (
        "out-a-folder-named-json",
        [*ZERO_SHOT, *SMALL, "--out", f"{W}/results.json"],
        f"{W}/results.json is a folder; the report cannot be written there",
    ),
    (
        "out-the-users-json",
        [*ZERO_SHOT, *SMALL, "--out", f"{W}/notes.json"],
        f"{W}/notes.json exists and is not a report of ours: refusing to overwrite it",
    ),
    (
        "out-beside-the-users-markdown",
        [*ZERO_SHOT, *SMALL, "--out", f"{W}/docs/notes.json"],
        f"{W}/docs/notes.md exists and is not a report of ours: refusing to overwrite it",
    ),
    (
        "out-beside-a-chart-without-report",
        [*ZERO_SHOT, *SMALL, "--out", f"{W}/chart/report.json"],
        f"{W}/chart/report.png exists without its report: refusing to overwrite it",
    ),
    (
        "out-in-a-file",
        [*ZERO_SHOT, *SMALL, "--out", f"{W}/afolder/report.json"],
        f"report folder {W}/afolder is a file, not a folder",
    ),
    (
        "out-under-proc",
        [*ZERO_SHOT, *SMALL, "--out", f"{PROC_DIR}/report.json"],
        f"cannot create report folder {PROC_DIR}",
    ),
]


@pytest.mark.parametrize(("name", "args", "message"), table(CASES))
def test_eval_refuses_bad_input(name, args, message, cwd, world):
    assert_refused(["eval", *args], message, cwd, world)
