"""Export round trip on the built-in model: one ONNX graph, FP16, parity, eval through ONNX Runtime, the gate."""

import json
import shutil

import numpy as np
import onnx
import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from calib.int8 import Int8Options
from cli import app
from common.artifact import EngineInfo, ExportedFiles, read_onnx_spec, write_engine_sidecar
from common.provenance import file_sha256
from common.run import open_run
from common.tensorrt_compat import tensorrt_missing_reason
from data.labeled import DataError
from data.specs import resolve_eval_sets
from serve.backends import open_runner
from serve.evaluate import evaluate, with_reference
from serve.onnxruntime_runner import OnnxRuntimeRunner
from serve.runner import RunnerInputError
from train.config import TrainConfig
from train.losses import LossConfig
from train.trainer import train
from workflows.export import export_run

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
    spec = read_onnx_spec(path)
    classifier = open_run(run).classifier
    assert spec.classifier == classifier and spec.precision == "fp32" and spec.classifier.head == "text"
    assert (spec.input_name, spec.output_name) == ("image", "logits") and spec.source_run == str(run)
    assert spec.source_sha256 == file_sha256(run / "best.safetensors")
    fp16 = read_onnx_spec(result.onnx["fp16"])
    assert fp16.precision == "fp16" and fp16.fp32_parts == ("head",) and "node_matmul" in fp16.fp32_nodes
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
    torch_report, torch_results = evaluate(open_runner(run), sets, batch_size=128)
    onnx_report, onnx_results = evaluate(OnnxRuntimeRunner(result.onnx["fp32"]), sets, batch_size=128)
    compared = with_reference(onnx_report, onnx_results, torch_results, torch_report, max_drop_pp=0.5)
    assert compared.reference == torch_report.artifact and str(compared.reference_runs_on) == "torch fp32 on cpu"
    assert onnx_report.datasets["id_test"].top1 == pytest.approx(torch_report.datasets["id_test"].top1, abs=1e-3)
    assert compared.agreement["id_test"].top1_agreement >= 0.999
    assert compared.gate.passed


def test_gate_fails_on_a_perturbed_model_and_passes_on_the_true_one(exported, tmp_path):
    run, result = exported
    bad = tmp_path / "perturbed"
    shutil.copytree(run, bad)
    state = load_file(str(bad / "best.safetensors"))
    state["head.weight"] = state["head.weight"][[1, 0, 2, 3, 4, 5]].contiguous()  # circle <-> square
    save_file(state, str(bad / "best.safetensors"))
    common = ["--data", "builtin:id_test", "--reference", str(run), "--max-drop", "1.0"]
    failed = CliRunner().invoke(app, ["eval", "--checkpoint", str(bad), *common, "--out", str(tmp_path / "bad.json")])
    assert failed.exit_code == 1, failed.output
    bad_gate = json.loads((tmp_path / "bad.json").read_text())["gate"]
    assert not bad_gate["passed"]
    assert f"gate failed: worst drop {bad_gate['worst_drop_pp']:+.2f} pp > 1.0 pp" in failed.stderr
    low, high = bad_gate["worst_drop_interval_pp"]  # the point drop's 95% interval is said beside it
    assert low <= bad_gate["worst_drop_pp"] <= high and low > 1.0  # swapped classes: clearly past the limit
    assert f"(95% interval {low:+.2f} to {high:+.2f} pp)" in failed.stderr
    passed = CliRunner().invoke(
        app, ["eval", "--onnx", str(result.onnx["fp32"]), *common, "--out", str(tmp_path / "ok.json")]
    )
    assert passed.exit_code == 0 and "gate passed: worst drop" in passed.stderr  # a passing gate is said too
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
    with pytest.raises(RunnerInputError, match=r"takes images of shape \[N, 3, 64, 64\], got \[2, 3, 32, 32\]"):
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
    engine = EngineInfo("10.13.0", "NVIDIA A10", "8.6", min_batch=1, opt_batch=4, max_batch=8)
    write_engine_sidecar(plan, read_onnx_spec(result.onnx["fp32"]), engine)
    _one_line_error(CliRunner().invoke(app, ["eval", "--engine", str(plan)]), "TensorRT is not installed")


@pytest.mark.tensorrt
@pytest.mark.skipif(
    tensorrt_missing_reason() is not None, reason=f"needs TensorRT and a GPU: {tensorrt_missing_reason()}"
)
def test_tensorrt_engine_matches_onnx_runtime(exported):
    _, result = exported
    images = torch.randn(7, 3, 64, 64)
    for precision, plan in result.engines.items():
        ort = OnnxRuntimeRunner(result.onnx[precision]).infer(images)
        trt = open_runner(plan).infer(images)
        assert trt.shape == (7, 6)
        assert np.abs(trt - ort).max() < (0.05 if precision == "fp32" else 1.0)


