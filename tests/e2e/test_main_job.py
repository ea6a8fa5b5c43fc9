"""The main job and the CLI's train -> eval contract, end to end on the built-in model and benchmark."""

import json

import pytest
from typer.testing import CliRunner

from cli import app
from common.cpu import int8_dot_products
from common.run import open_run
from data.world.benchmark import EVAL_IMAGES

pytestmark = pytest.mark.slow


def test_cli_train_then_eval_contract(tmp_path):
    run_dir, report_path = tmp_path / "run", tmp_path / "out" / "report.json"
    result = CliRunner().invoke(app, ["train", "--max-steps", "5", "--out", str(run_dir)])
    assert result.exit_code == 0, result.output
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "finished" and info["progress"]["step"] == 5
    assert info["classifier"]["classes"] == ["circle", "square", "triangle", "star", "cross", "hexagon"]
    assert info["classifier"]["preprocess"]["size"] == 64 and info["train_config"]["loss"]["kind"] == "proreg"
    assert {"best.safetensors", "last.safetensors", "metrics.jsonl"} <= {p.name for p in run_dir.iterdir()}
    first = open_run(run_dir).metrics()[0]
    assert {"ce_loss", "kd_loss", "proreg_weight_mean", "lr"} <= set(first)

    result = CliRunner().invoke(app, ["eval", "--checkpoint", str(run_dir), "--out", str(report_path)])
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    assert report["backend"] == "torch" and report["precision"] == "fp32"
    assert {d["role"] for d in report["datasets"].values()} == {"id", "ood"}
    for d in report["datasets"].values():
        assert d["n"] == EVAL_IMAGES and 0.0 <= d["top1"] <= d["top5"] <= 1.0
        assert d["worst_group_top1"] is not None and d["worst_group_top1"] <= d["top1"] + 1e-9
    assert report_path.with_suffix(".md").exists() and report_path.with_suffix(".png").stat().st_size > 1000


def test_pipeline_main_job_runs_end_to_end_without_the_network(tmp_path, monkeypatch, no_network):
    """Train, export (FP32, FP16, INT8) and evaluate every artifact, with every network connection refused."""
    monkeypatch.chdir(tmp_path)  # the pipeline writes runs/ under the working directory
    result = CliRunner().invoke(app, ["pipeline", "--max-steps", "3"])
    assert result.exit_code == 0, result.output
    run_dir = (tmp_path / "runs" / "latest").resolve()
    assert {"model.onnx", "model.fp16.onnx", "model.int8.onnx", "model.int8-cpu.onnx"} <= {
        p.name for p in run_dir.iterdir()
    }
    summary = json.loads((run_dir / "report-summary.json").read_text())  # the printed table, as a file
    reports = {
        p.name: json.loads(p.read_text()) for p in run_dir.glob("report-*.json") if p != run_dir / "report-summary.json"
    }
    rows = {"torch", "onnxruntime-fp32", "onnxruntime-fp16", "onnxruntime-int8", "onnxruntime-int8-cpu"}
    rows |= {"openvino-fp32"}  # OpenVINO is in the dev extra; its BF16 row needs a BF16 CPU, its INT8 row VNNI
    rows |= {"openvino-int8"} if int8_dot_products() else set()
    expected = {"report-zero-shot-torch.json"} | {f"report-proreg-official-wise-{r}.json" for r in rows}
    assert set(reports) - expected <= {"report-proreg-official-wise-openvino-bf16.json"}
    assert expected <= set(reports)
    assert "recommended for this machine: proreg-official+wise (" in result.output
    assert summary["recommended"].startswith("proreg-official+wise (") and len(summary["rows"]) == len(reports)
    record = open_run(run_dir).record
    assert record.wise is not None and record.wise.alpha == 0.5 and record.classifier.head == "trainable"
    assert reports["report-zero-shot-torch.json"]["gate"] is None  # the baseline is not gated
    for name in ("fp32", "fp16", "int8", "int8-cpu"):
        gate = reports[f"report-proreg-official-wise-onnxruntime-{name}.json"]["gate"]
        assert gate["passed"] and gate["max_drop_pp"] == (1.5 if name.startswith("int8") else 1.0)
