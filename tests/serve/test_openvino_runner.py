"""The OpenVINO runner against ONNX Runtime on real built-in images (FP32 equal up to the order of float sums, BF16
within BF16's rounding, the FP16 and INT8 copies run); `cli.py eval --runtime openvino` end to end with a gate; its
bad input; OpenVINO missing or without BF16; and no network, OpenVINO's telemetry included."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from calib.calibration import calibration_images
from calib.int8 import Int8Options, write_int8_copy
from common.artifact import ArtifactError
from common.errors import OptionError
from common.run import DataSource
from data.specs import resolve_eval_sets, resolve_train_data
from export.fp16 import write_fp16_copy
from serve.backends import open_runner
from serve.evaluate import DatasetResult, evaluate
from serve.metrics import agreement
from serve.onnxruntime_runner import OnnxRuntimeRunner
from serve.openvino_runner import OpenVinoRunner, OpenVinoUnavailable, check_bf16, effective_precision
from tests.cli.conftest import W, assert_refused, table

needs_openvino = pytest.mark.skipif(find_spec("openvino") is None, reason='pip install "proreg-clip[openvino]"')
PER_SET = 150  # images of each built-in set (ID test, three OOD shifts): 600 real images


@pytest.fixture(scope="module")
def copies(builtin_onnx, tmp_path_factory) -> dict[str, Path]:
    """The built-in model's FP32 file and its FP16 and INT8 (symmetric Q/DQ) copies, as `export --fp16 --int8`."""
    fp32, spec = builtin_onnx
    folder = tmp_path_factory.mktemp("copies")
    calib = calibration_images(resolve_train_data(DataSource()).train, spec.classifier, 64)
    return {
        "fp32": fp32,
        "fp16": write_fp16_copy(fp32, folder / "model.fp16.onnx", spec),
        "int8": write_int8_copy(fp32, folder / "model.int8.onnx", spec, calib, Int8Options(method="minmax"), "train"),
    }


@pytest.fixture(scope="module")
def sets(builtin_onnx):
    chosen = resolve_eval_sets([], classes=builtin_onnx[1].classes)
    for s in chosen:
        s.data.samples = s.data.samples[:PER_SET]
    return chosen


@pytest.fixture(scope="module")
def ort_fp32(builtin_onnx, sets) -> dict[str, DatasetResult]:
    return evaluate(OnnxRuntimeRunner(builtin_onnx[0]), sets)[1]


def compared(runner, sets, reference: dict[str, DatasetResult]) -> tuple[float, float]:
    """(worst top-1 agreement, largest |logit difference|) of `runner` against `reference` over every set."""
    results = evaluate(runner, sets)[1]
    found = [agreement(r.logits, reference[name].logits) for name, r in results.items()]
    return min(a.top1_agreement for a in found), max(a.max_abs_logit_diff for a in found)


@needs_openvino
def test_fp32_equals_onnxruntime(builtin_onnx, sets, ort_fp32) -> None:
    runner = OpenVinoRunner(builtin_onnx[0])
    assert (runner.backend, runner.precision, runner.inference_precision) == ("openvino", "fp32", "f32")
    assert runner.spec == builtin_onnx[1] and runner.artifact == str(builtin_onnx[0])
    worst_agreement, diff = compared(runner, sets, ort_fp32)
    # The same FP32 graph: only the order of float sums differs, far below the logit scale tau (|logit| <= tau).
    assert worst_agreement == 1.0 and diff <= 1e-4 * runner.spec.classifier.logit_scale


@needs_openvino
def test_bf16_is_close_to_onnxruntime_fp32(builtin_onnx, sets, ort_fp32) -> None:
    try:
        runner = OpenVinoRunner(builtin_onnx[0], "bf16")
    except OpenVinoUnavailable as err:
        pytest.skip(str(err))  # no BF16 path on this CPU: refused, as test_bf16_without_a_bf16_path_is_refused
    assert (runner.precision, runner.inference_precision) == ("bf16", "bf16")
    worst_agreement, diff = compared(runner, sets, ort_fp32)
    # BF16 keeps 8 significant bits (relative rounding 2^-9, 0.2%) of every weight and activation; through the 12
    # matmuls of the tower it moves logits by about 1% of tau (measured 0.2 for tau 16.8). Images whose two best
    # classes are closer than that may swap: 0.7% did on built-in images, so >= 0.98 with room and <= 3% of tau.
    assert worst_agreement >= 0.98 and diff <= 0.03 * runner.spec.classifier.logit_scale


