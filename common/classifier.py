"""The CLIP classifier: an image tower and a head on its normalized features, built zero-shot or from saved weights.

The zero-shot head is the fixed text classifier, logits = tau * normalize(f(x)) @ W^T, with W the class-prompt text
embeddings (each template's embedding normalized, averaged over templates, renormalized) and tau the temperature
CLIP was trained with. Fine-tuning may train a head instead (HEAD_KINDS): the text classifier's class vectors and
scale, or a free linear layer (TeS); every head starts from W, so a fine-tuned model starts as the zero-shot one.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import nn

from common.artifact import HEAD_KINDS, ClassifierMeta
from common.errors import UserError
from common.models import LoadedClip, build_visual, load_clip
from common.progress import ProgressHook

# Prompts per pass through the text tower. ImageNet's 1,000 classes x 80 templates are 80,000 prompts; in one pass,
# ViT-B-32's text tower would hold [80000, 77, 2048] MLP activations (50 GB). BENCHMARKS.md has the measured peaks.
TEXT_BATCH = 256
log = logging.getLogger(__name__)


class TextHead(nn.Module):
    """The fixed text classifier: tau * f @ W^T (f the normalized image features)."""

    weight: torch.Tensor
    logit_scale: torch.Tensor

    def __init__(self, weight: torch.Tensor, logit_scale: float):
        super().__init__()
        self.register_buffer("weight", weight.detach().clone().float())
        self.register_buffer("logit_scale", torch.tensor(float(logit_scale)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # Logits reach ~100 (tau), so this matmul stays FP32 whatever the tower runs in.
        return self.logit_scale * features @ self.weight.t()


class TrainableTextHead(nn.Module):
    """ProReg's released head: class vectors initialised from W and renormalized every forward pass, and a learned
    logit scale (in log space, as CLIP learns it): exp(s) * f @ normalize(V)^T."""

    def __init__(self, weight: torch.Tensor, logit_scale: float):
        super().__init__()
        self.weight = nn.Parameter(weight.detach().clone().float())
        self.log_logit_scale = nn.Parameter(torch.tensor(math.log(logit_scale)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.log_logit_scale.exp() * features @ F.normalize(self.weight, dim=-1).t()


class LinearHead(nn.Module):
    """A free linear classifier on the normalized features, f @ A^T + b: TeS's vision head `fc`. Initialised from
    the text classifier (A = tau W, b = 0) it starts as the zero-shot model; else at random, like nn.Linear."""

    def __init__(self, weight: torch.Tensor, logit_scale: float, init: str = "text"):
        super().__init__()
        self.weight = nn.Parameter(logit_scale * weight.detach().clone().float())
        self.bias = nn.Parameter(torch.zeros(weight.shape[0]))
        if init == "random":
            reference = nn.Linear(weight.shape[1], weight.shape[0])
            self.weight.data.copy_(reference.weight.data)
            self.bias.data.copy_(reference.bias.data)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features @ self.weight.t() + self.bias


HEADS: dict[str, type[nn.Module]] = {"text": TextHead, "trainable": TrainableTextHead, "linear": LinearHead}
assert tuple(HEADS) == HEAD_KINDS, "common.artifact.HEAD_KINDS names the heads built here"


def make_head(kind: str, text_weights: torch.Tensor, logit_scale: float, init: str = "text") -> nn.Module:
    """A head of `kind` (one of HEAD_KINDS) starting from the text classifier `text_weights` [C, D] and tau; a
    linear head may start at random instead (`init`)."""
    if kind == "linear":
        return LinearHead(text_weights, logit_scale, init)
    if init != "text":
        raise ValueError(f"a {kind} head starts from the text classifier, not {init!r}")
    return HEADS[kind](text_weights, logit_scale)


class ClipClassifier(nn.Module):
    """Image tower plus head on its normalized features; the default head is the fixed text classifier,
    logits = tau * normalize(f(x)) @ W^T."""

    def __init__(
        self,
        visual: nn.Module,
        class_weights: torch.Tensor,
        logit_scale: float,
        head: str = "text",
        init: str = "text",
    ):
        super().__init__()
        self.visual = visual
        self.head_kind = head
        self.head = make_head(head, class_weights, logit_scale, init)

    def text_head(self) -> TextHead:
        """The fixed text classifier this model carries: a zero-shot model's head (W and tau)."""
        if not isinstance(self.head, TextHead):
            raise TypeError(f"a {self.head_kind} head is not the fixed text classifier")
        return self.head

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The image tower's normalized embedding, in FP32."""
        pooled = self.visual(images)
        if isinstance(pooled, tuple):  # towers with output_tokens (CoCa) return (pooled, tokens)
            pooled = pooled[0]
        return F.normalize(pooled.float(), dim=-1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def average_templates(text_features: torch.Tensor) -> torch.Tensor:
    """[C, T, D] prompt embeddings -> [C, D] classifier: normalize each, average over templates, renormalize."""
    per_prompt = F.normalize(text_features, dim=-1)
    return F.normalize(per_prompt.mean(dim=1), dim=-1)


@torch.no_grad()
def text_classifier(
    clip: LoadedClip,
    prompts: list[str],
    templates: tuple[str, ...] | list[str],
    batch_size: int = TEXT_BATCH,
    progress: ProgressHook | None = None,
) -> torch.Tensor:
    """The fixed text classifier W [C, D] for class display names `prompts` and prompt `templates`.

    Whole classes go through the text tower together, about `batch_size` prompts a pass, so memory stays bounded
    whatever the number of classes and templates; `progress` hears ("text classifier", classes done, classes).
    """
    device = next(clip.model.parameters()).device
    per_pass = max(1, batch_size // len(templates))
    rows, cut = [], []
    for start in range(0, len(prompts), per_pass):
        chunk = prompts[start : start + per_pass]
        tokens = clip.tokenizer([t.format(p) for p in chunk for t in templates]).to(device)
        cut += _cut_names(tokens, chunk, len(templates), _pad_id(clip.tokenizer))
        features = clip.model.encode_text(tokens).float()  # type: ignore[operator]  # open_clip CLIP method
        rows.append(average_templates(features.view(len(chunk), len(templates), -1)))
        if progress:
            progress("text classifier", start + len(chunk), len(prompts))
    if cut:  # one warning for the whole classifier, not one a pass
        log.warning(
            f"class name(s) too long for the text tower's {tokens.shape[1]}-token context, their prompts are cut: "
            + ", ".join(repr(c) for c in cut[:5])
            + (f" and {len(cut) - 5} more" if len(cut) > 5 else "")
        )
    return torch.cat(rows)


def _pad_id(tokenizer: object) -> int:
    """The padding token: 0 for open_clip's own tokenizers, the wrapped tokenizer's for Hugging Face ones."""
    pad = getattr(getattr(tokenizer, "tokenizer", None), "pad_token_id", None)
    return int(pad) if pad is not None else 0


def _cut_names(tokens: torch.Tensor, names: list[str], n_templates: int, pad_id: int) -> list[str]:
    """The names whose prompts the tokenizer may have cut: it silently cuts a prompt longer than the text tower's
    context, and a prompt that fills it has no padding left at the end, which is how one that may be cut shows."""
    full = (tokens[:, -1] != pad_id).view(len(names), n_templates).any(dim=1)
    return [name for name, is_full in zip(names, full.tolist(), strict=True) if is_full]


def logit_scale_of(clip: LoadedClip) -> float:
    """tau = exp(logit_scale), the temperature CLIP was trained with."""
    scale: torch.Tensor = clip.model.logit_scale  # type: ignore[assignment]  # an nn.Parameter on every CLIP
    return float(scale.exp().item())


def zero_shot_classifier(
    model: str,
    pretrained: str | None,
    classes: list[str],
    prompts: list[str],
    templates: list[str],
    progress: ProgressHook | None = None,
    device: str | torch.device = "cpu",
) -> tuple[ClipClassifier, ClassifierMeta]:
    """The pretrained model as a zero-shot classifier: its own image tower and the class-prompt text head, both on
    `device`, where the text head is built (a GPU's minutes for ImageNet's 80,000 prompts, not a CPU's hours)."""
    clip = load_clip(model, pretrained, device)
    weights = text_classifier(clip, prompts, templates, progress=progress)
    meta = ClassifierMeta(
        model=model,
        pretrained=pretrained,
        model_config=clip.config,
        preprocess=clip.preprocess,
        classes=list(classes),
        prompts=list(prompts),
        templates=list(templates),
        logit_scale=logit_scale_of(clip),
    )
    visual: nn.Module = clip.model.visual  # type: ignore[assignment]  # every open_clip model has one
    return ClipClassifier(visual, weights, meta.logit_scale).eval(), meta


def classifier_from_state(meta: ClassifierMeta, state: dict[str, torch.Tensor], where: str) -> ClipClassifier:
    """Rebuilds a classifier of the architecture and head `meta` describes and loads `state` (from `where`)."""
    visual = build_visual(meta.model_config, meta.preprocess)
    try:
        weight = state["head.weight"]
        if tuple(weight.shape[:1]) != (len(meta.classes),):
            raise RuntimeError(f"{weight.shape[0]} class vectors for {len(meta.classes)} classes")
        model = ClipClassifier(visual, torch.zeros_like(weight), meta.logit_scale, head=meta.head)
        model.load_state_dict(state)
    except (KeyError, RuntimeError) as err:  # missing tensors, other shapes: weights of another model
        detail = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
        detail = detail if len(detail) <= 300 else detail[:300] + " ..."
        raise UserError(f"the weights in {where} do not fit the classifier its metadata describes: {detail}") from err
    return model.eval()
