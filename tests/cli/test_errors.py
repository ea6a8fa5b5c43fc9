"""Bad input ends with one clear line on stderr, a non-zero exit, and nothing half-written."""

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from common.run import open_run

ROOT = Path(__file__).resolve().parents[2]


def _fails_with(args, message, tmp_path):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr  # no blank lines either
    assert message in lines[0], lines[0]
    assert "Traceback" not in result.output


def test_missing_folder(tmp_path):
    _fails_with(["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r")], "no such dataset", tmp_path)
    assert not (tmp_path / "r").exists()


def test_empty_class_folder(tmp_path, tiny_folder):
    (tiny_folder / "zebra").mkdir()
    _fails_with(["train", "--data", str(tiny_folder), "--out", str(tmp_path / "r")], "zebra", tmp_path)
    assert not (tmp_path / "r").exists()


def test_unknown_model(tmp_path, tiny_folder):
    _fails_with(
        ["train", "--model", "ViT-Q-99", "--data", str(tiny_folder), "--out", str(tmp_path / "r")],
        "unknown model 'ViT-Q-99'",
        tmp_path,
    )
    assert not (tmp_path / "r").exists()


def test_class_name_mismatch(tmp_path, tiny_folder):
    names = tmp_path / "classes.txt"
    names.write_text("circle\nsquare\ntriangle\nstar\ncross\n")  # no hexagon, which the folder has
    _fails_with(
        ["train", "--data", str(tiny_folder), "--classnames", str(names), "--out", str(tmp_path / "r")],
        "hexagon",
        tmp_path,
    )


def test_corrupt_image_strict_fails_and_default_skips(tmp_path, tiny_folder):
    (tiny_folder / "star" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    _fails_with(
        ["train", "--data", str(tiny_folder), "--strict", "--max-steps", "2", "--out", str(tmp_path / "r")],
        "broken.png",
        tmp_path,
    )
    # Batch size 1: a batch can consist of nothing but the unreadable image, which must be skipped, not crash.
    args = ["train", "--data", str(tiny_folder), "--epochs", "1", "--batch-size", "1", "--out", str(tmp_path / "ok")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = open_run(tmp_path / "ok").record.data
    assert data.skipped_train_reads + data.skipped_val >= 1


def test_existing_run_directory_is_not_overwritten(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "run.json").write_text("{}")
    _fails_with(["train", "--out", str(tmp_path / "r")], "already holds a run", tmp_path)
    assert (tmp_path / "r" / "run.json").read_text() == "{}"


def test_eval_of_a_non_run_directory(tmp_path):
    _fails_with(
        ["eval", "--checkpoint", str(tmp_path), "--out", str(tmp_path / "r.json")], "not a run directory", tmp_path
    )


@pytest.mark.slow
def test_real_process_exit_status(tmp_path):
    proc = subprocess.run(
        [sys.executable, "cli.py", "eval", "--checkpoint", str(tmp_path / "missing")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "not a run directory" in proc.stderr


def test_max_drop_needs_a_reference(tmp_path):
    _fails_with(["eval", "--checkpoint", "builtin", "--max-drop", "1"], "--max-drop needs --reference", tmp_path)


def test_bad_int8_option_is_refused_before_the_run_is_read(tmp_path):
    (tmp_path / "run").mkdir()
    _fails_with(
        ["export", "--int8", "--calib-method", "magic", "--checkpoint", str(tmp_path / "run")],
        "unknown calibration method 'magic'",
        tmp_path,
    )


def test_eval_needs_exactly_one_artifact(tmp_path):
    _fails_with(["eval"], "give exactly one of --checkpoint, --zero-shot, --onnx, --engine", tmp_path)
    _fails_with(["eval", "--checkpoint", "builtin", "--onnx", "m.onnx"], "exactly one", tmp_path)


def test_a_bug_keeps_its_traceback(monkeypatch):
    """Only user errors become one line; anything else is a bug and must show where it happened."""
    import workflows.evaluation

    def broken(*args, **kwargs):
        raise ValueError("a bug, not bad input")

    monkeypatch.setattr(workflows.evaluation, "resolve_eval_sets", broken)
    result = CliRunner().invoke(app, ["eval", "--checkpoint", "builtin"])
    assert result.exit_code == 1 and isinstance(result.exception, ValueError)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-size", "0"], "--batch-size must be a finite number at least 1, got 0"),
        (["--accum-steps", "0"], "--accum-steps must be a finite number at least 1"),
        (["--workers", "-1"], "--workers must be a finite number at least 0, got -1"),
        (["--lr", "-1"], "--lr must be a finite number above 0"),
        (["--lr", "nan"], "--lr must be a finite number above 0, got nan"),
        (["--epochs", "0"], "--epochs must be a finite number at least 1, got 0"),
        (["--max-steps", "0"], "--max-steps must be a finite number at least 1, got 0"),
        (["--alpha", "inf"], "alpha must be a finite number at least 0, got inf"),
        (["--autocast", "fp8"], "unknown autocast 'fp8' (choose from auto, fp32, bf16, fp16)"),
        (["--device", "cuda:7"], "device 'cuda:7' is not on this machine"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--template", "{0} {1}"], "'{0} {1}' needs exactly one {} for the class name"),
        (["--template", "a photo"], "'a photo' needs exactly one {}"),
        (["--template", "{"], "'{' needs exactly one {}"),
    ],
)
def test_bad_training_options_are_one_line_and_write_nothing(tmp_path, args, message):
    _fails_with(["train", *args, "--out", str(tmp_path / "r")], message, tmp_path)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-size", "0"], "batch size must be a finite number at least 1, got 0"),
        (["--workers", "-2"], "workers must be a finite number at least 0, got -2"),
    ],
)
def test_bad_evaluation_options_are_one_line(tmp_path, args, message):
    _fails_with(["eval", "--checkpoint", "builtin", *args, "--out", str(tmp_path / "r.json")], message, tmp_path)
    assert not (tmp_path / "r.json").exists()
