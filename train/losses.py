"""A method and its settings (LossConfig), and the one call that computes its loss: the method's named terms, whose
`_loss` keys are summed (total_loss). The methods themselves are train/methods/."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from common.errors import check_choice
from train.methods import METHODS
from train.methods.base import LossInputs, MethodOptions

LOSS_SUFFIX = "_loss"  # terms whose names end so are summed into the loss; the others are only logged


@dataclass(frozen=True)
class LossConfig:
    """A method (a key of train.methods.METHODS) and its settings, every one of its options resolved: those given,
    checked, and the others at their defaults. run.json stores it as {"kind": ..., "settings": {...}}."""

    kind: str = "proreg"
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_choice("loss", self.kind, METHODS)
        object.__setattr__(self, "settings", METHODS[self.kind].settings(dict(self.settings)))

    @property
    def options(self) -> MethodOptions:
        """The settings as the method's typed options."""
        return METHODS[self.kind].options(**self.settings)

    @classmethod
    def from_record(cls, data: Any) -> Any:
        """run.json's loss as LossConfig's fields: {"kind", "settings"}, or, as runs before methods had options of
        their own wrote it, every method's options side by side (the method's own taken, the others dropped)."""
        if not isinstance(data, dict) or "settings" in data or data.get("kind") not in METHODS:
            return data
        own = METHODS[data["kind"]].option_fields()
        return {"kind": data["kind"], "settings": {k: v for k, v in data.items() if k in own}}


def loss_config(kind: str = "proreg", **settings: Any) -> LossConfig:
    """LossConfig(kind, settings) with the settings as keywords: loss_config("kd", kd_alpha=0.25)."""
    return LossConfig(kind, settings)


def compute_loss(
    cfg: LossConfig,
    student: torch.Tensor | None,
    teacher: torch.Tensor | None,
    labels: torch.Tensor,
    text_cosines: torch.Tensor | None = None,
    contrastive: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """The named loss terms of one batch: the student's logits, the teacher's (methods that use it), the projection's
    text cosines (a "projection" side module), the image and caption features with CLIP's scale ("text_tower")."""
    inputs = LossInputs(student, teacher, labels, text_cosines, contrastive)
    return METHODS[cfg.kind].loss(cfg.options, inputs)


def total_loss(terms: dict[str, torch.Tensor]) -> torch.Tensor:
    """The one sum of a loss's terms: every term whose name ends in LOSS_SUFFIX."""
    return sum((v for k, v in terms.items() if k.endswith(LOSS_SUFFIX)), torch.zeros(()))
