"""Every head, and a WiSE-FT run, through export and evaluation: the artifact names its head, the ONNX graph is the
tower plus that head (TeS's projection stays behind), and ONNX Runtime agrees with torch."""

import json

import numpy as np
import onnx
import pytest
import torch
from typer.testing import CliRunner

from cli import app
from common.artifact import read_onnx_spec
from common.run import FINETUNED_WEIGHTS, open_run
from serve.onnxruntime_runner import OnnxRuntimeRunner
from train.config import TrainConfig
from train.losses import LossConfig
from train.recipes import recipe_config
from train.trainer import train
from workflows.export import export_run

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("head", "loss", "lp_fraction"), [("trainable", "proreg", 0.5), ("linear", "tes", 0.0), ("linear", "ce", 0.0)]
)
def test_a_trained_head_exports_into_one_graph_that_agrees_with_torch(tmp_path, head, loss, lp_fraction):
    run_dir = tmp_path / "run"
    cfg = TrainConfig(max_steps=3, batch_size=32, head=head, lp_fraction=lp_fraction, loss=LossConfig(kind=loss))
    run = train(cfg, run_dir)
    result = export_run(run_dir, fp16=True, parity_n=64, log=lambda msg: None)
    spec = read_onnx_spec(result.onnx["fp32"])
    assert spec.classifier.head == head == run.classifier.head
    graph = onnx.load(str(result.onnx["fp32"]))
    initializers = {i.name for i in graph.graph.initializer}
    assert not any("projection" in name for name in initializers)  # TeS's g trains the tower, is not shipped
    model = run.load_classifier()
    images = torch.randn(5, 3, 64, 64)
    with torch.no_grad():
        expected = model(images).numpy()
    np.testing.assert_allclose(OnnxRuntimeRunner(result.onnx["fp32"]).infer(images), expected, atol=1e-4)
    assert all(p.passed for p in result.parity.values())


def test_a_recipe_with_wise_ships_the_interpolated_model_and_keeps_the_fine_tuned_one(tmp_path):
    run_dir = tmp_path / "run"
    run = train(recipe_config("proreg+wise0.5", max_steps=3, batch_size=32), run_dir)
    assert run.record.wise is not None and run.record.wise.alpha == 0.5 and (run_dir / FINETUNED_WEIGHTS).is_file()
    assert open_run(run_dir).record.train_config["recipe"] == "proreg+wise0.5"
    assert run.record.status == "finished" and 0 <= run.record.wise.val_top1 <= 1  # the interpolated model's
    result = export_run(run_dir, parity_n=32, log=lambda msg: None)
    images = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        expected = open_run(run_dir).load_classifier()(images).numpy()  # best.safetensors: the interpolation
    np.testing.assert_allclose(OnnxRuntimeRunner(result.onnx["fp32"]).infer(images), expected, atol=1e-4)


def test_the_wise_command_writes_a_run_that_export_and_eval_take(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train(TrainConfig(max_steps=3, batch_size=32, head="trainable"), tmp_path / "run")
    cli = CliRunner()
    done = cli.invoke(app, ["wise", "--checkpoint", "run", "--alpha", "0.3", "--out", "wise"])
    assert done.exit_code == 0, done.output
    record = open_run(tmp_path / "wise").record
    assert record.wise is not None and record.wise.alpha == 0.3 and record.wise.base == "zero-shot"
    assert record.classifier.head == "trainable"
    exported = cli.invoke(app, ["export", "--checkpoint", "wise"])
    assert exported.exit_code == 0, exported.output
    evaluated = cli.invoke(
        app,
        ["eval", "--onnx", "wise/model.onnx", "--reference", "wise", "--max-drop", "1", "--data", "builtin:ood_sketch"],
    )
    assert evaluated.exit_code == 0, evaluated.output


def test_a_training_killed_after_interpolating_resumes_without_interpolating_twice(tmp_path):
    """The interpolation happens before run.json says "finished": a kill in between leaves a run that resumes into
    the interpolation again, which starts from the kept fine-tuned weights, not from the interpolated ones."""
    run_dir = tmp_path / "run"
    run = train(recipe_config("proreg+wise0.5", max_steps=3, batch_size=32), run_dir)
    interpolated = (run_dir / "best.safetensors").read_bytes()
    record = json.loads((run_dir / "run.json").read_text())
    record.update(status="running", wise=None)  # as if killed between the weights and run.json
    (run_dir / "run.json").write_text(json.dumps(record))
    resumed = train(None, run_dir, resume=True)
    assert resumed.record.status == "finished" and resumed.record.wise.alpha == 0.5
    assert (run_dir / "best.safetensors").read_bytes() == interpolated
    assert run.record.wise.finetuned_sha256 == resumed.record.wise.finetuned_sha256
