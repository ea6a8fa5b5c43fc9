"""Reading and writing classifier checkpoints: run directories and the zero-shot built-in model.

A run directory holds `run.json` (with the ClassifierMeta under "classifier") and the weights as safetensors:
`best.safetensors` (best on validation) and `last.safetensors` (latest, for resuming).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from common.metadata import ClassifierMeta
from common.models import ClipClassifier, build_visual, load_clip, logit_scale_of, text_classifier

RUN_FILE = "run.json"
BEST_WEIGHTS = "best.safetensors"
LAST_WEIGHTS = "last.safetensors"


class CheckpointError(ValueError):
    """A checkpoint that is missing or unreadable; the message is one line for the user."""


def save_weights(model: torch.nn.Module, path: Path, step: int | None = None) -> None:
    """Writes a state dict as safetensors, atomically, stamped with the training step it holds."""
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata={"step": str(step)} if step is not None else None)
    tmp.replace(path)


def weights_step(path: Path) -> int | None:
    """The training step stamped into a weights file by save_weights, if any."""
    with safe_open(str(path), framework="pt") as f:
        step = (f.metadata() or {}).get("step")
    return int(step) if step is not None else None


def read_run(run_dir: Path) -> dict:
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise CheckpointError(f"not a run directory (no {RUN_FILE}): {run_dir}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"corrupt {path}: {err}") from err


def load_run_classifier(run_dir: Path, weights: str = BEST_WEIGHTS) -> tuple[ClipClassifier, ClassifierMeta]:
    """Rebuilds the fine-tuned classifier from a run directory alone."""
    run_dir = Path(run_dir)
    meta = ClassifierMeta.from_dict(read_run(run_dir)["classifier"])
    path = run_dir / weights
    if not path.is_file():
        raise CheckpointError(f"no weights in run directory (expected {weights}): {run_dir}")
    try:
        state = load_file(str(path))
    except Exception as err:
        raise CheckpointError(f"cannot read weights {path}: {err}") from err
    visual = build_visual(meta.model_config, meta.preprocess)
    model = ClipClassifier(visual, state["class_weights"], float(state["logit_scale"]))
    model.load_state_dict(state)
    return model.eval(), meta


def zero_shot_classifier(
    model: str, pretrained: str | None, classes: list[str], prompts: list[str], templates: list[str]
) -> tuple[ClipClassifier, ClassifierMeta]:
    """The pretrained model as a zero-shot classifier: its own image tower and the class-prompt text head."""
    clip = load_clip(model, pretrained)
    weights = text_classifier(clip, prompts, templates)
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
    visual: torch.nn.Module = clip.model.visual  # type: ignore[assignment]  # every open_clip model has one
    return ClipClassifier(visual, weights, meta.logit_scale).eval(), meta
