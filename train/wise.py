"""WiSE-FT (Wortsman et al., CVPR 2022): a weight-space ensemble of a fine-tuned model and the model it started from.

theta = (1 - alpha) theta_0 + alpha theta_ft over the image tower and, where it was trained, the head. theta_0 is
the zero-shot model, rebuilt from what run.json says (model, pretrained weights, prompts, templates), with the
run's head kind started from the text classifier, or another run of the same architecture and classes (`base`).
A FLYP run trained the text tower too: both towers are interpolated, and the text head is rebuilt from the
interpolated text tower (train.methods.flyp). alpha 0 gives theta_0 exactly and alpha 1 theta_ft exactly (for FLYP,
the head at an end is that end's own, built from that very tower). The result is a run directory like any other, so
export, eval and the pipeline take it, and the shipped model costs nothing extra at inference.
"""

from __future__ import annotations

import copy
import shutil
import time
from dataclasses import replace
from pathlib import Path

import torch

from common.checkpoint import load_weights, save_weights, weights_step, write_weights
from common.classifier import ClipClassifier, classifier_from_state, zero_shot_classifier
from common.errors import OptionError, UserError, check_number
from common.files import new_folder, staged_file, strict_json
from common.provenance import file_sha256, git_commit
from common.run import (
    BEST_WEIGHTS,
    DATA_FILES,
    FINETUNED_WEIGHTS,
    RUN_FILE,
    TEXT_TOWER_WEIGHTS,
    CheckpointError,
    Run,
    WiseInfo,
)
from train.config import TrainConfig
from train.methods import METHODS
from train.methods.flyp import TextTower, load_text_tower, prefixed, split_text_tower, text_head_from_tower


def check_alpha(alpha: float, name: str = "alpha") -> None:
    check_number(name, alpha, 0, 1)


def parse_alphas(text: str, option: str = "--alpha") -> list[float]:
    """'0.5' or '0,0.1,...,1' -> the alphas, sorted, each checked to lie in [0, 1]."""
    try:
        alphas = [float(a) for a in text.split(",") if a.strip()]
    except ValueError:
        raise OptionError(f"{option} {text!r}: give numbers in [0, 1], comma-separated") from None
    if not alphas:
        raise OptionError(f"{option}: give at least one number in [0, 1]")
    for alpha in alphas:
        check_alpha(alpha, option)
    return sorted(set(alphas))


def check_new_run_dir(run: Run, out: Path) -> None:
    """An interpolated run never overwrites a run (the fine-tuned one included)."""
    if Path(out).resolve() == run.path.resolve() or (Path(out) / RUN_FILE).exists():
        raise UserError(f"{out} already holds a run: give a new --out for the interpolated one")


def finetuned_weights(run: Run) -> Path:
    """The un-interpolated weights of a run: beside the interpolated ones when a recipe interpolated in place. A run
    that `wise` wrote holds only an interpolation, which would be interpolated twice: refused, naming its source."""
    kept = run.path / FINETUNED_WEIGHTS
    if kept.is_file():
        return kept
    if run.record.wise is not None:
        raise UserError(
            f"{run.path} is already a WiSE-FT interpolation (alpha {run.record.wise.alpha:g}) of "
            f"{run.record.wise.finetuned}: interpolate that run instead"
        )
    return run.best_weights


def _train_config(run: Run) -> TrainConfig:
    return TrainConfig.from_dict(run.record.train_config, f"{run.path / RUN_FILE}: train_config")


def zero_shot_state(run: Run) -> dict[str, torch.Tensor]:
    """The weights the run started from: its pretrained tower and its head kind started from the text classifier
    (and, for FLYP, the pretrained text tower, prefixed)."""
    meta = run.classifier
    cfg = _train_config(run)
    if cfg.head_init != "text":
        raise OptionError(
            f"{run.path}: its {meta.head} head started at random, not from the text classifier, so there is no "
            "zero-shot head to interpolate towards (interpolate with --base RUN instead)"
        )
    teacher, _ = zero_shot_classifier(meta.model, meta.pretrained, meta.classes, meta.prompts, meta.templates)
    text = teacher.text_head()
    start = ClipClassifier(teacher.visual, text.weight, float(text.logit_scale), head=meta.head)
    if not METHODS[cfg.loss.kind].trains_text_tower:
        return start.state_dict()
    return start.state_dict() | prefixed(load_text_tower(meta.model, meta.pretrained).state_dict())


def finetuned_state(run: Run) -> dict[str, torch.Tensor]:
    """The fine-tuned weights of a run (finetuned_weights) and, for FLYP, its tuned text tower of the same step,
    prefixed."""
    weights = finetuned_weights(run)
    state = load_weights(weights)
    if not METHODS[_train_config(run).loss.kind].trains_text_tower:
        return state
    tower = run.path / TEXT_TOWER_WEIGHTS
    if not tower.is_file():
        raise CheckpointError(
            f"{run.path}: no {TEXT_TOWER_WEIGHTS}, the text tower FLYP tuned, which WiSE-FT interpolates with the "
            "image tower"
        )
    if weights_step(tower) != weights_step(weights):
        raise CheckpointError(
            f"{run.path}: {TEXT_TOWER_WEIGHTS} is from step {weights_step(tower)} but {weights.name} from step "
            f"{weights_step(weights)} (the run was killed while saving them)"
        )
    return state | prefixed(load_weights(tower))


def check_compatible(tuned: Run, base: Run) -> None:
    """Two runs can be interpolated only when their weights mean the same thing: one architecture, preprocessing,
    class list and head."""
    a, b = tuned.classifier, base.classifier
    for what, mine, theirs in (
        ("architecture", (a.model_config, a.preprocess), (b.model_config, b.preprocess)),
        ("class list", a.classes, b.classes),
        ("head", a.head, b.head),
    ):
        if mine != theirs:
            raise UserError(f"cannot interpolate {tuned.path} with {base.path}: their {what} differs")


