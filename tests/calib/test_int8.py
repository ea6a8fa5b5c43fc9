"""INT8: calibration sampling, symmetric Q/DQ quantization of the built-in model, and bad calibration input."""

import numpy as np
import onnx
import pytest
import torch

from calib.calibration import calibration_images, load_calibration_array, stratified_sample
from calib.int8 import Int8Options, write_int8_copy
from calib.quantize import nonzero_zero_points
from common.artifact import read_onnx_spec
from common.errors import OptionError
from common.run import DataSource
from data.labeled import DataError, LabeledImages
from data.specs import resolve_train_data
from serve.onnxruntime_runner import OnnxRuntimeRunner
from serve.parity import check_parity


def test_stratified_sample_is_balanced_and_deterministic():
    train = resolve_train_data(DataSource()).train
    picked = stratified_sample(train, 60, seed=3)
    assert [sum(s.label == c for s in picked) for c in range(6)] == [10] * 6
    assert picked == stratified_sample(train, 60, seed=3) and picked != stratified_sample(train, 60, seed=4)


def test_quantized_model_is_symmetric_qdq_and_runs(builtin_onnx, tmp_path):
    fp32, spec = builtin_onnx
    calib = calibration_images(resolve_train_data(DataSource()).train, spec.classifier, 64)
    assert calib.shape == (64, 3, 64, 64)
    int8 = tmp_path / "model.int8.onnx"
    write_int8_copy(fp32, int8, spec, calib, Int8Options(method="minmax"), "train")
    written = read_onnx_spec(int8)
    assert written.precision == "int8" and written.calibration.images == 64 and written.calibration.method == "minmax"
    assert written.fp32_parts == ("patch_embed", "pool", "head") and written.classes == spec.classes
    graph = onnx.load(str(int8)).graph
    quantize_ops = [n for n in graph.node if n.op_type == "QuantizeLinear"]
    assert len(quantize_ops) > 10 and nonzero_zero_points(int8) == []
    zero_points = {t.name: t for t in graph.initializer}
    assert all(zero_points[n.input[2]].data_type == onnx.TensorProto.INT8 for n in quantize_ops if len(n.input) > 2)
    assert "node_matmul" in written.fp32_nodes  # the classifier matmul stays FP32
    parity = check_parity(OnnxRuntimeRunner(fp32), OnnxRuntimeRunner(int8), torch.from_numpy(calib))
    assert parity.top1_agreement >= 0.9 and parity.max_abs_logit_diff > 0  # really quantized, still the same model


def test_the_cpu_copy_is_u8s8_with_activation_zero_points_and_stays_the_same_model(builtin_onnx, tmp_path):
    fp32, spec = builtin_onnx
    calib = calibration_images(resolve_train_data(DataSource()).train, spec.classifier, 64)
    cpu = write_int8_copy(fp32, tmp_path / "model.int8-cpu.onnx", spec, calib, Int8Options(), "train", "u8s8")
    written = read_onnx_spec(cpu)
    assert written.precision == "int8" and written.calibration.scheme == "u8s8"
    graph = onnx.load(str(cpu)).graph
    inits = {t.name: t for t in graph.initializer}
    activations = [n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in inits]
    assert activations and all(inits[n.input[2]].data_type == onnx.TensorProto.UINT8 for n in activations)
    assert nonzero_zero_points(cpu)  # asymmetric ranges: what TensorRT's s8s8 copy cannot have
    weights = [
        n for n in graph.node if n.op_type == "DequantizeLinear" and "weight" in n.input[0] and n.input[0] in inits
    ]
    assert weights and all(inits[n.input[0]].data_type == onnx.TensorProto.INT8 for n in weights)
    parity = check_parity(OnnxRuntimeRunner(fp32), OnnxRuntimeRunner(cpu), torch.from_numpy(calib))
    assert parity.top1_agreement >= 0.9 and parity.max_abs_logit_diff > 0
    with pytest.raises(OptionError, match="INT8 scheme"):
        write_int8_copy(fp32, tmp_path / "x.onnx", spec, calib, Int8Options(), "train", "s4s4")
    assert not (tmp_path / "x.onnx").exists()


def test_int8_options_are_checked_once_with_clear_errors():
    with pytest.raises(OptionError, match="at least 16 images"):
        Int8Options(n_images=8)
    with pytest.raises(OptionError, match="unknown calibration method 'magic'"):
        Int8Options(method="magic")
    with pytest.raises(OptionError, match=r"unknown INT8 part\(s\) to keep in FP32 'neck'"):
        Int8Options(keep_fp32=("head", "neck"))


def test_bad_calibration_input(tmp_path, builtin_onnx):
    _, spec = builtin_onnx
    meta = spec.classifier
    few = LabeledImages("few", meta.classes, resolve_train_data(DataSource()).train.samples[:12])
    with pytest.raises(DataError, match="no images of class"):
        calibration_images(LabeledImages("x", meta.classes + ["pentagon"], few.samples), meta, 16)
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((32, 3, 32, 32), np.float32))
    with pytest.raises(DataError, match=r"shape \[32, 3, 32, 32\]; the model takes \[N, 3, 64, 64\]"):
        load_calibration_array(wrong, meta)


def test_unreadable_calibration_arrays_are_data_errors(tmp_path, builtin_onnx):
    meta = builtin_onnx[1].classifier
    with pytest.raises(DataError, match="no such calibration array"):
        load_calibration_array(tmp_path / "missing.npy", meta)
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"not numpy at all")
    with pytest.raises(DataError, match="cannot read calibration array"):
        load_calibration_array(junk, meta)
    labels = tmp_path / "labels.npy"
    np.save(labels, np.zeros((32, 3, 64, 64), np.int64))
    with pytest.raises(DataError, match="must hold floating-point images"):
        load_calibration_array(labels, meta)


def test_the_tensorrt_int8_file_runs_as_exact_emulation_on_a_cpu_without_vnni(builtin_onnx, tmp_path, monkeypatch):
    """Without VNNI, ONNX Runtime's fused s8 x s8 kernels saturate (16-bit pair sums); the runner then keeps the Q/DQ
    graph as float emulation (what TensorRT computes), which stays within the export's parity limit. With VNNI the
    fused kernels are kept."""
    import onnxruntime as ort

    import serve.onnxruntime_runner as runner_module

    fp32, spec = builtin_onnx
    calib = calibration_images(resolve_train_data(DataSource()).train, spec.classifier, 64)
    int8 = write_int8_copy(fp32, tmp_path / "model.int8.onnx", spec, calib, Int8Options(method="minmax"), "train")
    levels = {}
    for vnni in (False, True):
        monkeypatch.setattr(runner_module, "int8_dot_products", lambda vnni=vnni: vnni)
        runner = OnnxRuntimeRunner(int8)
        levels[vnni] = runner.session.get_session_options().graph_optimization_level
        if not vnni:
            parity = check_parity(OnnxRuntimeRunner(fp32), runner, torch.from_numpy(calib))
            assert parity.top1_agreement >= 0.9 and parity.max_abs_logit_diff < 2.0
    assert levels == {
        False: ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        True: ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
