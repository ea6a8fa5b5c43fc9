"""The one list of fine-tuning methods, by name: the CLI's choices and help come from it, losses implement it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    description: str
    uses_teacher: bool  # needs the frozen zero-shot model's logits (cached once when nothing is augmented)


LOSSES = {
    "proreg": Method("ProReg: CE plus KL to the zero-shot teacher, mixed per sample by an adaptive weight", True),
    "kd": Method("CE plus KL to the zero-shot teacher with a fixed trade-off (--kd-alpha)", True),
    "ce": Method("conventional fine-tuning: cross-entropy only", False),
}
