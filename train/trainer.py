"""The fine-tuning loop: a frozen zero-shot teacher, a student (image tower and head), the loss of its method.

Data order and augmentation are drawn from (seed, epoch, index), and the optimizer, scheduler and position are
checkpointed at every epoch end and on Ctrl-C, so a resumed run takes exactly the steps an uninterrupted run takes.
A loss or gradient that stops being finite, or weights about to be saved that are not, end training with
TrainingDiverged, keeping the last good checkpoint. `prepare` does everything that can fail on bad input;
`run_training` then trains; `train` does both.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from common.data import Batch, DataError, ImageDataset
from common.errors import OptionError
from common.files import writable_dir
from common.progress import ProgressHook
from common.run import METRICS_FILE, Run, open_run
from common.transforms import eval_transform
from train.checkpointing import (
    TrainingDiverged,
    diverged_message,
    keep_if_best,
    mark_diverged,
    restore,
    save_checkpoint,
    set_base_lr,
)
from train.config import TrainConfig
from train.losses import compute_loss, total_loss
from train.methods import LOSSES
from train.metrics_log import MetricsLog
from train.run_dirs import RunLock, check_unused, config_to_resume, fresh_run_dir, point_latest
from train.session import Session, autocast, build_session, loader, trained_parameters
from train.wise import interpolate_in_place

StepCallback = Callable[[int, dict[str, float]], None]


class TrainingInterrupted(Exception):
    """Raised after a clean save when the user pressed Ctrl-C."""


@torch.no_grad()
def precompute_teacher_logits(s: Session) -> None:
    """Without augmentation every epoch shows the teacher the same images: run it once, index by sample."""
    if s.cfg.augment != "none" or not LOSSES[s.cfg.loss.kind].uses_teacher or not s.cfg.teacher_cache:
        return
    start = time.time()
    plain = ImageDataset(s.data.resolved.train, eval_transform(s.record.classifier.preprocess), s.cfg.strict)
    cache = torch.zeros(len(plain), len(s.data.resolved.classes))
    for batch in loader(s, plain, None):
        if not len(batch.labels):  # every image of this batch was unreadable (and counted)
            continue
        with autocast(s.device, s.cfg.precision):
            cache[batch.indices] = s.models.teacher(batch.images.to(s.device)).float().cpu()
    s.data.teacher_logits = cache
    s.record.teacher_cache = {"seconds": round(time.time() - start, 2), "images": len(plain)}


def teacher_logits(s: Session, batch: Batch, images: torch.Tensor) -> torch.Tensor | None:
    if not LOSSES[s.cfg.loss.kind].uses_teacher:
        return None
    if s.data.teacher_logits is not None:
        return s.data.teacher_logits[batch.indices].to(s.device)
    with torch.no_grad(), autocast(s.device, s.cfg.precision):
        return s.models.teacher(images).float()


@torch.no_grad()
def validate(s: Session, model: torch.nn.Module | None = None) -> float:
    """Validation top-1 of the student (or of `model`)."""
    model = model or s.models.student
    model.eval()
    correct = seen = skipped = 0
    for batch in loader(s, s.data.val_set, None):
        skipped += batch.skipped
        if not len(batch.labels):
            continue
        with autocast(s.device, s.cfg.precision):
            pred = model(batch.images.to(s.device)).argmax(dim=-1).cpu()
        correct += int((pred == batch.labels).sum())
        seen += len(batch.labels)
    s.counters.val_skipped = skipped
    return correct / max(1, seen)


def set_train_mode(s: Session) -> None:
    """Training mode, with the encoder frozen during LP-FT's linear-probing steps (no gradients are computed for
    it, and AdamW leaves parameters without gradients alone)."""
    m = s.models
    m.student.train()
    probing = s.counters.step < m.frozen_encoder_steps
    m.student.visual.requires_grad_(not probing)
    if probing:  # a frozen encoder gives fixed features: BatchNorm uses, and keeps, its running statistics
        m.student.visual.eval()
    if m.projection:
        m.projection.train()


def optimizer_step(s: Session, micro_batches: list[Batch]) -> dict[str, float]:
    """One optimizer step over `micro_batches` (gradient accumulation); returns the averaged loss terms and their
    sum as "loss"."""
    m = s.models
    set_train_mode(s)
    sums: dict[str, float] = {}
    for batch in micro_batches:
        images, labels = batch.images.to(s.device), batch.labels.to(s.device)
        with autocast(s.device, s.cfg.precision):
            features = m.student.features(images)
            student = m.student.head(features).float()
            cosines = m.projection(features).float() @ m.text_weights().t() if m.projection else None
        terms = compute_loss(s.cfg.loss, student, teacher_logits(s, batch, images), labels, cosines)
        terms["loss"] = total_loss(terms)  # "loss" does not end in LOSS_SUFFIX, so it is not summed again
        if not torch.isfinite(terms["loss"]):
            raise TrainingDiverged(diverged_message(s, f"the loss is {terms['loss'].item()}"))
        m.scaler.scale(terms["loss"] / len(micro_batches)).backward()
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach()) / len(micro_batches)
    if not m.scaler.is_enabled():  # with FP16 loss scaling, inf gradients are expected: the scaler skips the step
        norm = torch.nn.utils.clip_grad_norm_(trained_parameters(s), float("inf"))  # measures, clips nothing
        if not torch.isfinite(norm):
            raise TrainingDiverged(diverged_message(s, "a gradient is not finite"))
    m.scaler.step(m.optimizer)  # a plain optimizer step unless FP16 loss scaling is on
    m.scaler.update()
    m.optimizer.zero_grad(set_to_none=True)
    m.scheduler.step()
    s.counters.step += 1
    return sums


def validate_and_keep_best(s: Session, log: MetricsLog) -> None:
    top1 = validate(s)
    log.write({"step": s.counters.step, "epoch": s.counters.epoch, "val_top1": top1})
    keep_if_best(s, top1)


def run_epoch(s: Session, log: MetricsLog, stop: Callable[[], bool], on_step: StepCallback | None) -> bool:
    """Trains through the rest of the current epoch; returns whether the epoch's last batch was consumed."""
    c = s.counters
    s.data.train_set.epoch = c.epoch
    order = torch.randperm(len(s.data.train_set), generator=torch.Generator().manual_seed(s.cfg.seed * 7919 + c.epoch))
    start_batch = c.batch_in_epoch
    pending: list[Batch] = []
    tick = time.time()
    batches = loader(s, s.data.train_set, order[start_batch * s.cfg.batch_size :].tolist())
    readable = False
    for i, batch in enumerate(batches, start=start_batch):
        c.skipped += batch.skipped
        if len(batch.labels):
            pending.append(batch)
            readable = True
        last_of_epoch = i == len(batches) + start_batch - 1
        if len(pending) < s.cfg.accum_steps and not last_of_epoch:
            continue
        n_images = sum(len(b.labels) for b in pending)
        terms = optimizer_step(s, pending) if pending else {}
        pending = []
        c.batch_in_epoch = i + 1
        terms.update(
            lr=float(s.models.scheduler.get_last_lr()[0]), images_per_s=n_images / max(1e-9, time.time() - tick)
        )
        tick = time.time()
        if c.step % s.cfg.log_every == 0 or c.step == 1:
            log.write({"step": c.step, "epoch": c.epoch, **terms})
        if on_step:
            on_step(c.step, terms)
        if stop() or c.step >= s.total_steps:
            return last_of_epoch
    if not readable and start_batch == 0:
        raise DataError(f"no image of {s.data.resolved.train.name!r} could be read in epoch {c.epoch} (see warnings)")
    return True


