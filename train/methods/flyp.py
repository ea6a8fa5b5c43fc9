"""FLYP (Goyal et al., CVPR 2023; github.com/locuslab/FLYP): fine-tune like you pretrain.

Each training image is paired with a caption, its class prompt in one of the templates drawn per image (the authors'
CSVs hold every (image, template) pair and their loader draws rows at random), and both towers train with CLIP's
contrastive loss and learned logit scale (flyp_terms). The classifier is the fixed text head W rebuilt
from the tuned text tower over every class and template, so the exported model is the image tower and W as for every
other method. The tuned text tower is kept beside the weights (TEXT_TOWER_WEIGHTS at the best step, state.pt at the
last one): WiSE-FT interpolates it with the image tower and encodes the prompts again (train.wise).
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from common.errors import UserError
from train.methods.base import LossInputs, Method, SideContext, SideModule

if TYPE_CHECKING:  # open_clip is slow to import; the CLI reads the method registry at start-up
    from common.artifact import ClassifierMeta
    from common.models import LoadedClip

TEXT_TOWER_PREFIX = "text_tower."  # the text tower's tensors among a run's interpolated weights (train.wise)


class TextTower(nn.Module):
    """CLIP's text side with its learned logit scale: the pretrained model without its image tower (the student
    holds that one)."""

    def __init__(self, clip: LoadedClip):
        super().__init__()
        clip.model.visual = nn.Identity()  # type: ignore[assignment]  # every open_clip CLIP has a visual tower
        self.clip = clip.model
        self.source = replace(clip, model=self.clip)  # what common.classifier.text_classifier encodes prompts with

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The captions' normalized embeddings, in FP32, and CLIP's scale exp(logit_scale)."""
        features = self.clip.encode_text(tokens)  # type: ignore[operator]  # open_clip CLIP method
        return F.normalize(features.float(), dim=-1), self.logit_scale().exp()

    def logit_scale(self) -> torch.Tensor:
        scale: torch.Tensor = self.clip.logit_scale  # type: ignore[assignment]  # an nn.Parameter on every CLIP
        return scale

    def tokenize(self, captions: list[str]) -> torch.Tensor:
        return self.source.tokenizer(captions)

    def classifier(self, prompts: list[str], templates: list[str]) -> tuple[torch.Tensor, float]:
        """The text head this tower gives: W over every class and template, and tau = exp(logit_scale), computed as
        the zero-shot classifier computes them (so the pretrained tower gives the zero-shot head exactly)."""
        was_training = self.training
        self.eval()
        try:
            from common.classifier import text_classifier

            weight = text_classifier(self.source, prompts, templates)
        finally:
            self.train(was_training)
        return weight, float(self.logit_scale().exp().item())


def load_text_tower(model: str, pretrained: str | None) -> TextTower:
    """The pretrained text tower of `model`, where FLYP starts."""
    from common.models import load_clip

    return TextTower(load_clip(model, pretrained))


def caption_templates(seed: int, epoch: int, indices: list[int], n_templates: int) -> list[int]:
    """Each image's template for this epoch, drawn from (seed, epoch, index) alone, like its augmentation: a resumed
    run, on any number of processes, captions every image as the uninterrupted run does."""
    return [random.Random(f"flyp:{seed}:{epoch}:{i}").randrange(n_templates) for i in indices]


def captions(prompts: list[str], templates: list[str], labels: list[int], choices: list[int]) -> list[str]:
    """The caption of each image: its class prompt in its drawn template."""
    return [templates[t].format(prompts[y]) for y, t in zip(labels, choices, strict=True)]


def prefixed(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {TEXT_TOWER_PREFIX + k: v for k, v in state.items()}


def split_text_tower(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(the classifier's tensors, the text tower's without the prefix) of a state that `prefixed` merged."""
    classifier = {k: v for k, v in state.items() if not k.startswith(TEXT_TOWER_PREFIX)}
    tower = {k[len(TEXT_TOWER_PREFIX) :]: v for k, v in state.items() if k.startswith(TEXT_TOWER_PREFIX)}
    return classifier, tower


def text_head_from_tower(
    meta: ClassifierMeta, tower_state: dict[str, torch.Tensor], where: str, tower: TextTower | None = None
) -> dict:
    """The fixed text head's tensors (head.weight, head.logit_scale) that the text tower `tower_state` gives for the
    classes and templates of `meta`; `tower` (of `meta`'s model, loaded again when None) takes all of its weights."""
    tower = tower or load_text_tower(meta.model, meta.pretrained)
    try:
        tower.load_state_dict(tower_state)
    except RuntimeError as err:
        detail = str(err).strip().splitlines()[0]
        raise UserError(f"the text tower in {where} does not fit {meta.model}: {detail}") from err
    weight, scale = tower.classifier(meta.prompts, meta.templates)
    return {"head.weight": weight, "head.logit_scale": torch.tensor(scale)}


def flyp_terms(options: object, x: LossInputs) -> dict[str, torch.Tensor]:
    """CLIP's symmetric contrastive loss, L = (CE(l, i) + CE(l^T, i)) / 2 with l = scale f t^T and targets i = 0..n-1,
    each image's own caption (f: normalized image features, t: its caption's). As in the authors' code (open_clip's
    ClipLoss, no class labels), the caption of another image of the same class is a negative like any other,
    duplicates included."""
    if x.contrastive is None:
        raise ValueError("loss 'flyp' needs image and caption features and the logit scale")
    image_features, caption_features, logit_scale = x.contrastive
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


def _text_tower(context: SideContext) -> nn.Module:
    return load_text_tower(context.model, context.pretrained)


METHOD = Method(
    "flyp",
    "FLYP: CLIP's contrastive loss between images and their class prompts, both towers trained; the text head is "
    "rebuilt from the tuned text tower",
    flyp_terms,
    heads=("text",),
    # CLIP's text tower and logit scale, trained with the image tower at the encoder's rate (the authors train every
    # CLIP parameter with one AdamW); kept beside the weights, never exported.
    side_modules={"text_tower": SideModule(_text_tower, "encoder")},
)