@needs_openvino
@pytest.mark.parametrize(
    ("copy", "hint", "precision"),
    [("fp16", "fp32", "fp16"), ("fp16", "bf16", "bf16"), ("int8", "fp32", "int8"), ("int8", "bf16", "int8")],
)
def test_the_fp16_and_int8_copies_run(copies, sets, ort_fp32, copy, hint, precision) -> None:
    from common.cpu import int8_dot_products
    from serve.openvino_runner import cpu_supports_bf16

    if hint == "bf16" and not cpu_supports_bf16():
        pytest.skip("this CPU has no BF16 path in OpenVINO (refused: tests/serve/test_openvino_runner.py, check_bf16)")
    if copy == "int8" and not int8_dot_products():
        pytest.skip("this CPU has no VNNI: OpenVINO's INT8 kernels saturate on the symmetric file (NO_VNNI_INT8)")
    runner = OpenVinoRunner(copies[copy], hint)
    assert runner.precision == precision and runner.spec.precision == copy
    worst_agreement, diff = compared(runner, sets, ort_fp32)
    # Reduced precision moves logits; still the same classifier (test_int8 asks as much of ONNX Runtime's INT8).
    assert 0 < diff < 0.2 * runner.spec.classifier.logit_scale and worst_agreement >= 0.9


@needs_openvino
def test_dynamic_batch_and_threads(builtin_onnx) -> None:
    images = torch.rand(7, 3, 64, 64)
    runner = OpenVinoRunner(builtin_onnx[0], threads=1)
    whole = runner.infer(images)
    parts = np.concatenate([runner.infer(images[:1]), runner.infer(images[1:4]), runner.infer(images[4:])])
    assert whole.shape == (7, 6) and whole.dtype == np.float32
    np.testing.assert_allclose(parts, whole, rtol=0, atol=1e-5 * runner.spec.classifier.logit_scale)
    first = runner.infer(images[:2])
    runner.infer(images[2:4])
    np.testing.assert_array_equal(first, whole[:2])  # outputs are copies, not the request's reused buffer


def test_effective_precision_names_what_runs() -> None:
    assert [effective_precision(p, "fp32") for p in ("fp32", "fp16", "int8")] == ["fp32", "fp16", "int8"]
    assert [effective_precision(p, "bf16") for p in ("fp32", "fp16", "int8")] == ["bf16", "bf16", "int8"]


def test_bf16_without_a_bf16_path_is_refused(caplog) -> None:
    """OpenVINO quietly runs FP32 under a bf16 hint on a CPU without a BF16 path: one clear error instead. With
    AVX-512 but no BF16 instructions it emulates BF16: allowed, with a warning that it is no faster."""
    with pytest.raises(OpenVinoUnavailable, match=r"^OpenVINO has no BF16 path on this CPU \(Old CPU\) and would run"):
        check_bf16("bf16", "f32", "Old CPU", {"avx2"})
    with caplog.at_level(logging.WARNING):
        check_bf16("bf16", "bf16", "AVX-512 CPU", {"avx512f", "avx512_vnni"})
    assert "has no BF16 instructions (avx512_bf16, amx_bf16): OpenVINO emulates BF16" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        check_bf16("bf16", "bf16", "new CPU", {"avx512f", "avx512_bf16"})
        check_bf16("fp32", "f32", "any CPU", {"avx2"})
    assert caplog.text == ""


def test_open_runner_offers_a_precision_only_where_there_is_a_choice(builtin_onnx) -> None:
    with pytest.raises(OptionError, match=r"the onnxruntime backend offers no choice of inference precision \(bf16\)"):
        open_runner(builtin_onnx[0], inference_precision="bf16")
    with pytest.raises(OptionError, match=r"the openvino backend offers no choice of execution provider \(cuda\)"):
        open_runner(builtin_onnx[0], "openvino", provider="cuda")
    with pytest.raises(OptionError, match=r"unknown openvino inference precision 'fp16' \(choose from fp32, bf16\)"):
        open_runner(builtin_onnx[0], "openvino", inference_precision="fp16")
    with pytest.raises(OptionError, match="unknown OpenVINO inference precision 'int8'"):
        OpenVinoRunner(builtin_onnx[0], "int8")
    with pytest.raises(OptionError, match="OpenVINO threads must be a finite number at least 1, got 0"):
        OpenVinoRunner(builtin_onnx[0], threads=0)


