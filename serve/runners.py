"""One small interface over every backend that turns preprocessed images into class logits.

As in Polygraphy, each backend is a runner: it knows its artifact and metadata and has one method, `infer`.
The evaluator drives any runner the same way. ONNX Runtime and TensorRT runners implement the same interface.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from common.checkpoint import load_run_classifier, zero_shot_classifier
from common.metadata import ClassifierMeta
from common.models import BUILTIN, DEFAULT_TEMPLATES, pick_device
from common.suites import builtin_classnames


class Runner(Protocol):
    backend: str  # "torch", "onnxruntime" or "tensorrt"
    artifact: str
    precision: str  # "fp32", "fp16" or "int8"
    meta: ClassifierMeta

    def infer(self, images: torch.Tensor) -> np.ndarray:
        """[N, 3, H, W] float32 preprocessed images -> [N, C] float32 logits."""
        ...


class TorchRunner:
    """A PyTorch classifier: a run directory, or `builtin` for the zero-shot built-in model."""

    backend = "torch"
    precision = "fp32"

    def __init__(self, model: torch.nn.Module, meta: ClassifierMeta, artifact: str, device: str = "auto"):
        self.device = pick_device(device)
        self.model = model.to(self.device).eval()
        self.meta = meta
        self.artifact = artifact

    @torch.inference_mode()
    def infer(self, images: torch.Tensor) -> np.ndarray:
        return self.model(images.to(self.device, non_blocking=True)).float().cpu().numpy()


def torch_runner(checkpoint: str, device: str = "auto") -> TorchRunner:
    """`builtin` -> the zero-shot built-in model on the built-in classes; otherwise a run directory."""
    if checkpoint == BUILTIN:
        names = builtin_classnames()
        model, meta = zero_shot_classifier(BUILTIN, None, list(names), list(names.values()), list(DEFAULT_TEMPLATES))
        return TorchRunner(model, meta, BUILTIN, device)
    model, meta = load_run_classifier(Path(checkpoint))
    return TorchRunner(model, meta, str(checkpoint), device)


class OnnxRuntimeRunner:
    """An exported ONNX classifier in ONNX Runtime: TensorRT or CUDA execution providers when the installed build
    has them, else the CPU. Classes and preprocessing come from the file's metadata."""

    backend = "onnxruntime"

    def __init__(self, path: Path, providers: list[str] | None = None):
        import onnxruntime as ort

        from export.onnx_export import read_metadata

        self.artifact = str(path)
        if not Path(path).is_file():
            raise FileNotFoundError(f"no such ONNX file: {path}")
        info = read_metadata(Path(path))
        self.meta = ClassifierMeta.from_dict(info)
        self.precision = info.get("precision", "fp32")
        available = ort.get_available_providers()
        wanted = providers or [p for p in PREFERRED_ORT_PROVIDERS if p in available]
        options = ort.SessionOptions()
        if self.precision == "fp16":
            # ORT 1.31's CPU layout optimizations (ORT_ENABLE_ALL) crash on mixed FP16/FP32 transformer graphs
            # (seen with ViT-B/32); the extended level keeps every fusion but the NCHWc layout rewrite.
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        self.session = ort.InferenceSession(str(path), sess_options=options, providers=wanted)
        self.providers = self.session.get_providers()  # what was really enabled (a missing EP only warns)
        self.input_name = self.session.get_inputs()[0].name

    def infer(self, images: torch.Tensor) -> np.ndarray:
        check_input_size(images, self.meta, self.artifact)
        feed = images.detach().cpu().numpy().astype(np.float32, copy=False)
        return self.session.run(None, {self.input_name: feed})[0].astype(np.float32, copy=False)


PREFERRED_ORT_PROVIDERS = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def check_input_size(images: torch.Tensor, meta: ClassifierMeta, artifact: str) -> None:
    size = meta.image_size
    if images.ndim != 4 or tuple(images.shape[1:]) != (3, size, size):
        raise ValueError(f"{artifact} takes images of shape [N, 3, {size}, {size}], got {list(images.shape)}")
