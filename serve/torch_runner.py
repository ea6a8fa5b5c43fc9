"""The PyTorch runner: a fine-tuned run's best checkpoint, or a pretrained model used zero-shot."""

from __future__ import annotations

import numpy as np
import torch

from common.artifact import ArtifactSpec
from common.builtin import BUILTIN
from common.classifier import zero_shot_classifier
from common.models import pick_device
from common.progress import ProgressHook
from common.run import Run, open_run
from data.specs import ZeroShotClasses, zero_shot_classes
from serve.backend import Backend, RunnerOptions
from serve.runner import Runner


class TorchRunner(Runner):
    backend = "torch"

    def __init__(self, model: torch.nn.Module, spec: ArtifactSpec, artifact: str, device: str = "auto"):
        self.device = pick_device(device)  # cuda:N, under torchrun the rank's GPU
        self.runs_on = str(self.device)
        self.model = model.to(self.device).eval()
        self.spec = spec
        self.artifact = artifact

    @classmethod
    def from_run(cls, run: Run, device: str = "auto") -> TorchRunner:
        spec = ArtifactSpec(classifier=run.classifier, source_run=str(run.path.resolve()))
        return cls(run.load_classifier(), spec, str(run.path), device)

    @classmethod
    def builtin_zero_shot(cls, device: str = "auto", classes: ZeroShotClasses | None = None) -> TorchRunner:
        """The zero-shot built-in model over `classes` (default: the built-in benchmark's)."""
        return cls.zero_shot(BUILTIN, None, classes or zero_shot_classes([BUILTIN]), device)

    @classmethod
    def zero_shot(
        cls,
        model: str,
        pretrained: str | None,
        classes: ZeroShotClasses,
        device: str = "auto",
        progress: ProgressHook | None = None,
    ) -> TorchRunner:
        """The pretrained open_clip `model` (weights `pretrained`) as a zero-shot classifier over `classes`."""
        names, prompts, templates = classes.classes, classes.prompts, classes.templates
        where = pick_device(device)  # the text head is built there too
        classifier, meta = zero_shot_classifier(model, pretrained, names, prompts, templates, progress, where)
        name = model if pretrained is None else f"{model} ({pretrained})"
        return cls(classifier, ArtifactSpec(classifier=meta), name, device)

    @torch.inference_mode()
    def _infer(self, images: torch.Tensor) -> np.ndarray:
        return self.model(images.to(self.device, non_blocking=True)).float().cpu().numpy()


def _open(source: str, options: RunnerOptions) -> Runner:
    if source == BUILTIN:
        return TorchRunner.builtin_zero_shot(options.device)
    return TorchRunner.from_run(open_run(source), options.device)


# Run directories and builtin: anything no other backend claims.
BACKEND = Backend("torch", "PyTorch", _open, default=True)
