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
from common.models import BUILTIN, DEFAULT_TEMPLATES
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
        self.device = torch.device(
            "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)
        )
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
