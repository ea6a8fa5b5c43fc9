"""`cli.py train` refuses bad input with exit status 2, one line on stderr naming the option or file and what is
wrong, no traceback, and no file created or changed (see conftest.assert_refused)."""

import pytest

from tests.cli.conftest import COPY, PROC_DIR, W, assert_refused, table, usage

pytestmark = pytest.mark.slow  # the session's world trains and exports a run; the set takes ~65 s

# Fast, small inputs for cases about something else: should a case not be refused, it trains one step on 60 images.
FAST = ["--data", f"{W}/images", "--max-steps", "1"]
KD = [*FAST, "--loss", "kd"]
RUNNING = f"{COPY}/run-running"  # an interrupted-looking run, resumable (each case resumes its own copy)
LOCK_FIRST = (
    "refused with the right line, but only after prepare() has taken the run lock, which truncates {run}/.lock and "
    "writes this process's pid into it: a file in the run directory is changed"
)
IGNORED_ON_RESUME = (
    "cli._typed compares ctx.get_parameter_source() with click.core.ParameterSource, but typer 0.29 runs on its "
    "vendored click (typer._click.core.ParameterSource), so no option ever counts as typed: with --resume every other "
    "option is silently dropped and the run resumes with its own settings (exit 0, the run directory rewritten)"
)

