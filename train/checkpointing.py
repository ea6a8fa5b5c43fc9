"""Saving and restoring a training session: last weights and optimizer state at every epoch end and on Ctrl-C, the
best weights on validation, and run.json last (it is the index). A model with non-finite weights is never saved."""

from __future__ import annotations

import torch

from common.checkpoint import load_weights, save_weights, weights_step, write_weights
from common.errors import UserError
from common.files import staged_file
from common.run import (
    BEST_WEIGHTS,
    LAST_WEIGHTS,
    STATE_FILE,
    TEXT_TOWER_WEIGHTS,
    BestCheckpoint,
    CheckpointError,
    RunProgress,
    RunRecord,
    write_run_record,
)
from train.session import LoopCounters, Session


class TrainingDiverged(UserError):
    """The loss, a gradient or the weights stopped being finite; the last good checkpoint is kept."""


def check_finite_weights(s: Session) -> None:
    named = list(s.models.student.named_parameters())
    for prefix, module in s.models.side_modules().items():
        named += [(f"{prefix}.{n}", p) for n, p in module.named_parameters()]
    bad = [name for name, p in named if not torch.isfinite(p).all()]
    if bad:
        raise TrainingDiverged(diverged_message(s, f"the weights are not finite ({bad[0]})"))


def diverged_message(s: Session, what: str) -> str:
    stopped = f"training diverged at step {s.counters.step + 1}: {what}"
    if s.saved_step is None:
        return f"{stopped}; no checkpoint was saved yet; start again with a lower --lr"
    return (
        f"{stopped}; the last good checkpoint (step {s.saved_step}) is kept; "
        f"resume with a lower lr: python cli.py train --resume {s.out} --lr LR"
    )


def mark_diverged(s: Session, error: TrainingDiverged) -> None:
    """Records the stop in run.json (whose position is the last good checkpoint's) without touching its weights."""
    if s.saved_step is not None:
        s.record.status, s.record.error = "diverged", str(error)
        write_run_record(s.out, s.record)


def record_position(s: Session) -> None:
    """What run.json says about progress, the best step and unreadable images, from the loop's counters; called
    whenever the counters match the files on disk (a save, a restore)."""
    c = s.counters
    s.record.progress = RunProgress(step=c.step, total_steps=s.total_steps, epoch=c.epoch)
    s.record.best = BestCheckpoint(step=c.best_step, val_top1=c.best_val_top1)
    s.record.data.skipped_train_reads, s.record.data.skipped_val = c.skipped, c.val_skipped
    s.saved_step = c.step


def save_checkpoint(s: Session, status: str) -> None:
    """Writes last weights and optimizer state, then run.json, each atomically (run.json last: it is the index).
    Every rank checks the weights (they are the same everywhere, so all stop together); rank 0 alone writes."""
    check_finite_weights(s)
    s.record.status, s.record.error = status, None
    if not s.ranks.is_main:
        record_position(s)
        return
    m, c = s.models, s.counters
    state = {
        "optimizer": m.optimizer.state_dict(),
        "scheduler": m.scheduler.state_dict(),
        "scaler": m.scaler.state_dict(),
        "position": vars(c),
    }
    # TeS's projection and FLYP's text tower: here, in the one file that holds the position, so they cannot disagree
    state |= {name: module.state_dict() for name, module in m.side_modules().items()}
    # Both files are written before either is moved into place: a full disk leaves the last checkpoint whole.
    with staged_file(s.out / LAST_WEIGHTS) as weights_tmp, staged_file(s.out / STATE_FILE) as state_tmp:
        write_weights(m.student, weights_tmp, step=c.step)
        torch.save(state, state_tmp)
    record_position(s)
    write_run_record(s.out, s.record)


def keep_if_best(s: Session, val_top1: float) -> None:
    """Saves the student as best.safetensors when `val_top1` beats every earlier validation (and FLYP's text tower
    as text_tower.safetensors)."""
    c = s.counters
    if val_top1 > c.best_val_top1:
        check_finite_weights(s)
        c.best_val_top1, c.best_step = val_top1, c.step
        if s.ranks.is_main:
            if s.models.text_tower:  # first: best.safetensors of a step always has its text tower (train.wise)
                save_weights(s.models.text_tower, s.out / TEXT_TOWER_WEIGHTS, step=c.step)
            save_weights(s.models.student, s.out / BEST_WEIGHTS, step=c.step)


def restore(s: Session, previous: RunRecord) -> None:
    """Loads last weights, optimizer state and position from the run directory for --resume."""
    m = s.models
    weights = load_weights(s.out / LAST_WEIGHTS)
    if not (s.out / STATE_FILE).is_file():
        raise CheckpointError(f"cannot resume {s.out}: no {STATE_FILE} (the run never saved its optimizer state)")
    try:
        # To the CPU first: storages saved on a GPU would otherwise go back to that GPU (none on a CPU host; under
        # torchrun every rank would build rank 0's optimizer state on its GPU). load_state_dict moves each tensor to
        # its parameter's device.
        state = torch.load(s.out / STATE_FILE, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated or foreign: torch's unpickler raises many kinds (IndexError, EOFError, ...)
        raise CheckpointError(f"cannot resume {s.out}: unreadable {STATE_FILE} ({err})".splitlines()[0]) from err
    try:  # a file of another run, model or version: missing keys, other shapes
        m.student.load_state_dict(weights)
        m.optimizer.load_state_dict(state["optimizer"])
        m.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            m.scaler.load_state_dict(state["scaler"])
        for name, module in m.side_modules().items():
            module.load_state_dict(state[name])
        s.counters = LoopCounters(**state["position"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"cannot resume {s.out}: its {STATE_FILE} or {LAST_WEIGHTS} is not this run's ({detail})"
        ) from err
    # Weights and optimizer state are separate files; a kill between the two writes must not go unnoticed.
    if weights_step(s.out / LAST_WEIGHTS) != s.counters.step:
        raise CheckpointError(
            f"cannot resume {s.out}: {LAST_WEIGHTS} is from step {weights_step(s.out / LAST_WEIGHTS)} but "
            f"{STATE_FILE} from step {s.counters.step} (the run was killed while saving); start a new run"
        )
    s.record.created, s.record.resumed_at_step = previous.created, s.counters.step
    s.record.train_seconds = previous.train_seconds
    s.record.teacher_cache = s.record.teacher_cache or previous.teacher_cache
    record_position(s)


def set_base_lr(s: Session, lr: float) -> None:
    """Makes `lr` the encoder's base rate, and the head's its multiple (on resume, where the optimizer state brought
    the saved ones back), applied at the current position of each group's schedule."""
    scheduler = s.models.scheduler
    groups = s.models.optimizer.param_groups
    scheduler.base_lrs = [lr * group.get("lr_scale", 1.0) for group in groups]
    for group, base, factor in zip(groups, scheduler.base_lrs, scheduler.lr_lambdas, strict=True):
        group["initial_lr"] = base
        group["lr"] = base * factor(scheduler.last_epoch)
