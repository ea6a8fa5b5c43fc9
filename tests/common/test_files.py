"""Writing files: atomically, with the permissions the umask gives, as strict JSON; JSON lines survive a torn end."""

import math
import os
import stat

import pytest

from common.errors import UserError
from common.files import append_json_line, atomic_write_json, atomic_write_text, read_json_lines, writable_dir
from data.world.benchmark import SplitSpec, ensure_benchmark


@pytest.fixture
def umask_022(monkeypatch):
    """A team's umask, 022; common.files reads the umask once, at import (reading it means setting it)."""
    import common.files

    old = os.umask(0o022)
    monkeypatch.setattr(common.files, "UMASK", 0o022)
    yield
    os.umask(old)


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_writes_respect_the_umask(tmp_path, umask_022):
    atomic_write_text(tmp_path / "a.txt", "x")
    assert mode(tmp_path / "a.txt") == 0o644  # mkstemp alone would leave 0600: unreadable to the team
    import common.files

    common.files.UMASK = 0o077  # restored by the fixture's monkeypatch
    atomic_write_text(tmp_path / "b.txt", "x")
    assert mode(tmp_path / "b.txt") == 0o600  # a private umask stays private
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]  # no temporary files left


def test_generated_benchmark_folder_respects_the_umask(tmp_path, umask_022):
    root = ensure_benchmark(seed=5, splits=(SplitSpec("train", "train", 6, 0.9),), root=tmp_path)
    assert mode(root) == 0o755  # mkdtemp alone would leave 0700
    assert mode(root / "train.csv") == 0o644


def test_json_is_strict(tmp_path):
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        atomic_write_json(tmp_path / "r.json", {"top1": math.nan})
    assert not (tmp_path / "r.json").exists()


def test_json_lines_tolerate_only_a_torn_last_line(tmp_path):
    path = tmp_path / "m.jsonl"
    for step in range(3):
        append_json_line(path, {"step": step})
    with open(path, "a") as f:
        f.write('{"step": 3, "lo')  # a kill in the middle of a write
    assert read_json_lines(path) == [{"step": 0}, {"step": 1}, {"step": 2}]
    path.write_text('{"step": 0}\n{oops}\n{"step": 2}\n')  # damage before the end is not a torn write
    with pytest.raises(UserError, match=r"m\.jsonl line 2 is not JSON"):
        read_json_lines(path)


def test_writable_dir(tmp_path):
    assert writable_dir(tmp_path / "a" / "b", "run directory").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match=r"run directory .*file is a file, not a folder"):
        writable_dir(tmp_path / "file", "run directory")
    with pytest.raises(UserError, match=r"cannot create run directory .*file/sub"):
        writable_dir(tmp_path / "file" / "sub", "run directory")
    with pytest.raises(UserError, match="cannot create output folder /proc/proreg-test"):
        writable_dir("/proc/proreg-test", "output folder")  # not even root may create folders in /proc


def test_saved_weights_respect_the_umask(tmp_path, umask_022):
    import torch

    from common.checkpoint import save_weights

    save_weights(torch.nn.Linear(2, 2), tmp_path / "w.safetensors", step=3)
    assert mode(tmp_path / "w.safetensors") == 0o644  # safetensors alone writes 0600
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]