def test_export_int8_records_calibration_and_refuses_bad_calibration_data(exported, tmp_path, tiny_folder):
    run, _ = exported
    options = Int8Options(n_images=48, method="percentile")
    said: list[str] = []
    result = export_run(run, tmp_path / "int8", int8=options, parity_n=64, log=said.append)
    parity_lines = [line for line in said if "parity on" in line]
    assert [line.split(":")[0] for line in parity_lines] == ["model.onnx", "model.int8.onnx", "model.int8-cpu.onnx"]
    calibration = read_onnx_spec(result.onnx["int8"]).calibration
    assert calibration.method == "percentile" and calibration.images == 32  # 48 sampled, fed in whole batches of 32
    assert calibration.data == "builtin (training split)"
    assert result.parity["int8"].passed and result.parity["int8"].precision == "int8"
    # A calibration folder with a class missing is refused before anything is written.
    (tiny_folder / "hexagon").rename(tmp_path / "moved")
    with pytest.raises(DataError, match="hexagon"):
        export_run(
            run, tmp_path / "out", int8=Int8Options(calib_data=str(tiny_folder), n_images=16), log=lambda m: None
        )
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_bench_gates_every_runtime_and_recommends_the_fastest_that_passed(exported, tmp_path):
    from serve.openvino_runner import cpu_supports_bf16
    from serve.side_by_side import report_paths

    run, _ = exported
    folder = tmp_path / "run"
    shutil.copytree(run, folder)
    # An engine TensorRT cannot run here is named and left out, not an error.
    engine = EngineInfo("10.13.0", "NVIDIA A10", "8.6", min_batch=1, opt_batch=4, max_batch=8)
    (folder / "model.plan").write_bytes(b"\x00")
    write_engine_sidecar(folder / "model.plan", read_onnx_spec(folder / "model.onnx"), engine)
    out = tmp_path / "reports" / "report.json"
    args = ["bench", str(folder), "--data", "builtin:id_test", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    names = ["reference (torch run)", "run (onnxruntime fp32)", "run (onnxruntime fp16)", "run (openvino fp32)"]
    names += ["run (openvino bf16)"] if cpu_supports_bf16() else []
    paths = report_paths(names, out)
    assert paths["run (openvino fp32)"] == out.parent / "report-run-openvino-fp32.json"
    assert sorted(out.parent.glob("*.json")) == sorted([*paths.values(), out.parent / "report-summary.json"])
    summary = json.loads((out.parent / "report-summary.json").read_text())
    assert list(summary["rows"]) == names and summary["rows"][names[1]]["report"] == paths[names[1]].name
    reports = {name: json.loads(path.read_text()) for name, path in paths.items()}
    reference, artifacts = reports[names[0]], names[1:]
    assert reference["gate"] is None
    for name in artifacts:
        assert reports[name]["reference"] == str(folder) and reports[name]["gate"]["max_drop_pp"] == 1.0
        assert reports[name]["datasets"]["id_test"]["n"] == reference["datasets"]["id_test"]["n"]
    passed = [name for name in artifacts if reports[name]["gate"]["passed"]]
    fastest = max(passed, key=lambda name: reports[name]["throughput"]["model_images_per_s"])
    said = " ".join(result.stderr.split())
    assert f"recommended for this machine: {fastest}:" in said and summary["recommended"] == fastest
    assert f"{out.parent / 'report-summary.json'} (.md)" in said
    if tensorrt_missing_reason():
        assert "not evaluated on TensorRT: model.plan" in said
    # Without a run directory the reference must be named; with it, the same rows are measured against it.
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(folder / "model.fp16.onnx", bare)
    refused = CliRunner().invoke(app, ["bench", str(bare), "--out", str(tmp_path / "b.json")])
    _one_line_error(refused, "is not a run directory: name the model its artifacts came from with --reference")
    named = [
        "bench",
        str(bare),
        "--reference",
        str(folder / "model.onnx"),
        *args[2:4],
        "--out",
        str(tmp_path / "b.json"),
    ]
    result = CliRunner().invoke(app, [*named, "--max-drop", "0"])
    fp16 = json.loads((tmp_path / "b-bare-onnxruntime-fp16.json").read_text())
    assert fp16["reference"] == str(folder / "model.onnx") and fp16["gate"]["max_drop_pp"] == 0.0
    assert result.exit_code == (0 if fp16["gate"]["passed"] else 1), result.output


def test_artifact_rows_say_when_openvino_is_missing(exported, monkeypatch):
    import serve.openvino_runner
    from workflows.pipeline import artifact_runners

    _, result = exported

    def missing():
        raise serve.openvino_runner.OpenVinoUnavailable("OpenVINO is not installed: pip install openvino")

    monkeypatch.setattr(serve.openvino_runner, "import_openvino", missing)
    heard: list[str] = []
    files = ExportedFiles({"fp32": result.onnx["fp32"]})
    runners, limits = artifact_runners("run", files, 1.0, 1.5, say=heard.append)
    assert list(runners) == ["run (onnxruntime fp32)"] and limits == {"run (onnxruntime fp32)": 1.0}
    assert heard == ["not evaluated on OpenVINO: model.onnx (OpenVINO is not installed: pip install openvino)"]
