"""INT8: calibration sampling, symmetric Q/DQ quantization of the built-in model, and bad calibration input."""

import json

import numpy as np
import onnx
import pytest
import torch
from typer.testing import CliRunner

from calib.calibration import Int8Options, calibration_images, load_calibration_array, stratified_sample
from calib.quantize import nonzero_zero_points, quantize_int8
from cli import app
from common.checkpoint import zero_shot_classifier
from common.data import DataError, LabeledImages
from common.suites import builtin_classnames, resolve_train_data
from export.onnx_export import export_onnx, read_metadata, write_metadata
from export.verify import compare
from serve.runners import OnnxRuntimeRunner


@pytest.fixture(scope="module")
def builtin_onnx(tmp_path_factory):
    names = builtin_classnames()
    model, meta = zero_shot_classifier("builtin", None, list(names), list(names.values()), ["a photo of a {}"])
    path = export_onnx(model, meta, tmp_path_factory.mktemp("int8") / "model.onnx", {"precision": "fp32"})
    return path, meta


def test_stratified_sample_is_balanced_and_deterministic():
    train = resolve_train_data("builtin").train
    picked = stratified_sample(train, 60, seed=3)
    assert [sum(s.label == c for s in picked) for c in range(6)] == [10] * 6
    assert picked == stratified_sample(train, 60, seed=3) and picked != stratified_sample(train, 60, seed=4)


def test_quantized_model_is_symmetric_qdq_and_runs(builtin_onnx, tmp_path):
    fp32, meta = builtin_onnx
    calib = calibration_images(resolve_train_data("builtin").train, meta, 64)
    assert calib.shape == (64, 3, 64, 64)
    int8 = tmp_path / "model.int8.onnx"
    kept, used = quantize_int8(fp32, int8, calib, "minmax")
    assert used == 64
    write_metadata(int8, meta, {"precision": "int8"})
    graph = onnx.load(str(int8)).graph
    quantize_ops = [n for n in graph.node if n.op_type == "QuantizeLinear"]
    assert len(quantize_ops) > 10 and nonzero_zero_points(int8) == []
    zero_points = {t.name: t for t in graph.initializer}
    assert all(zero_points[n.input[2]].data_type == onnx.TensorProto.INT8 for n in quantize_ops if len(n.input) > 2)
    assert "node_matmul" in kept  # the classifier matmul stays FP32
    parity = compare(OnnxRuntimeRunner(fp32), OnnxRuntimeRunner(int8), torch.from_numpy(calib))
    assert parity.top1_agreement >= 0.9 and parity.max_abs_logit_diff > 0  # really quantized, still the same model


def test_export_int8_records_calibration_and_drop(tmp_path, tiny_folder):
    from export.stage import export_run
    from train.config import TrainConfig
    from train.losses import LossConfig
    from train.trainer import train

    run = tmp_path / "run"
    train(TrainConfig(max_steps=2, loss=LossConfig(kind="ce")), run)
    result = export_run(run, int8=Int8Options(size=48, method="percentile"), parity_n=64, log=lambda m: None)
    info = read_metadata(result.onnx["int8"])["calibration"]
    assert info["method"] == "percentile" and info["images"] == 32  # 48 sampled, fed in whole batches of 32
    assert "training split" in info["data"]
    assert result.parity["int8"].passed and result.parity["int8"].precision == "int8"
    # A calibration folder with a class missing is refused before anything is written.
    (tiny_folder / "hexagon").rename(tmp_path / "moved")
    with pytest.raises(DataError, match="hexagon"):
        export_run(run, tmp_path / "out", int8=Int8Options(calib_data=str(tiny_folder), size=16), log=lambda m: None)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_bad_calibration_input(tmp_path, builtin_onnx):
    _, meta = builtin_onnx
    with pytest.raises(ValueError, match="at least 16 images"):
        Int8Options(size=8)
    few = LabeledImages("few", meta.classes, resolve_train_data("builtin").train.samples[:12])
    with pytest.raises(DataError, match="no images of class"):
        calibration_images(LabeledImages("x", meta.classes + ["pentagon"], few.samples), meta, 16)
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((32, 3, 32, 32), np.float32))
    with pytest.raises(DataError, match=r"shape \[32, 3, 32, 32\]; the model takes \[N, 3, 64, 64\]"):
        load_calibration_array(wrong, meta)
    run = tmp_path / "run"
    run.mkdir()
    result = CliRunner().invoke(app, ["export", "--int8", "--calib-method", "magic", "--checkpoint", str(run)])
    assert result.exit_code == 2 and "unknown calibration method 'magic'" in result.stderr
    assert json.dumps(read_metadata(builtin_onnx[0]))  # the source model was left untouched
