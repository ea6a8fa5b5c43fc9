"""Export round trip on the built-in model: one ONNX graph, FP16, parity, eval through ONNX Runtime, the gate."""

import json
import shutil

import numpy as np
import onnx
import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from cli import app
from common.runinfo import file_sha256
from common.suites import resolve_eval_sets
from common.tensorrt_compat import tensorrt_missing_reason
from export.onnx_export import read_metadata
from export.stage import export_run
from serve.evaluate import evaluate, with_reference
from serve.runners import OnnxRuntimeRunner, torch_runner
from train.config import TrainConfig
from train.losses import LossConfig
from train.trainer import train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    run = root / "run"
    train(TrainConfig(max_steps=3, loss=LossConfig(kind="ce")), run)
    result = export_run(run, fp16=True, parity_n=128, log=lambda msg: None)
    return run, result


def test_one_graph_dynamic_batch_and_metadata(exported):
    run, result = exported
    path = result.onnx["fp32"]
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == ["image"] and [o.name for o in model.graph.output] == ["logits"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic batch
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    meta = read_metadata(path)
    info = json.loads((run / "run.json").read_text())["classifier"]
    assert meta["classes"] == info["classes"] and meta["templates"] == info["templates"]
    assert meta["preprocess"]["size"] == 64 and meta["logit_scale"] == pytest.approx(info["logit_scale"])
    assert meta["source_sha256"] == file_sha256(run / "best.safetensors")
    runner = OnnxRuntimeRunner(path)
    for n in (1, 5):
        assert runner.infer(torch.randn(n, 3, 64, 64)).shape == (n, 6)


def test_parity_fp32_and_fp16(exported):
    _, result = exported
    fp32, fp16 = result.parity["fp32"], result.parity["fp16"]
    assert fp32.passed and fp32.max_abs_logit_diff < 1e-3 and fp32.top1_agreement == 1.0
    assert fp16.passed and fp16.top1_agreement >= 0.97 and fp16.max_abs_logit_diff < 1.0


def test_fp16_graph_keeps_the_head_in_fp32(exported):
    _, result = exported
    model = onnx.load(str(result.onnx["fp16"]))
    types = {t.name: t.data_type for t in model.graph.initializer}
    assert onnx.TensorProto.FLOAT16 in types.values()  # the tower really is FP16
    inferred = onnx.shape_inference.infer_shapes(model).graph
    elem = {v.name: v.type.tensor_type.elem_type for v in list(inferred.value_info) + list(inferred.output)}
    elem.update(types)
    matmul = next(n for n in model.graph.node if "logits" in n.output)
    assert matmul.op_type == "MatMul"
    assert [elem[i] for i in matmul.input] == [onnx.TensorProto.FLOAT] * 2  # classifier matmul in FP32
    norm = next(n for n in model.graph.node if n.op_type == "ReduceL2")
    assert elem[norm.output[0]] == onnx.TensorProto.FLOAT  # the final normalization too
    layer_types = {n.op_type for n in model.graph.node}
    assert "Softmax" in layer_types  # attention pool softmax: kept FP32 by op type
    softmax = next(n for n in model.graph.node if n.op_type == "Softmax")
    assert elem[softmax.output[0]] == onnx.TensorProto.FLOAT
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # float32 in and out
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_onnx_report_matches_torch_report(exported):
    run, result = exported
    sets = resolve_eval_sets(["builtin:id_test"])
    torch_report, torch_results = evaluate(torch_runner(str(run)), sets, batch_size=128)
    onnx_report, onnx_results = evaluate(OnnxRuntimeRunner(result.onnx["fp32"]), sets, batch_size=128)
    compared = with_reference(onnx_report, onnx_results, torch_results, str(run), max_drop_pp=0.5)
    assert onnx_report["datasets"]["id_test"]["top1"] == pytest.approx(
        torch_report["datasets"]["id_test"]["top1"], abs=1e-3
    )
    assert compared["agreement"]["id_test"]["top1_agreement"] >= 0.999
    assert compared["gate"]["passed"]


def test_gate_fails_on_a_perturbed_model_and_passes_on_the_true_one(exported, tmp_path):
    run, result = exported
    bad = tmp_path / "perturbed"
    shutil.copytree(run, bad)
    state = load_file(str(bad / "best.safetensors"))
    state["class_weights"] = state["class_weights"][[1, 0, 2, 3, 4, 5]].contiguous()  # circle <-> square
    save_file(state, str(bad / "best.safetensors"))
    common = ["--data", "builtin:id_test", "--reference", str(run), "--max-drop", "1.0"]
    failed = CliRunner().invoke(app, ["eval", "--checkpoint", str(bad), *common, "--out", str(tmp_path / "bad.json")])
    assert failed.exit_code == 1, failed.output
    assert not json.loads((tmp_path / "bad.json").read_text())["gate"]["passed"]
    passed = CliRunner().invoke(
        app, ["eval", "--onnx", str(result.onnx["fp32"]), *common, "--out", str(tmp_path / "ok.json")]
    )
    # An exported artifact can be the reference too: FP16 against FP32, both ONNX.
    artifact_ref = [
        "eval",
        "--onnx",
        str(result.onnx["fp16"]),
        "--data",
        "builtin:id_test",
        "--max-drop",
        "1.0",
        "--reference",
        str(result.onnx["fp32"]),
        "--out",
        str(tmp_path / "f16.json"),
    ]
    assert CliRunner().invoke(app, artifact_ref).exit_code == 0
    assert json.loads((tmp_path / "f16.json").read_text())["reference"] == str(result.onnx["fp32"])
    assert passed.exit_code == 0, passed.output
    assert json.loads((tmp_path / "ok.json").read_text())["gate"]["passed"]


def _one_line_error(result, message):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_bad_artifacts_give_clear_errors(exported, tmp_path):
    run, result = exported
    _one_line_error(CliRunner().invoke(app, ["eval", "--onnx", str(tmp_path / "none.onnx")]), "no such ONNX file")
    foreign = tmp_path / "foreign.onnx"
    model = onnx.load(str(result.onnx["fp32"]))
    del model.metadata_props[:]
    onnx.save(model, str(foreign))
    _one_line_error(CliRunner().invoke(app, ["eval", "--onnx", str(foreign)]), "carries no 'proreg_clip' metadata")
    with pytest.raises(ValueError, match=r"takes images of shape \[N, 3, 64, 64\], got \[2, 3, 32, 32\]"):
        OnnxRuntimeRunner(result.onnx["fp32"]).infer(torch.randn(2, 3, 32, 32))
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not a protobuf at all")
    _one_line_error(CliRunner().invoke(app, ["eval", "--onnx", str(corrupt)]), "cannot read ONNX file")
    _one_line_error(CliRunner().invoke(app, ["export", "--checkpoint", str(tmp_path / "nope")]), "not a run directory")


@pytest.mark.skipif(
    tensorrt_missing_reason() is None, reason="TensorRT is present: the absent-TensorRT path cannot run"
)
def test_tensorrt_absent_is_one_clear_line(exported, tmp_path):
    _, result = exported
    assert result.engines == {} and "TensorRT" in result.engine_skipped
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"\x00")
    (tmp_path / "model.plan.json").write_text(
        json.dumps({"classifier": read_metadata(result.onnx["fp32"]), "precision": "fp32", "profile": {"max_batch": 8}})
    )
    _one_line_error(CliRunner().invoke(app, ["eval", "--engine", str(plan)]), "TensorRT is not installed")


@pytest.mark.tensorrt
@pytest.mark.skipif(
    tensorrt_missing_reason() is not None, reason=f"needs TensorRT and a GPU: {tensorrt_missing_reason()}"
)
def test_tensorrt_engine_matches_onnx_runtime(exported):
    from serve.tensorrt_runner import TensorRTRunner

    _, result = exported
    images = torch.randn(7, 3, 64, 64)
    for precision, plan in result.engines.items():
        ort = OnnxRuntimeRunner(result.onnx[precision]).infer(images)
        trt = TensorRTRunner(plan).infer(images)
        assert trt.shape == (7, 6)
        assert np.abs(trt - ort).max() < (0.05 if precision == "fp32" else 1.0)
