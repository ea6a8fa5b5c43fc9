"""The fine-tuning objectives: conventional (ce), fixed-trade-off distillation (kd), ProReg, TeS and FLYP.

Notation as in DESIGN.md: student logits s, teacher (zero-shot) logits z, labels y, temperature T; for TeS, the
projection's cosines against the fixed text classifier, g(h) W^T, which divided by tau are TeS's u; for FLYP, the
normalized image features f, the normalized features t of each image's caption, and CLIP's learned scale.
Every loss returns named terms; the trainer sums the keys ending in `_loss` and logs all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from common.errors import check_choice, check_number
from train.methods import LOSSES

WEIGHT_FORMS = ("xerm", "official")
LOSS_SUFFIX = "_loss"  # terms whose names end so are summed into the loss; the others are only logged
# The authors' released code raises the teacher's probability of the true class to this power.
OFFICIAL_TEACHER_POWER = 10.0


@dataclass(frozen=True)
class LossConfig:
    kind: str = "proreg"
    # xerm measured better alone, official with a trainable head and WiSE-FT (the default recipe): BENCHMARKS.md
    weight_form: str = "xerm"
    alpha: float = 1.0  # ProReg: weight of the KL term
    gamma: float = 1.0  # ProReg xerm form: exponent on the cross-entropies
    temperature: float = 1.0
    kd_alpha: float = 0.5  # kd: fixed share of the KL term
    # TeS (its authors' defaults): the text distribution's share in the reference q, the text loss's weight, and
    # the temperature of the projection's cosine logits.
    tes_lv: float = 0.2
    tes_lt: float = 0.4
    tes_tau: float = 0.03
    eps: float = 1e-8

    def __post_init__(self) -> None:
        check_choice("loss", self.kind, LOSSES)
        check_choice("ProReg weight form", self.weight_form, WEIGHT_FORMS)
        check_number("kd_alpha", self.kd_alpha, 0, 1)
        check_number("temperature", self.temperature, 0, above=True)
        check_number("alpha", self.alpha, 0)
        check_number("gamma", self.gamma, 0, above=True)
        check_number("tes_lv", self.tes_lv, 0, 1)
        check_number("tes_lt", self.tes_lt, 0)
        check_number("tes_tau", self.tes_tau, 0, above=True)


def distillation_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per-sample T^2 * KL(softmax(z/T) || softmax(s/T))."""
    log_p_student = F.log_softmax(student / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher / temperature, dim=-1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=-1)
    return temperature**2 * kl


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


def tes_terms(cfg: LossConfig, student: torch.Tensor, text_cosines: torch.Tensor, labels: torch.Tensor):
    """TeS: u = text_cosines / tau; q = stopgrad(lv softmax(u) + (1 - lv) onehot(y));
    L = CE_soft(fc(h), q) + lt CE(u, y)."""
    u = text_cosines / cfg.tes_tau
    with torch.no_grad():
        q = cfg.tes_lv * F.softmax(u.detach(), dim=-1)
        q[torch.arange(len(labels), device=labels.device), labels] += 1 - cfg.tes_lv
    text_ce = F.cross_entropy(u, labels)
    return {
        "vision_loss": -(q * F.log_softmax(student, dim=-1)).sum(dim=-1).mean(),
        "text_loss": cfg.tes_lt * text_ce,
        "ce": F.cross_entropy(student.detach(), labels),
        "text_ce": text_ce.detach(),
    }


def flyp_terms(
    image_features: torch.Tensor, caption_features: torch.Tensor, logit_scale: torch.Tensor
) -> dict[str, torch.Tensor]:
    """FLYP: CLIP's symmetric contrastive loss, L = (CE(l, i) + CE(l^T, i)) / 2 with l = scale f t^T and targets
    i = 0..n-1, each image's own caption. As in the authors' code (open_clip's ClipLoss, no class labels), the caption
    of another image of the same class is a negative like any other, duplicates included."""
    logits = logit_scale * image_features @ caption_features.t()
    targets = torch.arange(len(logits), device=logits.device)
    image_to_text = F.cross_entropy(logits, targets)
    text_to_image = F.cross_entropy(logits.t(), targets)
    return {
        "contrastive_loss": (image_to_text + text_to_image) / 2,
        "image_to_text_ce": image_to_text.detach(),
        "text_to_image_ce": text_to_image.detach(),
        "logit_scale": logit_scale.detach(),
    }


def compute_loss(
    cfg: LossConfig,
    student: torch.Tensor | None,
    teacher: torch.Tensor | None,
    labels: torch.Tensor,
    text_cosines: torch.Tensor | None = None,
    contrastive: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """The named loss terms for one batch. `student` (its logits) is needed by every loss but flyp, `teacher`
    (zero-shot logits) by proreg and kd, `text_cosines` (TeS's projection against the text classifier, g(h) W^T) by
    tes, `contrastive` (image features, caption features, CLIP's scale) by flyp."""
    if cfg.kind == "flyp":
        if contrastive is None:
            raise ValueError("loss 'flyp' needs image and caption features and the logit scale")
        return flyp_terms(*contrastive)
    if student is None:
        raise ValueError(f"loss {cfg.kind!r} needs the student's logits")
    if cfg.kind == "tes":
        if text_cosines is None:
            raise ValueError("loss 'tes' needs the projection's text cosines")
        return tes_terms(cfg, student, text_cosines, labels)
    ce = F.cross_entropy(student, labels, reduction="none")
    if cfg.kind == "ce":
        return {"ce_loss": ce.mean()}
    if teacher is None:
        raise ValueError(f"loss {cfg.kind!r} needs teacher logits")
    kl = distillation_kl(student, teacher.detach(), cfg.temperature)
    if cfg.kind == "kd":
        return {
            "ce_loss": (1 - cfg.kd_alpha) * ce.mean(),
            "kd_loss": cfg.kd_alpha * kl.mean(),
            "ce": ce.mean().detach(),
        }
    ce_teacher = F.cross_entropy(teacher.detach(), labels, reduction="none")
    w = proreg_weight(ce, ce_teacher, cfg.weight_form, cfg.gamma, cfg.eps)
    return {
        "ce_loss": ((1 - w) * ce).mean(),
        "kd_loss": cfg.alpha * (w * kl).mean(),
        "proreg_weight_mean": w.mean(),
        "ce": ce.mean().detach(),
        "ce_teacher": ce_teacher.mean(),
    }


def total_loss(terms: dict[str, torch.Tensor]) -> torch.Tensor:
    """The one sum of a loss's terms: every term whose name ends in LOSS_SUFFIX."""
    return sum((v for k, v in terms.items() if k.endswith(LOSS_SUFFIX)), torch.zeros(()))
