"""kd: cross-entropy plus distillation from the zero-shot teacher, with a fixed trade-off."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from train.methods.base import LossInputs, Method, MethodOptions, option
from train.methods.distillation import distillation_kl


@dataclass(frozen=True)
class KdOptions(MethodOptions):
    kd_alpha: float = option(0.5, "kd: fixed share of the KL term.", low=0, high=1)
    temperature: float = option(1.0, "Distillation temperature T.", low=0, above=True)


def kd_terms(o: KdOptions, x: LossInputs) -> dict[str, torch.Tensor]:
    """(1 - a) CE(s, y) + a T^2 KL(softmax(z/T) || softmax(s/T))."""
    if x.student is None or x.teacher is None:
        raise ValueError("loss 'kd' needs the student's and the teacher's logits")
    ce = F.cross_entropy(x.student, x.labels, reduction="none")
    kl = distillation_kl(x.student, x.teacher.detach(), o.temperature)
    return {"ce_loss": (1 - o.kd_alpha) * ce.mean(), "kd_loss": o.kd_alpha * kl.mean(), "ce": ce.mean().detach()}


METHOD = Method(
    "kd", "CE plus KL to the zero-shot teacher with a fixed trade-off (--kd-alpha)", kd_terms, KdOptions, True
)
