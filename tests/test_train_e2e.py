"""Real training runs on CPU: few steps on the built-in model, resume, checkpoint round trip."""

import json
import os
import shutil
import signal

import pytest
from typer.testing import CliRunner

from cli import app
from common.checkpoint import CheckpointError
from common.suites import EvalSet, resolve_train_data
from serve.evaluate import evaluate
from serve.runners import torch_runner
from train.config import TrainConfig
from train.losses import LossConfig
from train.trainer import TrainingInterrupted, prepare, train

pytestmark = pytest.mark.slow


def _losses(run_dir):
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_cli_train_then_eval_contract(tmp_path):
    run_dir, report_path = tmp_path / "run", tmp_path / "out" / "report.json"
    result = CliRunner().invoke(app, ["train", "--max-steps", "5", "--out", str(run_dir)])
    assert result.exit_code == 0, result.output
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "finished" and info["progress"]["step"] == 5
    assert info["classifier"]["classes"] == ["circle", "square", "triangle", "star", "cross", "hexagon"]
    assert info["classifier"]["preprocess"]["size"] == 64 and info["train"]["loss"]["kind"] == "proreg"
    assert {"best.safetensors", "last.safetensors", "metrics.jsonl"} <= {p.name for p in run_dir.iterdir()}
    first = _losses(run_dir)[0]
    assert {"ce_loss", "kd_loss", "proreg_weight_mean", "lr"} <= set(first)

    result = CliRunner().invoke(app, ["eval", "--checkpoint", str(run_dir), "--out", str(report_path)])
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    assert report["backend"] == "torch" and report["precision"] == "fp32"
    assert {d["role"] for d in report["datasets"].values()} == {"id", "ood"}
    for d in report["datasets"].values():
        assert d["n"] == 1200 and 0.0 <= d["top1"] <= d["top5"] <= 1.0
        assert d["worst_group_top1"] is not None and d["worst_group_top1"] <= d["top1"] + 1e-9
    assert report_path.with_suffix(".md").exists() and report_path.with_suffix(".png").stat().st_size > 1000


def test_loss_falls_and_best_checkpoint_round_trips(tmp_path):
    cfg = TrainConfig(max_steps=16, log_every=1, batch_size=32, loss=LossConfig(kind="ce"))
    info = train(cfg, tmp_path / "run")
    steps = [r for r in _losses(tmp_path / "run") if "loss" in r]
    assert len(steps) == 16
    head, tail = sum(r["loss"] for r in steps[:4]) / 4, sum(r["loss"] for r in steps[-4:]) / 4
    assert tail < head * 0.9, (head, tail)
    # The reloaded best checkpoint reproduces the validation accuracy it was chosen for.
    runner = torch_runner(str(tmp_path / "run"))
    val = resolve_train_data("builtin").val
    report, _ = evaluate(runner, [EvalSet(val, "id")], batch_size=128)
    assert report["datasets"]["val"]["top1"] == pytest.approx(info["best"]["val_top1"], abs=1e-9)


def test_resume_equals_uninterrupted_run(tmp_path, tiny_folder):
    # 54 training images, batch 16: 4 steps an epoch, so 9 steps cross two epoch boundaries.
    cfg = TrainConfig(data=str(tiny_folder), max_steps=9, batch_size=16, log_every=1, augment="randaugment")
    train(cfg, tmp_path / "straight")

    def press_ctrl_c(step, terms):
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted):
        train(cfg, tmp_path / "resumed", on_step=press_ctrl_c)
    assert json.loads((tmp_path / "resumed" / "run.json").read_text())["status"] == "interrupted"
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
    # Weights from another step than the optimizer state (a kill between the two writes) are refused on resume.
    best_step = json.loads((tmp_path / "resumed" / "run.json").read_text())["best"]["step"]
    assert best_step != 9  # the best validation came before the last step here
    shutil.copy(tmp_path / "resumed" / "best.safetensors", tmp_path / "resumed" / "last.safetensors")
    with pytest.raises(CheckpointError, match="killed while saving"):
        prepare(cfg, tmp_path / "resumed", resume=True)


def test_pipeline_main_job_runs_end_to_end(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the pipeline writes runs/ under the working directory
    result = CliRunner().invoke(app, ["pipeline", "--max-steps", "3"])
    assert result.exit_code == 0, result.output
    run_dir = (tmp_path / "runs" / "latest").resolve()
    assert {"model.onnx", "model.fp16.onnx", "model.int8.onnx"} <= {p.name for p in run_dir.iterdir()}
    reports = {p.name: json.loads(p.read_text()) for p in run_dir.glob("report-*.json")}
    assert set(reports) == {
        "report-zero-shot-torch.json",
        "report-proreg-torch.json",
        "report-proreg-onnxruntime-fp32.json",
        "report-proreg-onnxruntime-fp16.json",
        "report-proreg-onnxruntime-int8.json",
    }
    assert reports["report-zero-shot-torch.json"]["gate"] is None  # the baseline is not gated
    for name in ("fp32", "fp16", "int8"):
        gate = reports[f"report-proreg-onnxruntime-{name}.json"]["gate"]
        assert gate["passed"] and gate["max_drop_pp"] == (1.5 if name == "int8" else 1.0)