@contextlib.contextmanager
def ctrl_c_requests_stop() -> Iterator[Callable[[], bool]]:
    """Turns the first Ctrl-C into a request to stop at the next step boundary (a second one kills as usual)."""
    requested = {"stop": False}

    def handler(signum, frame):
        requested["stop"] = True
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: requested["stop"]
    finally:
        signal.signal(signal.SIGINT, previous)


def prepare(
    cfg: TrainConfig | None = None,
    out: Path | None = None,
    resume: bool = False,
    progress: ProgressHook | None = None,
    overrides: dict[str, Any] | None = None,
) -> Session:
    """Everything that can fail on bad input, before the first step: the run directory (fresh under runs/ when
    `out` is None; with `resume`, the interrupted or diverged run in `out` with its own config, where `cfg` or
    `overrides` may change only train.run_dirs.RESUME_OVERRIDES), data, models, saved state, and the run lock."""
    previous = None
    if resume:
        if out is None:
            raise OptionError("resuming needs the run directory to continue")
        previous = open_run(out).record
        cfg = config_to_resume(Run(Path(out), previous), cfg, overrides or {})
    else:
        cfg = cfg or TrainConfig()
        out = out or fresh_run_dir(cfg)
        check_unused(out)
    out = Path(out)
    s = build_session(cfg, out, progress)
    writable_dir(out, "run directory")
    s.lock = RunLock(out)  # held until training ends: a second training into `out` is refused
    try:
        if not resume:
            check_unused(out)  # another process may have started here while this one was loading
            (out / METRICS_FILE).unlink(missing_ok=True)  # left by a run that stopped before its first checkpoint
        if previous is not None:
            restore(s, previous)
            set_base_lr(s, cfg.resolved_lr())  # the lr honoured on resume; the schedule stays where it was
            MetricsLog(out / METRICS_FILE).truncate_after(s.counters.step)  # lines past the checkpoint come again
    except BaseException:
        s.lock.release(discard=True)
        raise
    s.lock.claim()
    return s