@needs_openvino
def test_a_file_openvino_cannot_load_is_one_line(builtin_onnx, tmp_path) -> None:
    import onnx

    stripped = tmp_path / "stripped.onnx"
    onnx.save(onnx.load(str(builtin_onnx[0])), str(stripped), save_as_external_data=True, location="w.data")
    (tmp_path / "w.data").unlink()
    with pytest.raises(ArtifactError, match=f"^OpenVINO cannot load {stripped}: .*externally stored data") as info:
        open_runner(stripped, "openvino")
    assert "\n" not in str(info.value) and "Exception from" not in str(info.value)


def test_import_sends_no_telemetry() -> None:
    """`import openvino` alone sends a usage event from a forked process (no socket of this process sees it):
    through import_openvino, in a fresh interpreter, no process starts and OpenVINO's no-op stub is used."""
    if find_spec("openvino") is None:
        pytest.skip('pip install "proreg-clip[openvino]"')
    code = (
        "import multiprocessing, threading\n"
        "started = []\n"
        "multiprocessing.Process.start = lambda self: started.append(self)\n"
        "from serve.openvino_runner import import_openvino\n"
        "ov = import_openvino()\n"
        "from openvino.tools.ovc import telemetry_utils\n"
        "assert telemetry_utils.tm.__name__ == 'openvino.tools.ovc.telemetry_stub', telemetry_utils.tm\n"
        "assert started == [] and threading.active_count() == 1, (started, threading.enumerate())\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@needs_openvino
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_eval_cli_runs_openvino_and_passes_the_gate(builtin_onnx, tiny_folder, tmp_path, no_network, precision):
    from cli import app

    if precision == "bf16":
        try:
            OpenVinoRunner(builtin_onnx[0], "bf16")
        except OpenVinoUnavailable as err:
            pytest.skip(str(err))
    out = tmp_path / "report.json"
    args = ["eval", "--onnx", str(builtin_onnx[0]), "--runtime", "openvino", "--inference-precision", precision]
    args += ["--data", str(tiny_folder), "--reference", str(builtin_onnx[0]), "--max-drop", "1", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert (report["backend"], report["precision"]) == ("openvino", precision)
    assert report["reference"] == str(builtin_onnx[0]) and report["gate"]["passed"]
    assert report["agreement"]["tiny"]["top1_agreement"] >= (1.0 if precision == "fp32" else 0.98)


@needs_openvino
def test_eval_cli_reference_in_openvino(builtin_onnx, tiny_folder, tmp_path, no_network):
    from cli import app

    out = tmp_path / "report.json"
    args = ["eval", "--onnx", str(builtin_onnx[0]), "--reference", str(builtin_onnx[0])]
    args += ["--reference-runtime", "openvino", "--data", str(tiny_folder), "--max-drop", "0", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["backend"] == "onnxruntime" and report["agreement"]["tiny"]["top1_agreement"] == 1.0
    # The reference's runtime is recorded (it was not, before: the report could not say what it was measured against)
    assert report["reference_runs_on"] == {"backend": "openvino", "precision": "fp32", "device": "CPU"}
    assert f"reference: `{builtin_onnx[0]}` (openvino fp32 on CPU)" in out.with_suffix(".md").read_text()
    assert "gate passed: worst drop +0.00 pp <= 0.0 pp" in " ".join(result.stderr.split())


# ------------------------------------------------------------------------------------------------------ bad input

ONNX = ["--onnx", f"{W}/model.onnx", "--data", f"{W}/images"]
CASES = [
    ("runtime-unknown", [*ONNX, "--runtime", "tensorrt"], "unknown --runtime 'tensorrt' (choose from onnxruntime, "),
    ("runtime-with-checkpoint", ["--checkpoint", "builtin", "--runtime", "openvino"], "only with --onnx FILE.onnx"),
    (
        "runtime-with-engine",
        ["--engine", f"{W}/model.plan", "--runtime", "openvino"],
        "--runtime chooses how a model file runs, where several backends can: only with --onnx FILE.onnx",
    ),
    ("runtime-on-a-plan", ["--onnx", f"{W}/model.plan", "--runtime", "openvino"], "only with --onnx FILE.onnx"),
    (
        "precision-without-openvino",
        [*ONNX, "--inference-precision", "bf16"],
        "the onnxruntime backend offers no choice of inference precision (bf16): a choice of openvino only",
    ),
    (
        "precision-with-onnxruntime",
        [*ONNX, "--runtime", "onnxruntime", "--inference-precision", "bf16"],
        "the onnxruntime backend offers no choice of inference precision (bf16): a choice of openvino only",
    ),
    (
        "precision-unknown",
        [*ONNX, "--runtime", "openvino", "--inference-precision", "fp16"],
        "unknown openvino inference precision 'fp16' (choose from fp32, bf16)",
    ),
    (
        "reference-runtime-of-a-run",
        [*ONNX, "--reference", "builtin", "--reference-runtime", "openvino"],
        "--reference-runtime chooses how a model file runs, where several backends can: only with --reference FILE",
    ),
    (
        "reference-runtime-without-reference",
        [*ONNX, "--reference-runtime", "openvino"],
        "only with --reference FILE.onnx",
    ),
    (
        "reference-runtime-unknown",
        [*ONNX, "--reference", f"{W}/model.onnx", "--reference-runtime", "torch"],
        "unknown --reference-runtime 'torch' (choose from onnxruntime, openvino)",
    ),
    ("openvino-missing-file", ["--onnx", f"{W}/nope.onnx", "--runtime", "openvino"], f"no such ONNX file: {W}/nope"),
    ("openvino-corrupt-file", ["--onnx", f"{W}/corrupt.onnx", "--runtime", "openvino"], "cannot read ONNX file"),
]


@pytest.fixture(scope="module")
def ov_world(builtin_onnx, tmp_path_factory, benchmark_root) -> Path:
    """model.onnx (the built-in model), images/ (6 classes x 10), corrupt.onnx (random bytes)."""
    import shutil

    from tests.tiny_data import copy_tiny_folder

    root = tmp_path_factory.mktemp("ov-world")
    shutil.copy(builtin_onnx[0], root / "model.onnx")
    copy_tiny_folder(benchmark_root, root / "images")
    (root / "corrupt.onnx").write_bytes(np.random.default_rng(0).bytes(2000))
    return root


@pytest.mark.parametrize(("name", "args", "message"), table(CASES))
def test_eval_refuses_bad_runtime_choices(name, args, message, cwd, ov_world):
    assert_refused(["eval", *args], message, cwd, ov_world)


def test_eval_without_openvino_installed(cwd, ov_world, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` raises ImportError, as when not installed
    expected = 'OpenVINO is not installed: pip install "proreg-clip[openvino]"'
    assert_refused(["eval", *ONNX, "--runtime", "openvino"], expected, cwd, ov_world)


@needs_openvino
def test_eval_bf16_on_a_cpu_without_a_bf16_path(cwd, ov_world, monkeypatch):
    def no_bf16(asked: str, compiled: str, cpu: str, cpu_flags: set[str] | None = None) -> None:
        check_bf16(asked, "f32", "Old CPU", {"avx2"})  # what OpenVINO reports there: the hint ignored

    monkeypatch.setattr("serve.openvino_runner.check_bf16", no_bf16)
    args = ["eval", *ONNX, "--runtime", "openvino", "--inference-precision", "bf16"]
    assert_refused(args, "OpenVINO has no BF16 path on this CPU (Old CPU) and would run FP32 instead", cwd, ov_world)


@needs_openvino
def test_a_ctrl_c_after_runners_are_released_is_still_delivered(builtin_onnx) -> None:
    """Each OpenVINO Core's CPU plugin swaps the thread's alternate signal stack for one it maps, and unmaps it when
    released; runners released in the order they were made once left the thread on an unmapped one, so the next
    Ctrl-C (a signal handled on that stack) killed the process with a silent SIGSEGV. In a fresh interpreter."""
    code = (
        "import gc, os, signal, sys\n"
        "from serve.openvino_runner import OpenVinoRunner\n"
        "first, second = OpenVinoRunner(sys.argv[1]), OpenVinoRunner(sys.argv[1])\n"
        "del first; gc.collect(); del second; gc.collect()\n"
        "seen = []\n"
        "signal.signal(signal.SIGINT, lambda *_: seen.append(1))\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "assert seen == [1]\n"
    )
    root = Path(__file__).resolve().parents[2]
    args = [sys.executable, "-c", code, str(builtin_onnx[0])]
    done = subprocess.run(args, cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
