"""ProReg (Zhu et al., AAAI 2023): cross-entropy plus distillation from the zero-shot teacher, mixed per sample by an
adaptive weight that grows where the teacher beats the student."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from train.methods.base import LossInputs, Method, MethodOptions, option
from train.methods.distillation import distillation_kl

WEIGHT_FORMS = ("xerm", "official")
# The authors' released code raises the teacher's probability of the true class to this power.
OFFICIAL_TEACHER_POWER = 10.0


@dataclass(frozen=True)
class ProRegOptions(MethodOptions):
    # xerm measured better alone, official with a trainable head and WiSE-FT (the default recipe): BENCHMARKS.md
    weight_form: str = option(
        "xerm", "ProReg weight: xerm (paper formula) | official (authors' code).", choices=WEIGHT_FORMS
    )
    alpha: float = option(1.0, "ProReg: weight of the KL term.", low=0)
    gamma: float = option(1.0, "ProReg xerm: exponent on the cross-entropies.", low=0, above=True)
    temperature: float = option(1.0, "Distillation temperature T.", low=0, above=True)
    eps: float = option(1e-8, "ProReg xerm: added to the weight's denominator.", low=0)


@torch.no_grad()
def proreg_weight(ce: torch.Tensor, ce_teacher: torch.Tensor, form: str, gamma: float, eps: float) -> torch.Tensor:
    """Per-sample share of distillation, carrying no gradient.

    xerm:     w = CE^g / (CE^g + CEt^g + eps): the more the teacher beats the student, the more it is distilled.
    official: w = p_t^10 / (p_s + p_t^10) with p = exp(-CE), computed as sigmoid(CE - 10 CEt) so that it cannot
              overflow or divide 0 by 0 when both probabilities underflow.
    """
    ce, ce_teacher = ce.detach(), ce_teacher.detach()
    if form == "xerm":
        num = ce.clamp_min(0) ** gamma
        return num / (num + ce_teacher.clamp_min(0) ** gamma + eps)
    if form == "official":
        return torch.sigmoid(ce - OFFICIAL_TEACHER_POWER * ce_teacher)
    raise ValueError(f"unknown ProReg weight form {form!r}")


def proreg_terms(o: ProRegOptions, x: LossInputs) -> dict[str, torch.Tensor]:
    """(1 - w) CE(s, y) + alpha w T^2 KL(softmax(z/T) || softmax(s/T)), w per sample (proreg_weight)."""
    if x.student is None or x.teacher is None:
        raise ValueError("loss 'proreg' needs the student's and the teacher's logits")
    ce = F.cross_entropy(x.student, x.labels, reduction="none")
    kl = distillation_kl(x.student, x.teacher.detach(), o.temperature)
    ce_teacher = F.cross_entropy(x.teacher.detach(), x.labels, reduction="none")
    w = proreg_weight(ce, ce_teacher, o.weight_form, o.gamma, o.eps)
    return {
        "ce_loss": ((1 - w) * ce).mean(),
        "kd_loss": o.alpha * (w * kl).mean(),
        "proreg_weight_mean": w.mean(),
        "ce": ce.mean().detach(),
        "ce_teacher": ce_teacher.mean(),
    }


METHOD = Method(
    "proreg",
    "ProReg: CE plus KL to the zero-shot teacher, mixed per sample by an adaptive weight",
    proreg_terms,
    ProRegOptions,
    uses_teacher=True,
)