def run_training(s: Session, on_step: StepCallback | None = None) -> Run:
    """Trains a prepared session to the end and points runs/latest at the finished run. Ctrl-C saves and raises
    TrainingInterrupted; a non-finite loss, gradient or weight raises TrainingDiverged, keeping the last good
    checkpoint."""
    try:
        return _train_to_the_end(s, on_step)
    except TrainingDiverged as error:
        mark_diverged(s, error)
        raise
    finally:
        if s.lock:
            s.lock.release()


def _train_to_the_end(s: Session, on_step: StepCallback | None) -> Run:
    log = MetricsLog(s.out / METRICS_FILE)
    precompute_teacher_logits(s)
    start = time.time()
    with ctrl_c_requests_stop() as stop:
        while s.counters.step < s.total_steps:
            finished_epoch = run_epoch(s, log, stop, on_step)
            if stop():
                save_checkpoint(s, "interrupted")
                raise TrainingInterrupted(f"interrupted at step {s.counters.step}/{s.total_steps}")
            if finished_epoch:
                validate_and_keep_best(s, log)
                s.counters.epoch, s.counters.batch_in_epoch = s.counters.epoch + 1, 0
            elif s.counters.step >= s.total_steps:
                validate_and_keep_best(s, log)
            save_checkpoint(s, "running")
    s.record.train_seconds = round(time.time() - start + s.record.train_seconds, 2)
    if s.cfg.wise_alpha is not None:  # before "finished": a kill in between resumes into this step again
        model, info = interpolate_in_place(Run(s.out, s.record), s.cfg.wise_alpha)
        s.record.wise = replace(info, val_top1=validate(s, model.to(s.device)))
    save_checkpoint(s, "finished")
    point_latest(s.out)
    return Run(s.out, s.record)


def train(
    cfg: TrainConfig | None = None, out: Path | None = None, resume: bool = False, on_step: StepCallback | None = None
) -> Run:
    """Fine-tunes and writes a self-describing run directory (see `prepare` for `out` and `resume`)."""
    return run_training(prepare(cfg, out, resume), on_step)
