"""Where ONNX Runtime runs each artifact: the execution providers chosen per artifact (never the TensorRT EP for the
CPU INT8 form), the TensorRT EP's options and engine cache, a user's choice, and the fallback when a provider fails to
set up. The GPU providers cannot run here; the decisions are made, and tested, on the CPU."""

import logging

import pytest
import torch

from common.artifact import ArtifactError, Calibration
from common.errors import OptionError
from serve import onnxruntime_runner
from serve.onnxruntime_runner import OnnxRuntimeRunner, providers_for, tensorrt_cache_dir

GPU_BUILD = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
CPU_BUILD = ["CPUExecutionProvider"]


@pytest.fixture
def specs(builtin_onnx):
    fp32 = builtin_onnx[1]
    calibration = Calibration(method="percentile", images=8, data="builtin")
    return {
        "fp32": fp32,
        "fp16": fp32.derive(precision="fp16"),
        "int8": fp32.derive(precision="int8", calibration=calibration),
        "int8-cpu": fp32.derive(precision="int8", calibration=Calibration("percentile", 8, "builtin", "u8s8")),
    }


def names(providers):
    return [name for name, _ in providers]


def test_auto_takes_the_fastest_provider_the_build_has_but_the_cpu_int8_form_stays_on_the_cpu(specs, tmp_path):
    for artifact in ("fp32", "fp16", "int8"):
        assert names(providers_for(specs[artifact], "auto", GPU_BUILD, 0, tmp_path)) == GPU_BUILD, artifact
    # u8 activations with zero points: the TensorRT EP takes symmetric quantization only (onnxruntime#10743).
    assert names(providers_for(specs["int8-cpu"], "auto", GPU_BUILD, 0, tmp_path)) == CPU_BUILD
    assert names(providers_for(specs["fp32"], "auto", CPU_BUILD, 0, None)) == CPU_BUILD
    assert names(providers_for(specs["fp32"], "auto", ["CUDAExecutionProvider", *CPU_BUILD], 0, None)) == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]


def test_the_tensorrt_provider_keeps_its_engines_and_takes_int8_only_from_a_qdq_graph(specs, tmp_path):
    for artifact, int8 in (("fp32", False), ("fp16", False), ("int8", True)):
        tensorrt, cuda, _ = providers_for(specs[artifact], "auto", GPU_BUILD, 3, tmp_path)
        assert tensorrt[1] == {
            "device_id": 3,
            "trt_int8_enable": int8,  # without it TensorRT refuses the Q/DQ layers (onnxruntime#13381)
            "trt_engine_cache_enable": True,  # built once, not in every session
            "trt_engine_cache_path": str(tmp_path),
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": str(tmp_path),
        }
        assert "trt_fp16_enable" not in tensorrt[1]  # precision is in the graph: FP32 parts stay FP32
        assert cuda[1] == {"device_id": 3}
    tensorrt, *_ = providers_for(specs["fp32"], "auto", GPU_BUILD, 0, None)  # no cache folder could be made
    assert tensorrt[1] == {"device_id": 0, "trt_int8_enable": False}


def test_a_named_provider_comes_first_and_one_that_cannot_run_the_artifact_is_refused(specs, tmp_path):
    assert names(providers_for(specs["fp32"], "cuda", GPU_BUILD, 0, tmp_path)) == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    assert names(providers_for(specs["int8-cpu"], "cpu", GPU_BUILD, 0, tmp_path)) == CPU_BUILD
    with pytest.raises(OptionError, match="the CPU INT8 form .* cannot run on the TensorRT execution provider"):
        providers_for(specs["int8-cpu"], "tensorrt", GPU_BUILD, 0, tmp_path)
    with pytest.raises(OptionError, match="this ONNX Runtime build has no CUDAExecutionProvider .* onnxruntime-gpu"):
        providers_for(specs["fp32"], "cuda", CPU_BUILD, 0, None)
    with pytest.raises(OptionError, match="unknown ONNX Runtime execution provider 'rocm'"):
        providers_for(specs["fp32"], "rocm", GPU_BUILD, 0, None)


def test_the_engine_cache_has_a_folder_per_file_content_and_gpu(builtin_onnx, tmp_path, monkeypatch):
    monkeypatch.setenv("PROREG_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: f"NVIDIA L4 #{index}")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index: (8, 9))
    onnx = builtin_onnx[0]
    first = tensorrt_cache_dir(onnx, 0)
    assert first.is_dir() and first.parent == tmp_path / "cache" / "onnxruntime-tensorrt"
    assert tensorrt_cache_dir(onnx, 0) == first and tensorrt_cache_dir(onnx, 1) != first  # another GPU
    changed = tmp_path / "model.onnx"
    changed.write_bytes(onnx.read_bytes() + b"\0")  # a re-export to the same name: its engine is not reused
    assert tensorrt_cache_dir(changed, 0).name != first.name
    assert tensorrt_cache_dir(changed, 0).name.startswith("model-")


class FakeSession:
    """ONNX Runtime's InferenceSession where a provider fails to set up the way the TensorRT EP does (EPFail)."""

    failing: set[str] = set()
    made: list[list[str]] = []

    def __init__(self, path, sess_options=None, providers=()):
        chosen = [name for name, _ in providers]
        FakeSession.made.append(chosen)
        if chosen[0] in self.failing:
            raise onnxruntime_runner._ort_errors.EPFail(f"[ONNXRuntimeError] : 11 : EP_FAIL : {chosen[0]} failed")
        self.providers = chosen

    def get_providers(self):
        return self.providers


@pytest.fixture
def gpu_build(monkeypatch):
    import onnxruntime as ort

    FakeSession.failing, FakeSession.made = set(), []
    monkeypatch.setattr(ort, "get_available_providers", lambda: GPU_BUILD)
    monkeypatch.setattr(ort, "InferenceSession", FakeSession)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(onnxruntime_runner, "tensorrt_cache_dir", lambda onnx, gpu: None)
    monkeypatch.setattr(OnnxRuntimeRunner, "_check_io", lambda self, path: None)


def test_auto_falls_back_past_a_provider_that_fails_to_set_up(builtin_onnx, gpu_build, caplog):
    FakeSession.failing = {"TensorrtExecutionProvider"}
    with caplog.at_level(logging.WARNING):
        runner = OnnxRuntimeRunner(builtin_onnx[0])
    assert FakeSession.made == [GPU_BUILD, GPU_BUILD[1:]] and runner.runs_on == "CUDA"
    assert "TensorrtExecutionProvider failed" in caplog.text and "trying CUDAExecutionProvider" in caplog.text


def test_a_named_provider_that_fails_is_an_error_not_a_silent_cpu_run(builtin_onnx, gpu_build):
    FakeSession.failing = {"TensorrtExecutionProvider"}
    with pytest.raises(ArtifactError, match="ONNX Runtime cannot load .* EP_FAIL"):
        OnnxRuntimeRunner(builtin_onnx[0], provider="tensorrt")
    assert FakeSession.made == [["TensorrtExecutionProvider", "CPUExecutionProvider"]]
    FakeSession.made = []
    assert OnnxRuntimeRunner(builtin_onnx[0], device="cpu").runs_on == "CPU"  # --device cpu: the CPU alone
    assert FakeSession.made == [CPU_BUILD]
