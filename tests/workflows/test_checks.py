"""`cli.py checks` for real on this machine: every CPU check passes, the GPU and TensorRT rows say why they cannot run,
the JSON holds the same rows; a check that hangs is reported and the rest still run; a failing check sets the exit
status. The GPU rows run the same code under tests marked gpu/tensorrt, which skip here with the reason."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from data.world.benchmark import SPLITS
from workflows.check_worker import (
    FAILED,
    PASSED,
    SKIPPED,
    TIMED_OUT,
    UNAVAILABLE,
    CheckFailed,
    CheckSession,
    Unavailable,
    all_passed,
)
from workflows.checks import CHECKS, Check, prerequisites

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def machine_checks(tmp_path_factory) -> tuple[object, dict, Path]:
    """`cli.py checks --json FILE --keep DIR` once for the module: its result, its JSON and its work folder."""
    root = tmp_path_factory.mktemp("checks")
    result = CliRunner().invoke(app, ["checks", "--json", str(root / "checks.json"), "--keep", str(root / "work")])
    return result, json.loads((root / "checks.json").read_text()), root / "work"


def test_every_cpu_check_passes_here_and_the_gpu_rows_say_why_not(machine_checks):
    result, report, work = machine_checks
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in report["checks"]}
    assert list(rows) == [check.name for check in CHECKS]  # one row per check, in order
    for check in CHECKS:
        expected = PASSED if check.hardware == "cpu" else UNAVAILABLE  # no GPU here: each says why
        assert rows[check.name]["status"] == expected, rows[check.name]
    assert "no CUDA GPU is visible" in rows["train (cuda, autocast)"]["detail"]
    assert "pip install -e '.[tensorrt]'" in rows["tensorrt engine (fp16)"]["detail"]
    images = sum(spec.n for spec in SPLITS if spec.role in ("id", "ood"))  # the built-in ID and OOD sets
    assert f"4 within the pipeline's gates on {images} images" in rows["onnxruntime (cpu)"]["detail"]
    assert "ran on CPU" in rows["onnxruntime (cpu)"]["detail"]
    assert "on 2 processes (gloo)" in rows["train (torchrun, 2 cpu processes)"]["detail"]
    for row in rows.values():  # the console shows the same rows
        assert f"{row['status']:<13} {row['name']}" in result.output
    assert (work / "run" / "run.json").is_file() and (work / "export" / "model.int8-cpu.onnx").is_file()
    assert "every check that can run here passed" in result.output


def test_the_json_holds_the_environment_and_a_verdict(machine_checks):
    result, report, _ = machine_checks
    assert report["format"] == "proreg-clip-checks/1" and report["passed"] is True
    environment = report["environment"]
    for fact in ("python", "cpu", "torch", "gpus", "nvidia driver", "onnxruntime", "openvino", "tensorrt", "free disk"):
        assert environment[fact] and environment[fact] in result.output, fact
    assert environment["gpus"] == "none visible"
    assert "CPU" in environment["onnxruntime"]
    for row in report["checks"]:
        assert set(row) == {"name", "status", "detail", "seconds"} and row["seconds"] >= 0


# ---------------------------------------------------------------------------------------- checks made up here


def slow_then_fine(work: Path, quick: bool) -> str:
    time.sleep(0.2)
    return "fine"


def hangs(work: Path, quick: bool) -> str:
    time.sleep(3600)  # a driver call that never returns
    return "unreachable"


def breaks(work: Path, quick: bool) -> str:
    raise CheckFailed("the engine gave different answers")


def test_a_check_that_hangs_is_reported_and_the_next_still_run(tmp_path):
    checks = [
        Check("hangs", hangs, timeout=2),
        Check("after it", slow_then_fine),
        Check("uses it", slow_then_fine, uses=("hangs",)),
    ]
    start = time.perf_counter()
    with CheckSession(tmp_path) as session:
        results = session.run(checks)
    assert time.perf_counter() - start < 60
    assert [(r.name, r.status) for r in results] == [("hangs", TIMED_OUT), ("after it", PASSED), ("uses it", SKIPPED)]
    assert results[0].detail == "no answer after 2 s: stopped" and results[2].detail == "needs hangs, which timed out"
    assert not all_passed(results)


def test_a_failing_check_gives_its_reason_and_fails_the_run(tmp_path):
    with CheckSession(tmp_path) as session:
        results = session.run([Check("breaks", breaks), Check("fine", slow_then_fine)])
    assert [(r.status, r.detail) for r in results] == [
        (FAILED, "the engine gave different answers"),
        (PASSED, "fine"),
    ]
    assert not all_passed(results) and all_passed(results[1:])
    assert "CheckFailed: the engine gave different answers" in (tmp_path / "checks.log").read_text()


def test_quick_skips_training_and_exports_a_one_step_run(tmp_path):
    checks = prerequisites(["export onnx (fp32, fp16, int8)"]) + [c for c in CHECKS if c.trains]
    with CheckSession(tmp_path) as session:
        results = {r.name: r for r in session.run(checks, quick=True)}
    assert results["train (cpu)"].detail.startswith("1 steps on cpu") and "--quick" in results["train (cpu)"].detail
    assert all(results[c.name].status == SKIPPED for c in CHECKS if c.trains)
    assert results["export onnx (fp32, fp16, int8)"].status == PASSED


# -------------------------------------------------------------------------------------- the GPU and TensorRT rows


def _hardware_rows(kind: str) -> list:
    return [pytest.param(c.name, marks=getattr(pytest.mark, kind), id=c.name) for c in CHECKS if c.hardware == kind]


@pytest.mark.parametrize("name", _hardware_rows("gpu") + _hardware_rows("tensorrt"))
def test_the_gpu_rows_pass_where_a_gpu_is(name, tmp_path):
    """The same code the command runs; here it says why it cannot run, and the test skips with that reason."""
    check = next(check for check in CHECKS if check.name == name)
    try:
        check.needs()
    except Unavailable as why:
        pytest.skip(f"{name}: {why}")
    with CheckSession(tmp_path) as session:
        results = session.run(prerequisites([name]))
    assert [r.status for r in results] == [PASSED] * len(results), results


def test_a_failed_check_makes_the_command_exit_1_and_says_so(tmp_path, monkeypatch):
    import workflows.checks

    monkeypatch.setattr(workflows.checks, "CHECKS", [Check("breaks", breaks), Check("fine", slow_then_fine)])
    result = CliRunner().invoke(app, ["checks", "--json", str(tmp_path / "c.json")])
    assert result.exit_code == 1, result.output
    assert "failed        breaks" in result.output and "the engine gave different answers" in result.output
    assert "a check failed" in result.output
    report = json.loads((tmp_path / "c.json").read_text())
    assert report["passed"] is False and [r["status"] for r in report["checks"]] == [FAILED, PASSED]
