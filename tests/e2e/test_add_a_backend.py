"""Adding a backend is one module and one registration line (docs/DESIGN.md, "Add a backend", shows this file's
backend): registered from this test alone, it is a choice of `eval`, a row of `pipeline` and of the speed benchmark,
and nothing else in the project had to name it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cli import app
from common.artifact import ExportedFiles, read_onnx_spec
from serve.backend import ArtifactRow, Backend, RunnerOptions
from serve.backends import BACKENDS
from serve.runner import Runner

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


# ---- the backend: what a contributor writes in serve/<name>_runner.py -----------------------------------------


class PlainOnnxRunner(Runner):
    """ONNX Runtime on the CPU with every graph optimization off: the graph as exported, a reference for what the
    optimizer does to it."""

    backend = "onnxruntime-plain"
    runs_on = "CPU"

    def __init__(self, path: Path):
        import onnxruntime as ort

        self.artifact, self.spec = str(path), read_onnx_spec(path)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def _infer(self, images: torch.Tensor) -> np.ndarray:
        return self.session.run([self.spec.output_name], {self.spec.input_name: images.numpy()})[0]


def _open(source: str, options: RunnerOptions) -> Runner:
    return PlainOnnxRunner(Path(source))


def _rows(files: ExportedFiles, variant: str | None) -> list[ArtifactRow]:
    return [ArtifactRow("fp32", files.onnx["fp32"])] if "fp32" in files.onnx else []


BACKEND = Backend("onnxruntime-plain", "ONNX Runtime, unoptimized", _open, files=(".onnx",), rows=_rows)

# ---- the registration line: what a contributor adds to serve/backends.py's BACKENDS -----------------------------


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(BACKENDS, BACKEND.name, BACKEND)


# ---- where it shows up -------------------------------------------------------------------------------------------


def test_a_registered_backend_is_in_eval_the_pipeline_and_the_speed_benchmark(registered, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["pipeline", "--max-steps", "3"])
    assert result.exit_code == 0, result.output
    assert "proreg-official+wise (onnxruntime-plain fp32)" in result.output
    run = (tmp_path / "runs" / "latest").resolve()
    row = json.loads((run / "report-proreg-official-wise-onnxruntime-plain-fp32.json").read_text())
    assert row["backend"] == "onnxruntime-plain" and row["gate"]["passed"] and row["gate"]["worst_drop_pp"] == 0.0

    out = tmp_path / "plain.json"
    args = ["eval", "--onnx", str(run / "model.onnx"), "--runtime", "onnxruntime-plain", "--reference", str(run)]
    result = CliRunner().invoke(app, [*args, "--max-drop", "0.5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["backend"] == "onnxruntime-plain" and report["agreement"] and report["gate"]["passed"]

    speed = _speed_benchmark()
    peaks = {"fp32_gflops": 1.0, "bf16_gflops": 1.0, "int8_gflops": 1.0}  # the peak's own timing is not the point
    rows = speed.rows_for("builtin", 16, 1, peaks, tmp_path)
    plain = next(r for r in rows if r["backend"] == "onnxruntime-plain")
    assert plain["precision"] == "fp32" and plain["agreement"] == 1.0 and plain["images_per_s"] > 0


def _speed_benchmark():
    spec = importlib.util.spec_from_file_location("speed", ROOT / "benchmarks" / "speed.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
