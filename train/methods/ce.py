"""ce: conventional fine-tuning, cross-entropy to the labels alone."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from train.methods.base import LossInputs, Method, NoOptions


def ce_terms(options: NoOptions, x: LossInputs) -> dict[str, torch.Tensor]:
    if x.student is None:
        raise ValueError("loss 'ce' needs the student's logits")
    return {"ce_loss": F.cross_entropy(x.student, x.labels, reduction="none").mean()}


METHOD = Method("ce", "conventional fine-tuning: cross-entropy only", ce_terms)
