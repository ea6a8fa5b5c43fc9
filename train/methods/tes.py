"""TeS (Qian et al., arXiv 2304.01489; github.com/idstcv/TeS): a vision head trained on a reference distribution from
the fixed text classifier. A projection g of the image features is compared with the text classifier W (u = g(h)
W^T / tau); the head fc learns from q = lv softmax(u) + (1 - lv) onehot(y), and g from the labels through W."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from train.methods.base import LossInputs, Method, MethodOptions, SideContext, SideModule, option


@dataclass(frozen=True)
class TesOptions(MethodOptions):
    # Its authors' defaults: the text distribution's share in the reference q, the text loss's weight, and the
    # temperature of the projection's cosine logits.
    tes_lv: float = option(0.2, "TeS: share of the text distribution in the reference q (0..1).", low=0, high=1)
    tes_lt: float = option(0.4, "TeS: weight of the projection's loss against the text classifier.", low=0)
    tes_tau: float = option(0.03, "TeS: temperature of the projection's cosine logits.", low=0, above=True)


class TextProjection(nn.Module):
    """TeS's projection g: Linear-BN-ReLU-Linear from the image features to the text width, L2-normalized. It
    trains the tower through the text classifier and is never exported."""

    def __init__(self, in_dim: int, text_dim: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(in_dim, in_dim), nn.BatchNorm1d(in_dim), nn.ReLU(inplace=True), nn.Linear(in_dim, text_dim)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        norm = self.layers[1]
        # BatchNorm cannot take statistics of one image (a last batch of one, or one readable image): that batch is
        # normalized with the running ones. Not SyncBatchNorm (GPUs under torchrun): its statistics are the global
        # batch's, and a rank that skipped its collective would hang the others.
        if self.training and len(features) < 2 and not isinstance(norm, nn.SyncBatchNorm):
            norm.eval()
            try:
                return F.normalize(self.layers(features), dim=-1)
            finally:
                norm.train()
        return F.normalize(self.layers(features), dim=-1)


def tes_terms(o: TesOptions, x: LossInputs) -> dict[str, torch.Tensor]:
    """u = text_cosines / tau; q = stopgrad(lv softmax(u) + (1 - lv) onehot(y)); L = CE_soft(fc(h), q) + lt CE(u, y)."""
    if x.student is None or x.text_cosines is None:
        raise ValueError("loss 'tes' needs the student's logits and the projection's text cosines")
    u = x.text_cosines / o.tes_tau
    with torch.no_grad():
        q = o.tes_lv * F.softmax(u.detach(), dim=-1)
        q[torch.arange(len(x.labels), device=x.labels.device), x.labels] += 1 - o.tes_lv
    text_ce = F.cross_entropy(u, x.labels)
    return {
        "vision_loss": -(q * F.log_softmax(x.student, dim=-1)).sum(dim=-1).mean(),
        "text_loss": o.tes_lt * text_ce,
        "ce": F.cross_entropy(x.student.detach(), x.labels),
        "text_ce": text_ce.detach(),
    }


def _projection(context: SideContext) -> nn.Module:
    return TextProjection(context.text_width, context.text_width)  # CLIP's towers share the embedding width


METHOD = Method(
    "tes",
    "TeS: a linear vision head trained on a reference distribution from the fixed text classifier",
    tes_terms,
    TesOptions,
    heads=("linear",),
    side_modules={"projection": SideModule(_projection, "head")},  # trained at the head's rate, never exported
)
