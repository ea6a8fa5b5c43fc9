"""Real training runs on CPU: few steps on the built-in model, the best checkpoint round trip, exact resume."""

import dataclasses
import io
import os
import shutil
import signal
import zipfile

import pytest

from common.errors import CheckpointError
from common.run import DataSource, open_run, write_run_record
from data.specs import EvalSet, resolve_train_data
from serve.backends import open_runner
from serve.evaluate import evaluate
from train.config import TrainConfig
from train.losses import LossConfig
from train.trainer import TrainingInterrupted, prepare, train

pytestmark = pytest.mark.slow


def _losses(run_dir):
    return open_run(run_dir).metrics()


def test_loss_falls_and_best_checkpoint_round_trips(tmp_path):
    cfg = TrainConfig(max_steps=16, log_every=1, batch_size=32, loss=LossConfig(kind="ce"))
    run = train(cfg, tmp_path / "run")
    steps = [r for r in _losses(tmp_path / "run") if "loss" in r]
    assert len(steps) == 16
    head, tail = sum(r["loss"] for r in steps[:4]) / 4, sum(r["loss"] for r in steps[-4:]) / 4
    assert tail < head * 0.9, (head, tail)
    # The reloaded best checkpoint reproduces the validation accuracy it was chosen for.
    runner = open_runner(tmp_path / "run")
    val = resolve_train_data(DataSource()).val
    report, _ = evaluate(runner, [EvalSet(val, "id")], batch_size=128)
    assert report.datasets["val"].top1 == pytest.approx(run.record.best.val_top1, abs=1e-9)


def as_if_saved_on_gpu(path):
    """Rewrites a torch.save file as a CUDA machine would have written it: every storage's location 'cuda:0' (a
    protocol-2 pickle spells the location as BINUNICODE 'cpu'); loading it here without map_location fails."""
    with zipfile.ZipFile(path) as old:
        members = {name: old.read(name) for name in old.namelist()}
    pickle = next(name for name in members if name.endswith("data.pkl"))
    assert b"X\x03\x00\x00\x00cpu" in members[pickle]
    members[pickle] = members[pickle].replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as new:
        for name, data in members.items():
            new.writestr(name, data)
    path.write_bytes(buffer.getvalue())


def test_resume_equals_uninterrupted_run(tmp_path, tiny_folder):
    # 54 training images, batch 16: 4 steps an epoch, so 9 steps cross two epoch boundaries.
    cfg = TrainConfig(data=str(tiny_folder), max_steps=9, batch_size=16, log_every=1, augment="randaugment")
    train(cfg, tmp_path / "straight")

    def press_ctrl_c(step, terms):
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted):
        train(cfg, tmp_path / "resumed", on_step=press_ctrl_c)
    assert open_run(tmp_path / "resumed").record.status == "interrupted"
    # Resumed on this CPU host as if it had been trained on a GPU: state.pt's tensors say cuda:0.
    as_if_saved_on_gpu(tmp_path / "resumed" / "state.pt")
    train(cfg, tmp_path / "resumed", resume=True)

    straight, resumed = _losses(tmp_path / "straight"), _losses(tmp_path / "resumed")
    assert [r["step"] for r in straight] == [r["step"] for r in resumed]
    for a, b in zip(straight, resumed, strict=False):
        for key in ("loss", "ce_loss", "kd_loss", "val_top1"):
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=1e-6, abs=1e-7), (a["step"], key)
    assert (tmp_path / "straight" / "last.safetensors").read_bytes() == (
        tmp_path / "resumed" / "last.safetensors"
    ).read_bytes()
    # A finished run has nothing to resume; the checks below play a run killed while running.
    with pytest.raises(CheckpointError, match="has finished training"):
        prepare(cfg, tmp_path / "straight", resume=True)
    for name in ("straight", "resumed"):
        record = open_run(tmp_path / name).record
        write_run_record(tmp_path / name, dataclasses.replace(record, status="running"))
    # Weights from another step than the optimizer state (a kill between the two writes) are refused on resume.
    best_step = open_run(tmp_path / "resumed").record.best.step
    assert best_step != 9  # the best validation came before the last step here
    shutil.copy(tmp_path / "resumed" / "best.safetensors", tmp_path / "resumed" / "last.safetensors")
    with pytest.raises(CheckpointError, match="killed while saving"):
        prepare(cfg, tmp_path / "resumed", resume=True)
    # Resuming with other settings than the run's is refused, naming them.
    other = TrainConfig(data=str(tiny_folder), max_steps=9, batch_size=32, log_every=1, augment="randaugment")
    with pytest.raises(CheckpointError, match=r"with other settings: batch_size \(32, the run has 16\)"):
        prepare(other, tmp_path / "straight", resume=True)
    (tmp_path / "straight" / "state.pt").write_bytes(b"truncated")
    with pytest.raises(CheckpointError, match="unreadable state.pt"):
        prepare(cfg, tmp_path / "straight", resume=True)
    (tmp_path / "straight" / "state.pt").unlink()
    with pytest.raises(CheckpointError, match="no state.pt"):
        prepare(cfg, tmp_path / "straight", resume=True)


def test_auto_precision_is_bf16_from_ampere_on_and_fp16_on_older_gpus():
    import torch

    from train.session import autocast_dtype

    assert autocast_dtype("auto", (8, 0)) is torch.bfloat16 and autocast_dtype("auto", (9, 0)) is torch.bfloat16
    assert autocast_dtype("auto", (7, 5)) is torch.float16  # T4, V100: torch emulates bf16 there, slowly
    assert autocast_dtype("auto", None) is None  # the CPU: FP32
    assert autocast_dtype("bf16", (7, 0)) is torch.bfloat16 and autocast_dtype("fp32", (9, 0)) is None
    assert autocast_dtype("fp16", None) is None and autocast_dtype("bf16", None) is torch.bfloat16


def test_bf16_autocast_is_used_on_the_cpu_only_when_asked_for():
    import torch

    from train.session import autocast

    a = torch.randn(4, 4)
    for precision, dtype in (("bf16", torch.bfloat16), ("auto", torch.float32), ("fp32", torch.float32)):
        with autocast(torch.device("cpu"), precision):
            assert (a @ a).dtype == dtype, precision