CASES = [
    # numeric options out of range or not finite
    ("epochs-0", [*FAST, "--epochs", "0"], "--epochs must be a finite number at least 1, got 0"),
    ("epochs-negative", [*FAST, "--epochs", "-3"], "--epochs must be a finite number at least 1, got -3"),
    ("epochs-nan", [*FAST, "--epochs", "nan"], usage("--epochs")),
    ("max-steps-0", [*FAST, "--max-steps", "0"], "--max-steps must be a finite number at least 1, got 0"),
    ("max-steps-negative", [*FAST, "--max-steps", "-1"], "--max-steps must be a finite number at least 1, got -1"),
    ("batch-size-0", [*FAST, "--batch-size", "0"], "--batch-size must be a finite number at least 1, got 0"),
    ("batch-size-negative", [*FAST, "--batch-size", "-8"], "--batch-size must be a finite number at least 1, got -8"),
    ("batch-size-inf", [*FAST, "--batch-size", "inf"], usage("--batch-size")),
    ("accum-steps-0", [*FAST, "--accum-steps", "0"], "--accum-steps must be a finite number at least 1, got 0"),
    ("accum-steps-negative", [*FAST, "--accum-steps", "-2"], "--accum-steps must be a finite number at least 1"),
    ("workers-negative", [*FAST, "--workers", "-1"], "--workers must be a finite number at least 0, got -1"),
    ("lr-0", [*FAST, "--lr", "0"], "--lr must be a finite number above 0, got 0.0"),
    ("lr-negative", [*FAST, "--lr", "-1e-4"], "--lr must be a finite number above 0, got -0.0001"),
    ("lr-nan", [*FAST, "--lr", "nan"], "--lr must be a finite number above 0, got nan"),
    ("lr-inf", [*FAST, "--lr", "inf"], "--lr must be a finite number above 0, got inf"),
    ("alpha-negative", [*FAST, "--alpha", "-1"], "alpha must be a finite number at least 0, got -1.0"),
    ("alpha-nan", [*FAST, "--alpha", "nan"], "alpha must be a finite number at least 0, got nan"),
    ("alpha-inf", [*FAST, "--alpha", "inf"], "alpha must be a finite number at least 0, got inf"),
    ("gamma-0", [*FAST, "--gamma", "0"], "gamma must be a finite number above 0, got 0.0"),
    ("gamma-nan", [*FAST, "--gamma", "nan"], "gamma must be a finite number above 0, got nan"),
    ("temperature-0", [*FAST, "--temperature", "0"], "temperature must be a finite number above 0, got 0.0"),
    ("temperature-negative", [*FAST, "--temperature", "-2"], "temperature must be a finite number above 0"),
    ("temperature-inf", [*FAST, "--temperature", "inf"], "temperature must be a finite number above 0, got inf"),
    ("kd-alpha-above-1", [*KD, "--kd-alpha", "1.5"], "kd_alpha must be a finite number at least 0 and at most 1"),
    ("kd-alpha-negative", [*KD, "--kd-alpha", "-0.1"], "kd_alpha must be a finite number at least 0"),
    ("kd-alpha-nan", [*KD, "--kd-alpha", "nan"], "kd_alpha must be a finite number at least 0 and at most 1, got nan"),
    ("kd-alpha-not-a-number", [*KD, "--kd-alpha", "half"], "--kd-alpha 'half': give a number"),
    ("kd-alpha-without-value", [*KD, "--kd-alpha"], "--kd-alpha needs a value"),
    (
        "kd-alpha-for-proreg",  # an option of another method, which would be ignored
        [*FAST, "--loss", "proreg", "--kd-alpha", "0.7"],
        "no option --kd-alpha for loss 'proreg' (its own: --weight-form, --alpha, --gamma, --temperature, --eps;",
    ),
    ("option-unknown", [*FAST, "--kd-alpa", "0.7"], "no option --kd-alpa for loss 'proreg'"),
    pytest.param(
        "seed-huge",
        [*FAST, "--seed", "99999999999999999999999"],
        "--seed must be a finite number at least 0 and at most 4294967295",
        id="seed-huge",
    ),
    ("template-escaped-braces", [*FAST, "--template", "a photo of {{}}"], "'a photo of {{}}' needs exactly one {}"),
    ("templates-file-latin1", [*FAST, "--templates-file", f"{W}/templates-latin1.txt"], "is not UTF-8 text"),
    ("classnames-latin1", [*FAST, "--classnames", f"{W}/classnames-latin1.txt"], "is not UTF-8 text"),
    ("manifest-latin1", ["--data", f"{W}/latin1.csv", "--max-steps", "1"], f"manifest {W}/latin1.csv is not UTF-8"),
    ("data-path-with-brackets", ["--data", "/tmp/[/x]", "--max-steps", "1"], "no such dataset: /tmp/[/x]"),
    (
        "resume-foreign-state",
        ["--resume", f"{COPY}/run-state-foreign"],
        "state.pt or last.safetensors is not this run's",
    ),
    # choices
    ("loss-unknown", [*FAST, "--loss", "magic"], "unknown loss 'magic' (choose from proreg, kd, ce, tes, flyp)"),
    (
        "weight-form-unknown",
        [*FAST, "--weight-form", "magic"],
        "unknown weight_form 'magic' (choose from xerm, official)",
    ),
    ("augment-unknown", [*FAST, "--augment", "autoaugment"], "unknown augmentation 'autoaugment'"),
    (
        "autocast-unknown",
        [*FAST, "--autocast", "fp8"],
        "unknown autocast 'fp8' (choose from auto, fp32, bf16, fp16)",
    ),
    ("device-cuda", [*FAST, "--device", "cuda"], "device 'cuda' is not on this machine (0 CUDA GPUs visible)"),
    ("device-cuda-7", [*FAST, "--device", "cuda:7"], "device 'cuda:7' is not on this machine"),
    ("device-tpu", [*FAST, "--device", "tpu"], "unknown device 'tpu'"),
    ("device-mps", [*FAST, "--device", "mps"], "device 'mps' is not supported here"),
    # prompt templates
    ("template-two-fields", [*FAST, "--template", "{0} {1}"], "'{0} {1}' needs exactly one {} for the class name"),
    ("template-named-field", [*FAST, "--template", "a {x}"], "'a {x}' needs exactly one {} for the class name"),
    ("template-open-brace", [*FAST, "--template", "{"], "'{' needs exactly one {} for the class name"),
    ("template-no-braces", [*FAST, "--template", "no braces"], "'no braces' needs exactly one {}"),
    ("template-two-slots", [*FAST, "--template", "a {} of a {}"], "'a {} of a {}' needs exactly one {}"),
    ("templates-file-missing", [*FAST, "--templates-file", f"{W}/nope.txt"], f"no such templates file: {W}/nope.txt"),
    (
        "templates-file-bad",
        [*FAST, "--templates-file", f"{W}/templates-bad.txt"],
        f"templates file {W}/templates-bad.txt: '{{x}} photo' needs exactly one {{}}",
    ),
    (
        "templates-file-empty",
        [*FAST, "--templates-file", f"{W}/templates-empty.txt"],
        "templates-empty.txt: none given",
    ),
    ("templates-file-folder", [*FAST, "--templates-file", f"{W}/empty"], f"no such templates file: {W}/empty"),
    # models
    ("model-unknown", [*FAST, "--model", "ViT-Q-99"], "unknown model 'ViT-Q-99'"),
    (
        "model-local-dir-without-config",
        [*FAST, "--model", f"local-dir:{W}/model-noconfig"],
        f"no open_clip_config.json in model folder: {W}/model-noconfig",
    ),
    (
        "pretrained-with-builtin",
        [*FAST, "--pretrained", "laion2b_s34b_b79k"],
        "the built-in model carries its own weights; --pretrained 'laion2b_s34b_b79k' would be ignored",
    ),
    (
        "pretrained-unknown-tag",
        [*FAST, "--model", "RN50", "--pretrained", "nosuchtag"],
        "'nosuchtag' is neither a file nor a pretrained tag of RN50",
    ),
    (
        "pretrained-missing-file",
        [*FAST, "--model", "RN50", "--pretrained", f"{W}/nope.pt"],
        f"'{W}/nope.pt' is neither a file nor a pretrained tag of RN50",
    ),
    (
        "pretrained-not-a-checkpoint",
        [*FAST, "--model", "RN50", "--pretrained", f"{W}/notes.json"],
        f"cannot load model 'RN50' (pretrained '{W}/notes.json')",
    ),
    # data
    ("data-missing", ["--max-steps", "1", "--data", f"{W}/nope"], f"no such dataset: {W}/nope"),
    ("data-empty-folder", ["--max-steps", "1", "--data", f"{W}/empty"], f"no class folders in dataset: {W}/empty"),
    # suites
    ("suite-root-missing", ["--max-steps", "1", "--data", f"pacs:{W}/nope"], f"no such folder: {W}/nope"),
    ("suite-unknown-variant", ["--max-steps", "1", "--data", f"pacs/clipart:{W}/empty"], "unknown variant 'clipart'"),
    (
        "suite-evaluation-only",
        ["--max-steps", "1", "--data", f"imagenet-r:{W}/empty"],
        f"imagenet-r:{W}/empty: ImageNet-R",
    ),
    ("suite-layout-missing", ["--max-steps", "1", "--data", f"pacs:{W}/empty"], "kfold/ not found (looked in"),
    (
        "data-empty-class",
        ["--max-steps", "1", "--data", f"{W}/images-emptyclass"],
        f"class folder is empty: {W}/images-emptyclass/zebra",
    ),
    (
        "data-all-unreadable",
        ["--max-steps", "1", "--data", f"{W}/images-garbage"],
        f"none of 16 images tried in 'images-garbage' could be read ({W}/images-garbage/circle/00.png: cannot identify",
    ),
    (
        "data-all-unreadable-strict",
        ["--max-steps", "1", "--data", f"{W}/images-garbage", "--strict"],
        "none of 16 images tried in 'images-garbage' could be read",
    ),
    (
        "data-plain-file",
        ["--max-steps", "1", "--data", f"{W}/afolder"],
        f"not a dataset (expected a folder or a .csv manifest): {W}/afolder",
    ),
    (
        "data-manifest-without-label",
        ["--max-steps", "1", "--data", f"{W}/nolabel.csv"],
        f"manifest {W}/nolabel.csv: missing column(s) label",
    ),
    (
        "data-manifest-repeated-row",
        ["--max-steps", "1", "--data", f"{W}/repeated.csv"],
        f"manifest {W}/repeated.csv lists 1 image(s) more than once",
    ),
    (
        "data-manifest-unknown-label",
        ["--max-steps", "1", "--data", f"{W}/unknown-label.csv", "--classnames", f"{W}/classnames.txt"],
        "unknown-label.csv line 61: unknown label 'pentagon'",
    ),
    ("data-builtin-split", ["--max-steps", "1", "--data", "builtin:nosuchsplit"], "builtin:nosuchsplit"),
    ("val-data-missing", [*FAST, "--val-data", f"{W}/nope"], f"no such dataset: {W}/nope"),
    (
        "val-data-other-classes",
        [*FAST, "--val-data", f"{W}/images-pentagon"],
        "dataset 'images-pentagon': classes differ from the requested ones (missing: hexagon; extra: pentagon)",
    ),
    (
        "val-data-is-the-training-data",
        [*FAST, "--val-data", f"{W}/images"],
        "60 image(s) are in both the training and the validation data",
    ),
    ("classnames-missing-file", [*FAST, "--classnames", f"{W}/nope.txt"], f"no such class-names file: {W}/nope.txt"),
    (
        "classnames-duplicate",
        [*FAST, "--classnames", f"{W}/classnames-dup.txt"],
        f"class-names file {W}/classnames-dup.txt line 3: duplicate label 'circle'",
    ),
    (
        "classnames-missing-class",
        [*FAST, "--classnames", f"{W}/classnames-missing.txt"],
        "dataset 'images': classes differ from the requested ones (missing: -; extra: hexagon)",
    ),
    ("classnames-empty", [*FAST, "--classnames", f"{W}/templates-empty.txt"], "class-names file has no classes"),
    # the run directory
    ("out-existing-run", [*FAST, "--out", f"{W}/run"], f"run directory already holds a run: {W}/run"),
    ("out-is-a-file", [*FAST, "--out", f"{W}/afolder"], f"run directory {W}/afolder is a file, not a folder"),
    ("out-under-proc", [*FAST, "--out", f"{PROC_DIR}/run"], f"cannot create run directory {PROC_DIR}/run"),
    ("runs-is-a-file", FAST, "cannot create run directory runs/"),  # the working directory holds a file `runs`
    # resuming
    ("resume-not-a-run", ["--resume", f"{W}/empty"], f"not a run directory (no run.json): {W}/empty"),
    ("resume-missing", ["--resume", f"{W}/nope"], f"not a run directory (no run.json): {W}/nope"),
    ("resume-a-file", ["--resume", f"{W}/notes.json"], f"not a run directory (no run.json): {W}/notes.json"),
    ("resume-finished", ["--resume", f"{COPY}/run"], f"{COPY}/run has finished training; nothing to resume"),
    pytest.param(
        "resume-batch-size",
        ["--resume", RUNNING, "--batch-size", "8"],
        "it can change only lr, num_workers, device, not batch_size",
        id="resume-batch-size",
    ),
    pytest.param(
        "resume-loss",
        ["--resume", RUNNING, "--loss", "kd"],
        "it can change only lr, num_workers, device, not loss",
        id="resume-loss",
    ),
    pytest.param(
        "resume-out",
        ["--resume", RUNNING, "--out", "elsewhere"],
        "it can change only lr, num_workers, device, not out",
        id="resume-out",
    ),
    pytest.param(
        "resume-lr-nan",
        ["--resume", RUNNING, "--lr", "nan"],
        "--lr must be a finite number above 0, got nan",
        id="resume-lr-nan",
    ),
    pytest.param(
        "resume-workers-negative",
        ["--resume", RUNNING, "--workers", "-1"],
        "--workers must be a finite number at least 0, got -1",
        id="resume-workers-negative",
    ),
    pytest.param(
        "resume-device-cuda-7",
        ["--resume", RUNNING, "--device", "cuda:7"],
        "device 'cuda:7' is not on this machine",
        id="resume-device-cuda-7",
    ),
    pytest.param(
        "resume-truncated-state",
        ["--resume", f"{COPY}/run-state-truncated"],
        f"cannot resume {COPY}/run-state-truncated: unreadable state.pt",
        id="resume-truncated-state",
    ),
    pytest.param(
        "resume-truncated-last-weights",
        ["--resume", f"{COPY}/run-last-truncated"],
        f"cannot read weights {COPY}/run-last-truncated/last.safetensors",
        id="resume-truncated-last-weights",
    ),
    ("resume-corrupt-run-json", ["--resume", f"{COPY}/run-json-corrupt"], f"corrupt {COPY}/run-json-corrupt/run.json"),
    (
        "resume-run-json-other-format",
        ["--resume", f"{COPY}/run-json-format"],
        "not a proreg-clip-run/3 record (format 'proreg-clip-run/1')",
    ),
    (
        "resume-run-json-missing-key",
        ["--resume", f"{COPY}/run-json-nokey"],
        f"{COPY}/run-json-nokey/run.json: train_config is missing",
    ),
]


CWD_FILES = {"runs-is-a-file": {"runs": "a file where the runs folder would go\n"}}  # the working directory's files


@pytest.mark.parametrize(("name", "args", "message"), table(CASES))
def test_train_refuses_bad_input(name, args, message, cwd, world):
    assert_refused(["train", *args], message, cwd, world, CWD_FILES.get(name))
