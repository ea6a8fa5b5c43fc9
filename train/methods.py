"""The one list of fine-tuning methods, by name: the CLI's choices and help come from it, losses implement it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    description: str
    uses_teacher: bool  # needs the frozen zero-shot model's logits (cached once when nothing is augmented)
    heads: tuple[str, ...] = ("text", "trainable", "linear")  # the heads it can train (common.artifact.HEAD_KINDS)
    uses_text_projection: bool = False  # trains TeS's projection head g (training only, never exported)
    # FLYP: trains CLIP's text tower too (train.flyp.TextTower, kept beside the weights, never exported) and rebuilds
    # the fixed text head W from it.
    trains_text_tower: bool = False


LOSSES = {
    "proreg": Method("ProReg: CE plus KL to the zero-shot teacher, mixed per sample by an adaptive weight", True),
    "kd": Method("CE plus KL to the zero-shot teacher with a fixed trade-off (--kd-alpha)", True),
    "ce": Method("conventional fine-tuning: cross-entropy only", False),
    "tes": Method(
        "TeS: a linear vision head trained on a reference distribution from the fixed text classifier",
        False,
        heads=("linear",),
        uses_text_projection=True,
    ),
    "flyp": Method(
        "FLYP: CLIP's contrastive loss between images and their class prompts, both towers trained; the text head is "
        "rebuilt from the tuned text tower",
        False,
        heads=("text",),
        trains_text_tower=True,
    ),
}
