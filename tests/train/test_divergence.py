"""A training that stops being finite ends with one line naming the step, keeps its last good checkpoint, saves no
broken model, and can be resumed (with a gentler learning rate)."""

import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import train.trainer as trainer
from cli import app
from common.run import LAST_WEIGHTS, open_run
from data.specs import EvalSet
from serve.backends import open_runner
from serve.evaluate import evaluate
from train.checkpointing import TrainingDiverged, save_checkpoint
from train.config import TrainConfig
from train.losses import LossConfig
from train.trainer import prepare, run_training, train

pytestmark = pytest.mark.slow


def break_at(monkeypatch, call: int, how: str) -> None:
    """Makes the `call`-th loss (one per step here) non-finite, or its gradient infinite."""
    real, calls = trainer.compute_loss, []

    def compute_loss(cfg, student, teacher, labels, text_cosines=None, contrastive=None):
        calls.append(1)
        terms = real(cfg, student, teacher, labels, text_cosines, contrastive)
        if len(calls) == call and how == "loss":
            terms["ce_loss"] = terms["ce_loss"] * math.nan
        if len(calls) == call and how == "gradient":
            student.register_hook(lambda grad: grad * math.inf)
        return terms

    monkeypatch.setattr(trainer, "compute_loss", compute_loss)


def config(tiny_folder) -> TrainConfig:
    # 54 training images, batch 16: 4 steps an epoch, a checkpoint after step 4.
    return TrainConfig(data=str(tiny_folder), max_steps=9, batch_size=16, log_every=1, loss=LossConfig(kind="ce"))


def test_a_non_finite_loss_stops_keeps_the_last_good_checkpoint_and_resumes(tmp_path, tiny_folder, monkeypatch):
    out = tmp_path / "run"
    break_at(monkeypatch, 6, "loss")
    with pytest.raises(TrainingDiverged) as info:
        train(config(tiny_folder), out)
    assert str(info.value) == (
        f"training diverged at step 6: the loss is nan; the last good checkpoint (step 4) is kept; "
        f"resume with a lower lr: python cli.py train --resume {out} --lr LR"
    )
    run = open_run(out)
    assert run.record.status == "diverged" and run.record.error == str(info.value)
    assert run.record.progress.step == 4 and 0 <= run.record.best.step <= 4
    # The last good checkpoint evaluates, with finite logits.
    report, results = evaluate(open_runner(out), [EvalSet(_val(tiny_folder), "id")], batch_size=32)
    assert all(np.isfinite(r.logits).all() for r in results.values()) and report.datasets["tiny-val"].n > 0
    # Resume after the stop, more gently; the run then finishes where it was headed.
    monkeypatch.undo()
    result = CliRunner().invoke(app, ["train", "--resume", str(out), "--lr", "1e-4"])  # as the error says
    assert result.exit_code == 0, result.output
    resumed = open_run(out)
    assert resumed.record.status == "finished" and resumed.record.progress.step == 9
    assert resumed.record.train_config["lr"] == 1e-4 and resumed.record.error is None
    steps = [r["step"] for r in resumed.metrics() if "loss" in r]
    assert steps == list(range(1, 10))  # the lines of the broken attempt after step 4 were dropped


def _val(tiny_folder):
    from common.run import DataSource
    from data.specs import resolve_train_data

    return resolve_train_data(DataSource(train=str(tiny_folder))).val


def test_a_non_finite_gradient_before_any_checkpoint(tmp_path, tiny_folder, monkeypatch):
    out = tmp_path / "run"
    break_at(monkeypatch, 2, "gradient")
    with pytest.raises(TrainingDiverged, match="at step 2: a gradient is not finite; no checkpoint was saved yet"):
        train(config(tiny_folder), out)
    assert not (out / "run.json").exists() and not (out / LAST_WEIGHTS).exists()


def test_non_finite_weights_are_never_saved(tmp_path, tiny_folder):
    session = prepare(config(tiny_folder), tmp_path / "run")
    with torch.no_grad():
        next(session.models.student.visual.parameters()).fill_(math.inf)
    with pytest.raises(TrainingDiverged, match="the weights are not finite"):
        save_checkpoint(session, "running")
    assert not (tmp_path / "run" / LAST_WEIGHTS).exists()


def test_a_diverging_run_from_the_command_line(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--lr", "1e4", "--loss", "ce", "--max-steps", "40", "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: training diverged at step "), result.stderr
    assert not (out / "run.json").exists()  # it diverged before its first checkpoint: nothing to keep


def test_a_resumed_run_that_diverges_again_still_names_its_last_good_checkpoint(tmp_path, tiny_folder, monkeypatch):
    out = tmp_path / "run"
    break_at(monkeypatch, 6, "loss")
    with pytest.raises(TrainingDiverged):
        train(config(tiny_folder), out)
    before = open_run(out).record
    monkeypatch.undo()
    break_at(monkeypatch, 1, "loss")  # the first step after resuming, step 5, breaks again
    with pytest.raises(TrainingDiverged, match=r"at step 5: .*the last good checkpoint \(step 4\) is kept"):
        run_training(prepare(None, out, resume=True, overrides={"lr": 1e-4}))
    after = open_run(out).record
    assert after.status == "diverged" and after.progress == before.progress and after.best == before.best
    assert after.progress.step == 4 and after.progress.total_steps == 9


def test_a_new_run_where_one_stopped_before_its_first_checkpoint_starts_clean(tmp_path):
    out = tmp_path / "run"
    diverging = ["train", "--lr", "1e4", "--loss", "ce", "--max-steps", "40", "--out", str(out)]
    assert CliRunner().invoke(app, diverging).exit_code == 2
    assert (out / "metrics.jsonl").exists() and not (out / "run.json").exists()
    result = CliRunner().invoke(app, ["train", "--loss", "ce", "--max-steps", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert [r["step"] for r in open_run(out).metrics() if "loss" in r] == [
        1
    ]  # logged: step 1; none of the stopped attempt
