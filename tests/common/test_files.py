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


# ---------------------------------------------------------------------------------------------- a full disk


def test_a_write_past_the_space_left_names_the_file_and_keeps_the_old_one(tmp_path):
    from common.errors import NoSpaceError
    from tests.file_size_limit import file_size_limit, temporary_files

    path = tmp_path / "notes.json"
    atomic_write_json(path, {"old": True})
    before = path.read_bytes()
    with file_size_limit(4096), pytest.raises(NoSpaceError) as caught:
        atomic_write_text(path, "x" * 10_000)
    assert str(path) in str(caught.value) and "no space" in str(caught.value)
    assert "File too large" in str(caught.value)  # EFBIG's own words
    assert path.read_bytes() == before and temporary_files(tmp_path) == []
    atomic_write_text(path, "x" * 10_000)  # once space is freed
    assert path.read_text() == "x" * 10_000


def test_files_staged_together_move_together(tmp_path):
    """Two files staged in nested blocks: when the second cannot be written, neither is moved into place."""
    from common.errors import NoSpaceError
    from common.files import staged_file
    from tests.file_size_limit import file_size_limit, temporary_files

    small, large = tmp_path / "small.txt", tmp_path / "large.bin"
    small.write_text("old small")
    large.write_bytes(b"old large")
    with file_size_limit(4096), pytest.raises(NoSpaceError, match="large.bin"):
        with staged_file(small) as small_tmp, staged_file(large) as large_tmp:
            small_tmp.write_text("new small")
            large_tmp.write_bytes(b"\0" * 10_000)
    assert (small.read_text(), large.read_bytes()) == ("old small", b"old large")
    assert temporary_files(tmp_path) == []


def test_a_json_line_that_does_not_fit_leaves_no_torn_line(tmp_path):
    """A line cut short by a full disk is taken back: later lines (once space is freed) are not appended after a
    torn one, which would make the file unreadable."""
    from common.errors import NoSpaceError
    from tests.file_size_limit import file_size_limit

    path = tmp_path / "metrics.jsonl"
    append_json_line(path, {"step": 1})
    size = path.stat().st_size
    with file_size_limit(size + 10), pytest.raises(NoSpaceError, match="metrics.jsonl"):
        append_json_line(path, {"step": 2, "loss": 0.123456789})
    assert path.stat().st_size == size
    append_json_line(path, {"step": 3})
    assert read_json_lines(path) == [{"step": 1}, {"step": 3}]


@pytest.mark.parametrize(
    "error, reason",
    [
        (OSError(28, "No space left on device", "/data/x"), "No space left on device"),
        (OSError(27, "File too large"), "File too large"),
        (OSError(122, "Disk quota exceeded"), "Disk quota exceeded"),
        (
            RuntimeError("SafetensorError: Error while serializing: IoError(Os { code: 27, message: File too large })"),
            "File too large",
        ),  # fmt: skip
        (PermissionError(13, "Permission denied"), None),
        (ValueError("a bug"), None),
    ],
)
def test_what_counts_as_no_space(error, reason):
    """errno ENOSPC, EFBIG, EDQUOT, or their text where a library keeps only the text (safetensors)."""
    from common.files import no_space_reason

    assert no_space_reason(error) == reason
    wrapped = RuntimeError("writing failed")
    wrapped.__cause__ = error
    assert no_space_reason(wrapped) == reason  # raised from it


def test_a_full_disk_nobody_caught_is_one_line_naming_the_file():
    from common.errors import NoSpaceError
    from common.files import as_user_error

    err = as_user_error(OSError(28, "No space left on device", "/data/run/metrics.jsonl"))
    assert isinstance(err, NoSpaceError) and "no space to write /data/run/metrics.jsonl" in str(err)
    assert "\n" not in str(err)
    assert as_user_error(ValueError("a bug")) is None  # a bug keeps its traceback
    bad_input = UserError("bad input")
    assert as_user_error(bad_input) is bad_input


def test_a_new_folder_whose_filling_fails_is_removed(tmp_path):
    from common.files import new_folder

    with pytest.raises(RuntimeError), new_folder(tmp_path / "new" / "run", "output folder"):
        raise RuntimeError("no space")
    assert not (tmp_path / "new" / "run").exists()
    (tmp_path / "kept").mkdir()
    with pytest.raises(RuntimeError), new_folder(tmp_path / "kept", "output folder"):
        raise RuntimeError("no space")
    assert (tmp_path / "kept").is_dir()  # it was there before