def interpolate(base: dict[str, torch.Tensor], tuned: dict[str, torch.Tensor], alpha: float) -> dict:
    """(1 - alpha) base + alpha tuned for every floating-point tensor; counters (BatchNorm's) come from `tuned`."""
    check_alpha(alpha)
    if base.keys() != tuned.keys():
        missing = sorted(set(base) ^ set(tuned))
        raise UserError(f"cannot interpolate weights of different models (tensors {', '.join(missing[:3])} differ)")
    out = {}
    for name, t in tuned.items():
        b = base[name].to(t.device)
        if b.shape != t.shape:
            raise UserError(
                f"cannot interpolate weights of different models ({name}: {tuple(b.shape)} vs {tuple(t.shape)})"
            )
        if not t.is_floating_point() or alpha == 1:
            out[name] = t.clone()  # counters (BatchNorm's) from the tuned model; alpha 1 exactly, inf included
        elif alpha == 0:
            out[name] = b.to(t.dtype).clone()
        else:
            out[name] = (1 - alpha) * b.to(t.dtype) + alpha * t
    return out


def base_state(run: Run, base: Run | None) -> dict[str, torch.Tensor]:
    if base is None:
        return zero_shot_state(run)
    check_compatible(run, base)
    return finetuned_state(base)


class Interpolation:
    """The classifiers between `base` and a run's fine-tuned weights, in memory (a sweep evaluates several alphas
    before one is written): the fine-tuned weights are read once, and FLYP's text tower is loaded once."""

    def __init__(self, run: Run, base: dict[str, torch.Tensor]):
        self.run, self.base, self.tuned = run, base, finetuned_state(run)
        self.tower: TextTower | None = None  # FLYP: the module each alpha's interpolated text tower is loaded into

    def classifier(self, alpha: float) -> ClipClassifier:
        meta, where = self.run.classifier, str(self.run.path)
        state, tower_state = split_text_tower(interpolate(self.base, self.tuned, alpha))
        if tower_state and 0 < alpha < 1:  # FLYP: the head the interpolated text tower gives; at the ends, its own
            self.tower = self.tower or load_text_tower(meta.model, meta.pretrained)
            state |= text_head_from_tower(meta, tower_state, where, self.tower)
        return classifier_from_state(meta, state, where)


def wise_classifier(run: Run, alpha: float, base: dict[str, torch.Tensor]) -> ClipClassifier:
    """The interpolated classifier at one alpha."""
    return Interpolation(run, base).classifier(alpha)


def write_wise_run(
    run: Run,
    alpha: float,
    out: Path,
    base: Run | None = None,
    interpolation: Interpolation | None = None,
    val_top1: float | None = None,
) -> Run:
    """Writes the interpolated model as a new run directory `out` (best.safetensors and run.json, which names the
    fine-tuned run, alpha and base, and the interpolation's validation top-1 `val_top1` when it was measured; `best`
    stays the fine-tuned checkpoint's). A sweep passes its `interpolation`, so nothing is read or loaded again."""
    check_alpha(alpha)
    out = Path(out)
    check_new_run_dir(run, out)
    if run.record.status != "finished":
        raise UserError(f"{run.path} has not finished training ({run.record.status}): finish or resume it first")
    model = (interpolation or Interpolation(run, base_state(run, base))).classifier(alpha)
    record = copy.deepcopy(run.record)
    record.wise = WiseInfo(
        alpha=alpha,
        base=str(base.path.resolve()) if base else "zero-shot",
        finetuned=str(run.path.resolve()),
        finetuned_sha256=file_sha256(finetuned_weights(run)),
        val_top1=val_top1,
    )
    record.status, record.created, record.git_commit = "finished", time.strftime("%Y-%m-%dT%H:%M:%S%z"), git_commit()
    with new_folder(out, "output folder"):  # a failure (a full disk) leaves no half-made run behind
        # run.json, the run's index, moved into place last
        with staged_file(out / RUN_FILE) as record_tmp, staged_file(out / BEST_WEIGHTS) as weights_tmp:
            write_weights(model, weights_tmp, step=run.record.best.step)
            if record.data.files_sha256 is not None:  # what the model was trained on travels with it
                with staged_file(out / DATA_FILES) as files_tmp:
                    shutil.copyfile(run.path / DATA_FILES, files_tmp)
            record_tmp.write_text(strict_json(record.to_dict()) + "\n")
    return Run(out, record)


def interpolate_in_place(run: Run, alpha: float) -> tuple[ClipClassifier, WiseInfo]:
    """A recipe with WiSE-FT: the run's best.safetensors becomes the interpolation with its zero-shot model, the
    fine-tuned weights kept as finetuned.safetensors. Safe to repeat after a kill at any point: the fine-tuned
    weights are copied (never moved) before best.safetensors is replaced, and later passes start from the copy.
    The caller records the returned WiseInfo in run.json."""
    check_alpha(alpha)
    base = zero_shot_state(run)  # may refuse: before anything changes
    kept = run.path / FINETUNED_WEIGHTS
    if not kept.is_file():
        with staged_file(kept) as tmp:
            shutil.copyfile(run.best_weights, tmp)
    model = wise_classifier(Run(run.path, replace(run.record, wise=None)), alpha, base)
    save_weights(model, run.best_weights, step=run.record.best.step)
    info = WiseInfo(alpha=alpha, base="zero-shot", finetuned=FINETUNED_WEIGHTS, finetuned_sha256=file_sha256(kept))
    return model, info
