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
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [LOCK_FILE]
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
