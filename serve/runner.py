"""The one interface every backend implements: preprocessed images in, class logits out.

As in Polygraphy, each backend is a runner that knows its artifact and its spec (classes, preprocessing, precision)
and implements `_infer`; the base class checks every input the same way for every backend, so a wrong image size
or dtype is one clear error wherever it is fed. The evaluator drives any runner alike.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch

from common.artifact import ArtifactSpec


class RunnerInputError(ValueError):
    """Images that the artifact cannot take. Not a UserError: the evaluator preprocesses images from the runner's
    own spec, so a mismatch there is a bug and keeps its traceback; library callers get this one clear message."""


class Runner(ABC):
    backend: str  # "torch", "onnxruntime", "tensorrt"
    artifact: str  # what the user named: a run directory, builtin, a file
    spec: ArtifactSpec
    runs_on: str = "cpu"  # where inference runs: a torch device (cuda:1), an execution provider, "server"

    @property
    def precision(self) -> str:
        return self.spec.precision

    def infer(self, images: torch.Tensor) -> np.ndarray:
        """[N, 3, H, W] float32 preprocessed images -> [N, C] float32 logits."""
        check_input(images, self.spec, self.artifact)
        return self._infer(images)

    @abstractmethod
    def _infer(self, images: torch.Tensor) -> np.ndarray: ...


def check_input(images: torch.Tensor, spec: ArtifactSpec, artifact: str) -> None:
    size = spec.classifier.image_size
    if not isinstance(images, torch.Tensor) or images.dtype != torch.float32:
        kind = images.dtype if isinstance(images, torch.Tensor) else type(images).__name__
        raise RunnerInputError(f"{artifact} takes float32 image tensors, got {kind}")
    if images.ndim != 4 or tuple(images.shape[1:]) != (3, size, size):
        raise RunnerInputError(f"{artifact} takes images of shape [N, 3, {size}, {size}], got {list(images.shape)}")
