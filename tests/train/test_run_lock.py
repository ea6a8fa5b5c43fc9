"""One training at a time in a run directory; a lock left by a killed process is taken over."""

import os
import signal
import subprocess
import sys
import time

import pytest

from common.errors import CheckpointError
from train.config import TrainConfig
from train.run_dirs import LOCK_FILE, RunLock
from train.trainer import prepare


def test_a_second_lock_on_the_same_directory_is_refused_until_the_first_is_released(tmp_path):
    first = RunLock(tmp_path)
    with pytest.raises(CheckpointError, match=rf"{tmp_path} is in use by another training; wait"):
        RunLock(tmp_path)  # locked, not yet claimed: no process to name
    first.claim()
    with pytest.raises(CheckpointError, match=rf"{tmp_path} is in use by another training \(process {os.getpid()}\)"):
        RunLock(tmp_path)
    first.release()
    RunLock(tmp_path).release()


def test_a_training_into_a_locked_directory_is_refused_before_it_writes(tmp_path, tiny_folder):
    (tmp_path / "run").mkdir()
    held = RunLock(tmp_path / "run")
    with pytest.raises(CheckpointError, match="is in use by another training"):
        prepare(TrainConfig(data=str(tiny_folder), max_steps=1), tmp_path / "run")
    assert list((tmp_path / "run").iterdir()) == []  # the refused training wrote nothing
    held.release()


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from train.run_dirs import RunLock; l = RunLock({str(tmp_path)!r}); l.claim(); input()",
        ],
        stdin=subprocess.PIPE,
    )
    deadline = time.time() + 30
    while not (tmp_path / LOCK_FILE).exists() or not (tmp_path / LOCK_FILE).read_text():
        assert time.time() < deadline and holder.poll() is None
        time.sleep(0.05)
    with pytest.raises(CheckpointError, match=rf"another training \(process {holder.pid}\)"):
        RunLock(tmp_path)
    holder.send_signal(signal.SIGKILL)  # no chance to clean up: the file stays, the kernel drops the lock
    holder.wait()
    assert (tmp_path / LOCK_FILE).exists()
    RunLock(tmp_path).release()


# ------------------------------------------------------------------------------ the lock's life, Ctrl-C early


def _cli(args):
    from typer.testing import CliRunner

    from cli import app
    from tests.cli.conftest import process_logging

    with process_logging():
        return CliRunner().invoke(app, [str(a) for a in args])


def test_a_finished_run_keeps_no_lock(tmp_path, tiny_folder):
    from train.trainer import train

    train(TrainConfig(data=str(tiny_folder), max_steps=1, loss=_ce()), tmp_path / "run")
    assert not (tmp_path / "run" / LOCK_FILE).exists()


def _ce():
    from train.losses import LossConfig

    return LossConfig(kind="ce")


def _press_ctrl_c(*args, **kwargs):
    raise KeyboardInterrupt


def test_ctrl_c_before_the_first_checkpoint_says_so_and_removes_the_run_directory(tmp_path, tiny_folder, monkeypatch):
    import train.trainer

    monkeypatch.setattr(train.trainer, "precompute_teacher_logits", _press_ctrl_c)
    out = tmp_path / "runs" / "fresh"
    result = _cli(["train", "--data", tiny_folder, "--max-steps", "1", "--out", out])
    assert result.exit_code == 130
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[-1] == (
        f"interrupted while computing the teacher's logits, before the first checkpoint: nothing to resume "
        f"({out} removed)"
    )
    assert not out.exists() and (tmp_path / "runs").is_dir()  # only what the run made is gone


def test_ctrl_c_while_loading_a_resumed_run_leaves_its_checkpoint_as_it_was(tmp_path, tiny_folder, monkeypatch):
    import dataclasses

    import train.trainer
    from common.run import open_run, write_run_record
    from tests.file_size_limit import file_digests

    run = tmp_path / "run"
    train.trainer.train(TrainConfig(data=str(tiny_folder), max_steps=1, loss=_ce()), run)
    write_run_record(run, dataclasses.replace(open_run(run).record, status="running"))  # as if killed
    before = file_digests(run)
    monkeypatch.setattr(train.trainer, "restore", _press_ctrl_c)
    result = _cli(["train", "--resume", run])
    assert result.exit_code == 130
    assert result.output.splitlines()[-1] == (
        f"interrupted while loading, before the first step; its checkpoint is as it was. "
        f"Resume with: python cli.py train --resume {run}"
    )
    assert file_digests(run) == before
