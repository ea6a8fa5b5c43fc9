"""The ONNX Runtime runner: an exported ONNX classifier, with classes and preprocessing from its metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from onnxruntime.capi import onnxruntime_pybind11_state as _ort_errors

from common.artifact import ArtifactError, read_onnx_spec
from serve.runner import Runner

# ONNX Runtime's own error types (pybind classes that derive from Exception directly), raised for a file it cannot
# load; anything else raised while setting up the session is a bug of ours and keeps its traceback.
ORT_LOAD_ERRORS = tuple(
    getattr(_ort_errors, name)
    for name in (
        "Fail",
        "InvalidArgument",
        "NoSuchFile",
        "NoModel",
        "InvalidProtobuf",
        "InvalidGraph",
        "RuntimeException",
        "NotImplemented",
        "EPFail",
        "ModelLoaded",
    )
    if hasattr(_ort_errors, name)
)
# TensorRT or CUDA execution providers when the installed build has them, else the CPU.
PREFERRED_ORT_PROVIDERS = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


class OnnxRuntimeRunner(Runner):
    backend = "onnxruntime"

    def __init__(self, path: Path, providers: list[str] | None = None):
        import onnxruntime as ort

        self.artifact = str(path)
        self.spec = read_onnx_spec(Path(path))
        available = ort.get_available_providers()
        wanted = providers or [p for p in PREFERRED_ORT_PROVIDERS if p in available]
        options = ort.SessionOptions()
        if self.spec.precision == "fp16":
            # ORT 1.31's CPU layout optimizations (ORT_ENABLE_ALL) crash on mixed FP16/FP32 transformer graphs
            # (seen with ViT-B/32); the extended level keeps every fusion but the NCHWc layout rewrite.
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        ort.disable_telemetry_events()  # no usage data leaves the machine
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=wanted)
        except ORT_LOAD_ERRORS as err:  # e.g. NoSuchFile for stripped weights, InvalidGraph, InvalidProtobuf
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ArtifactError(f"ONNX Runtime cannot load {path}: {first}") from err
        self.providers = self.session.get_providers()  # what was really enabled (a missing EP only warns)
        graph_io = ([i.name for i in self.session.get_inputs()], [o.name for o in self.session.get_outputs()])
        if graph_io != ([self.spec.input_name], [self.spec.output_name]):
            raise ArtifactError(
                f"{path}: its graph has inputs {graph_io[0]} and outputs {graph_io[1]}, its metadata says "
                f"{self.spec.input_name!r} -> {self.spec.output_name!r}"
            )

    def _infer(self, images: torch.Tensor) -> np.ndarray:
        feed = images.detach().cpu().numpy()
        return self.session.run([self.spec.output_name], {self.spec.input_name: feed})[0].astype(np.float32, copy=False)
