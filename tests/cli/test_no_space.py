"""A full disk, command by command: every command that writes, run (through the real CLI, in this process) where
files cannot grow past a limit (tests/file_size_limit.py: EFBIG, as a full disk gives ENOSPC), ends with exit 2 and
one stderr line naming the file and "no space"; every file that was there before is bit-identical, no temporary
file is left, and the command succeeds once the space is back (`train --resume` goes on from the last checkpoint)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from common.run import open_run
from tests.cli.conftest import process_logging
from tests.file_size_limit import file_digests, file_size_limit, temporary_files

pytestmark = pytest.mark.slow  # the session's world (a trained, exported run); each case a short command

WEIGHTS_DO_NOT_FIT = 1 << 20  # 1 MiB: run.json, logs and locks fit; the weights (5 MB) and ONNX files do not
REPORT_DOES_NOT_FIT = 2048  # a report's JSON, Markdown and pictures are larger


def run_cli(args: list[str], limit: int | None = None):
    from cli import app

    with process_logging(), file_size_limit(limit) if limit else _no_limit():
        return CliRunner().invoke(app, [str(a) for a in args])


class _no_limit:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def assert_no_space(result, names: str) -> None:
    """Exit 2, one line on stderr saying "no space" and naming the file, no traceback."""
    lines = result.stderr.splitlines()
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.exception)
    assert len(lines) == 1 and "no space" in lines[0] and names in lines[0], result.stderr
    assert "Traceback" not in result.output


@pytest.fixture
def place(tmp_path, world) -> Path:
    """A working folder holding a copy of the world's finished, exported run and of its interrupted twin."""
    for name in ("run", "run-running"):
        shutil.copytree(world / name, tmp_path / name)
    return tmp_path


def test_train_resume_keeps_the_last_checkpoint_and_goes_on_once_space_is_freed(place):
    run = place / "run-running"  # interrupted at its last step: resuming writes the final checkpoint
    before = file_digests(run)
    result = run_cli(["train", "--resume", run], WEIGHTS_DO_NOT_FIT)
    assert_no_space(result, str(run))
    assert f"python cli.py train --resume {run}" in result.stderr  # what to do once space is freed
    after = file_digests(run)
    assert {k: v for k, v in after.items() if k in before} == before  # weights, state, run.json bit-identical
    assert temporary_files(run) == [] and open_run(run).record.status == "running"

    result = run_cli(["train", "--resume", run])
    assert result.exit_code == 0, result.stderr
    assert open_run(run).record.status == "finished"


def test_a_fresh_training_leaves_no_temporary_file(place):
    out = place / "fresh"
    result = run_cli(["train", "--loss", "ce", "--max-steps", "1", "--out", out], WEIGHTS_DO_NOT_FIT)
    assert_no_space(result, str(out))
    assert temporary_files(place) == []


def test_export_keeps_the_earlier_export(place):
    run = place / "run"
    before = file_digests(run)
    result = run_cli(["export", "--checkpoint", run, "--fp16"], WEIGHTS_DO_NOT_FIT)
    assert_no_space(result, str(run / "model.onnx"))
    assert file_digests(run) == before and temporary_files(place) == []


def test_wise_leaves_no_half_made_run(place):
    run, out = place / "run", place / "wise-out"
    before = file_digests(run)
    result = run_cli(["wise", "--checkpoint", run, "--alpha", "0.5", "--out", out], WEIGHTS_DO_NOT_FIT)
    assert_no_space(result, str(out))
    assert file_digests(run) == before and not out.exists() and temporary_files(place) == []
    assert run_cli(["wise", "--checkpoint", run, "--alpha", "0.5", "--out", out]).exit_code == 0


def test_eval_keeps_the_earlier_report_whole(place, world):
    report = place / "reports" / "report.json"
    args = ["eval", "--onnx", place / "run" / "model.onnx", "--data", world / "images", "--allow-overlap"]
    assert run_cli([*args, "--out", report]).exit_code == 0
    before = file_digests(report.parent)
    result = run_cli([*args, "--out", report], REPORT_DOES_NOT_FIT)
    assert_no_space(result, str(report.parent))
    assert file_digests(report.parent) == before and temporary_files(place) == []
