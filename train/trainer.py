"""The fine-tuning loop: a frozen zero-shot teacher, a student (image tower and head), the loss of its method.

Data order and augmentation are drawn from (seed, epoch, index), and the optimizer, scheduler and position are
checkpointed at every validation (each epoch end, and within epochs with val_per_epoch > 1) and on Ctrl-C, so a
resumed run takes exactly the steps an uninterrupted run takes.
Under torchrun each rank takes its share of every global batch (train.session.rank_batches), gradients are averaged
by DistributedDataParallel with each rank's loss weighted by its share of the step's images, and validation and
the teacher's cached logits are sharded and summed: a W-process run takes the steps, and logs the losses, of one
process with the same global batch. Rank 0 alone writes the run directory; the others wait in the collectives.
A loss or gradient that stops being finite, or weights about to be saved that are not, end training with
TrainingDiverged, keeping the last good checkpoint. `prepare` does everything that can fail on bad input;
`run_training` then trains; `train` does both.
"""

from __future__ import annotations

import contextlib
import math
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from common.distributed import Ranks, current
from common.errors import OptionError
from common.files import writable_dir
from common.progress import ProgressHook
from common.run import (
    DATA_FILES,
    METRICS_FILE,
    STATE_FILE,
    Run,
    RunRecord,
    open_run,
    read_metrics,
    write_data_files,
)
from data.labeled import DataError, resolved_paths
from data.loading import Batch, ImageDataset
from data.transforms import eval_transform
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
from train.curves import CURVES_FILE, plot_curves
from train.losses import compute_loss, total_loss
from train.methods import METHODS
from train.methods.flyp import caption_templates, captions
from train.metrics_log import MetricsLog
from train.run_dirs import RunLock, check_unused, config_to_resume, fit_to_world, fresh_run_dir, point_latest
from train.session import Session, autocast, build_session, epoch_steps, loader, rank_batches, trained_parameters
from train.wise import interpolate_in_place, wise_classifier, zero_shot_state

StepCallback = Callable[[int, dict[str, float]], None]
RecordCallback = Callable[[dict[str, Any]], None]  # a metrics.jsonl record as it is written
# Once the run is prepared: its directory, resolved config (TrainConfig.to_dict) and the step a resume continues after.
StartCallback = Callable[[Path, dict[str, Any], "int | None"], None]


class TrainingInterrupted(Exception):
    """Raised when the user pressed Ctrl-C: after a clean save, or before the first step (`resumable` when the run
    has a checkpoint to go on from; a fresh run's directory is removed again)."""

    def __init__(self, message: str, run_dir: Path, resumable: bool = True):
        super().__init__(message)
        self.run_dir, self.resumable = run_dir, resumable


@torch.no_grad()
def precompute_teacher_logits(s: Session) -> None:
    """Without augmentation every epoch shows the teacher the same images: run it once, index by sample."""
    if s.cfg.augment != "none" or not METHODS[s.cfg.loss.kind].uses_teacher or not s.cfg.teacher_cache:
        return
    start = time.time()
    plain = ImageDataset(s.data.resolved.train, eval_transform(s.record.classifier.preprocess), s.cfg.strict)
    cache = torch.zeros(len(plain), len(s.data.resolved.classes))
    for batch in loader(s, plain, rank_batches(s, list(range(len(plain))))):  # each rank its share
        if not len(batch.labels):  # every image of this batch was unreadable (and counted)
            continue
        with autocast(s.device, s.cfg.autocast):
            cache[batch.indices] = s.models.teacher(batch.images.to(s.device)).float().cpu()
    s.data.teacher_logits = s.ranks.sum(cache)  # each row was filled by exactly one rank
    s.record.teacher_cache = {"seconds": round(time.time() - start, 2), "images": len(plain)}


def teacher_logits(s: Session, batch: Batch, images: torch.Tensor) -> torch.Tensor | None:
    if not METHODS[s.cfg.loss.kind].uses_teacher:
        return None
    if s.data.teacher_logits is not None:
        return s.data.teacher_logits[batch.indices].to(s.device)
    with torch.no_grad(), autocast(s.device, s.cfg.autocast):
        return s.models.teacher(images).float()


@torch.no_grad()
def validate(s: Session, model: torch.nn.Module | None = None) -> float:
    """Validation top-1 of the student (or of `model`)."""
    model = model or s.models.student
    model.eval()
    counts = torch.zeros(3, dtype=torch.float64)  # correct, seen, skipped: summed over the ranks' shares
    for batch in loader(s, s.data.val_set, rank_batches(s, list(range(len(s.data.val_set))))):
        counts[2] += batch.skipped
        if not len(batch.labels):
            continue
        with autocast(s.device, s.cfg.autocast):
            pred = model(batch.images.to(s.device)).argmax(dim=-1).cpu()
        counts[0] += int((pred == batch.labels).sum())
        counts[1] += len(batch.labels)
    correct, seen, skipped = (int(v) for v in s.ranks.sum(counts).tolist())
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
    if m.text_tower:
        m.text_tower.train()


def step_counts(s: Session, micro_batches: list[Batch]) -> tuple[int, int]:
    """The step's readable and unreadable images, summed over the ranks."""
    local = [sum(len(b.labels) for b in micro_batches), sum(b.skipped for b in micro_batches)]
    images, skipped = (int(v) for v in s.ranks.sum(torch.tensor(local, dtype=torch.float64)).tolist())
    return images, skipped


def placeholder_batch(s: Session) -> Batch:
    """What a rank with no readable image in a step feeds, at weight 0: DDP needs every rank in every backward. One
    blank image (open_clip's ViTs cannot take an empty batch); a BatchNorm tower sees it in train mode (on GPUs,
    SyncBatchNorm counts it in the global statistics)."""
    size = s.record.classifier.image_size
    zero = torch.zeros(1, dtype=torch.long)
    return Batch(torch.zeros(1, 3, size, size), zero, zero.clone(), zero.clone(), 0)


def caption_tokens(s: Session, batch: Batch) -> torch.Tensor | None:
    """FLYP: each image's caption, its class prompt in the template drawn for it this epoch, tokenized."""
    tower = s.models.text_tower
    if tower is None:
        return None
    meta = s.record.classifier
    choices = caption_templates(s.cfg.seed, s.counters.epoch, batch.indices.tolist(), len(meta.templates))
    return tower.tokenize(captions(meta.prompts, meta.templates, batch.labels.tolist(), choices)).to(s.device)


def micro_batch_terms(s: Session, batch: Batch, placeholder: bool = False) -> tuple[dict[str, torch.Tensor], int]:
    """The loss terms of one micro-batch, their sum as "loss", and the number of images they are the mean over:
    this rank's, or for FLYP under torchrun the whole global micro-batch's (`placeholder`: this rank has none)."""
    m = s.models
    images, labels = batch.images.to(s.device), batch.labels.to(s.device)
    with autocast(s.device, s.cfg.autocast):
        out = m.forward(images, caption_tokens(s, batch))
        cosines = out.projected.float() @ m.text_weights().t() if out.projected is not None else None
    student = out.logits.float() if out.logits is not None else None
    teacher = teacher_logits(s, batch, images)
    contrastive, count = out.contrastive, len(labels)
    if contrastive is not None and gathers_features(s):
        contrastive, count = micro_batch_wide(s.ranks, contrastive, 0 if placeholder else len(labels))
    if count:
        terms = compute_loss(s.cfg.loss, student, teacher, labels, cosines, contrastive=contrastive)
        terms["loss"] = total_loss(terms)  # "loss" does not end in LOSS_SUFFIX, so it is not summed again
    else:  # FLYP: no readable image in the whole micro-batch; the backward still runs (DDP needs every rank in it)
        terms = {"loss": torch.zeros((), device=s.device)}
    if contrastive is not out.contrastive:  # keeps every parameter in this rank's graph when its rows are left out
        terms["loss"] = terms["loss"] + 0 * sum(part.sum() for part in out.contrastive)
    return terms, count


def gathers_features(s: Session) -> bool:
    """FLYP under torchrun: each micro-batch's image and caption features are gathered from every rank."""
    return s.models.text_tower is not None and s.ranks.distributed


def micro_batch_wide(
    ranks: Ranks, contrastive: tuple[torch.Tensor, torch.Tensor, torch.Tensor], rows: int
) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], int]:
    """FLYP under torchrun: the image and caption features of the whole global micro-batch, every rank's first `rows`
    in rank order, and how many; this rank's keep their gradient, the others' are copies (open_clip's ClipLoss
    without gather_with_grad). Every rank then computes the loss one process computes on that micro-batch, with all
    of its negatives; optimizer_step scales it so that DDP's average is that loss's gradient."""
    image_features, caption_features, scale = contrastive
    local = torch.cat([image_features[:rows].float(), caption_features[:rows].float()], dim=1)  # one gather for both
    parts = ranks.gather_rows(local.detach())
    parts[ranks.rank] = local
    wide = torch.cat([part.to(local.device) for part in parts])
    image_rows, caption_rows = wide[:, : image_features.shape[1]], wide[:, image_features.shape[1] :]
    # The scale is the same parameter on every rank, which all take its gradient from the whole loss: 1/world of it
    # each (the value is unchanged), as the features' gradients reach only the rank that computed them.
    scale = scale.detach() + (scale - scale.detach()) / ranks.world
    return (image_rows, caption_rows, scale), len(image_rows)


def step_work(s: Session, micro_batches: list[Batch]) -> list[tuple[Batch, bool]]:
    """The micro-batches this rank runs, each with whether it is a placeholder (fed at weight 0): the readable ones,
    or one placeholder when it has none (DDP needs every rank in every backward). Every rank runs all of them, a
    placeholder for each empty one, when each forward is a collective: FLYP under torchrun (the features of each
    micro-batch are gathered from every rank) and SyncBatchNorm (GPUs: BatchNorm towers, TeS's projection)."""
    if gathers_features(s) or s.models.syncs_batch_norm:
        return [(b, False) if len(b.labels) else (placeholder_batch(s), True) for b in micro_batches]
    readable = [(b, False) for b in micro_batches if len(b.labels)]
    return readable or [(placeholder_batch(s), True)]


def optimizer_step(s: Session, micro_batches: list[Batch]) -> tuple[dict[str, float], int]:
    """One optimizer step over `micro_batches` (gradient accumulation; under torchrun, this rank's share of them).
    Returns the loss terms and their sum as "loss", each the mean over every image of the step, and the number of
    those images; ({}, 0) when none could be read (no step is taken)."""
    m = s.models
    images, skipped = step_counts(s, micro_batches)
    s.counters.skipped += skipped
    if not images:
        return {}, 0
    set_train_mode(s)
    work = step_work(s, micro_batches)
    wide = gathers_features(s)  # FLYP: each micro-batch's whole loss on every rank
    sums: dict[str, torch.Tensor] = {}
    for i, (batch, placeholder) in enumerate(work):
        keep_local = m.data_parallel is not None and i < len(work) - 1  # synchronize once, on the last backward
        with m.data_parallel.no_sync() if keep_local and m.data_parallel else contextlib.nullcontext():
            terms, count = micro_batch_terms(s, batch, placeholder)
            weight = 0.0 if placeholder and not wide else count / images
            # DDP averages gradients over the ranks; weighting by the share of the step's images makes the sum
            # the gradient of the mean over all of them, however unevenly they were split.
            m.scaler.scale(terms["loss"] * weight * s.ranks.world).backward()
        shown = weight / s.ranks.world if wide else weight  # FLYP's wide terms: the same on every rank
        for k, v in terms.items():
            sums[k] = sums.get(k, torch.zeros((), dtype=torch.float64)) + float(v.detach()) * shown
    keys = sorted(sums)
    totals = dict(zip(keys, s.ranks.sum(torch.stack([sums[k] for k in keys])).tolist(), strict=True))
    if not math.isfinite(totals["loss"]):
        raise TrainingDiverged(diverged_message(s, f"the loss is {totals['loss']}"))
    if not m.scaler.is_enabled():  # with FP16 loss scaling, inf gradients are expected: the scaler skips the step
        norm = torch.nn.utils.clip_grad_norm_(trained_parameters(s), float("inf"))  # measures, clips nothing
        if not torch.isfinite(norm):
            raise TrainingDiverged(diverged_message(s, "a gradient is not finite"))
    m.scaler.step(m.optimizer)  # a plain optimizer step unless FP16 loss scaling is on
    m.scaler.update()
    m.optimizer.zero_grad(set_to_none=True)
    m.scheduler.step()
    s.counters.step += 1
    return totals, images


def write_metrics(s: Session, log: MetricsLog, record: dict[str, Any]) -> None:
    if s.ranks.is_main:
        log.write(record)


def validate_and_keep_best(s: Session, log: MetricsLog) -> None:
    meta = s.record.classifier
    s.models.rebuild_text_head(meta.prompts, meta.templates)  # FLYP's head, from the text tower as it is now
    top1 = validate(s)
    write_metrics(s, log, {"step": s.counters.step, "epoch": s.counters.epoch, "val_top1": top1})
    keep_if_best(s, top1)


def mid_epoch_validation_due(s: Session) -> bool:
    """Whether the step just taken ends one of the first val_per_epoch - 1 equal parts of the epoch's steps (the
    last part ends with the epoch, which is validated anyway)."""
    parts = s.cfg.val_per_epoch
    if parts == 1:
        return False
    _, steps = epoch_steps(s.cfg, len(s.data.train_set), s.ranks.world)
    done = math.ceil(s.counters.batch_in_epoch / s.cfg.accum_steps)
    return done < steps and done in {math.ceil(k * steps / parts) for k in range(1, parts)}


def run_epoch(s: Session, log: MetricsLog, stop: Callable[[], bool], on_step: StepCallback | None) -> bool:
    """Trains through the rest of the current epoch, or up to its next mid-epoch validation; returns whether the
    epoch's last batch was consumed."""
    c = s.counters
    s.data.train_set.epoch = c.epoch
    order = torch.randperm(len(s.data.train_set), generator=torch.Generator().manual_seed(s.cfg.seed * 7919 + c.epoch))
    start_batch = c.batch_in_epoch
    pending: list[Batch] = []
    tick = time.time()
    batches = loader(s, s.data.train_set, rank_batches(s, order.tolist(), start_batch))
    readable = False
    for i, batch in enumerate(batches, start=start_batch):
        pending.append(batch)
        readable = readable or bool(len(batch.labels))
        last_of_epoch = i == len(batches) + start_batch - 1
        if len(pending) < s.cfg.accum_steps and not last_of_epoch:
            continue
        terms, n_images = optimizer_step(s, pending)
        pending = []
        c.batch_in_epoch = i + 1
        terms.update(
            lr=float(s.models.scheduler.get_last_lr()[0]), images_per_s=n_images / max(1e-9, time.time() - tick)
        )
        tick = time.time()
        if c.step % s.cfg.log_every == 0 or c.step == 1:
            write_metrics(s, log, {"step": c.step, "epoch": c.epoch, **terms})
        if on_step:
            on_step(c.step, terms)
        # A step without a readable image changed nothing to validate, and must not end an epoch of them early (below).
        validation_due = bool(n_images) and mid_epoch_validation_due(s)
        if s.ranks.any(stop()) or c.step >= s.total_steps or validation_due:  # the same on every rank
            return last_of_epoch
    if start_batch == 0 and not s.ranks.any(readable):
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
    `overrides` may change only train.run_dirs.RESUME_OVERRIDES, and any process count that splits its global
    micro-batch evenly), data, models, saved state, and the run lock (rank 0's: it alone writes)."""
    ranks = current()
    previous = None
    if resume:
        if out is None:
            raise OptionError("resuming needs the run directory to continue")
        previous = open_run(out).record
        cfg = config_to_resume(Run(Path(out), previous), cfg, overrides or {})
        cfg = fit_to_world(cfg, previous.parallel, ranks.world, Path(out))
    else:
        cfg = cfg or TrainConfig()
        out = ranks.broadcast(out or fresh_run_dir(cfg))  # a name from the clock: rank 0's
        check_unused(out)
    out = Path(out)
    s = build_session(cfg, out, progress)
    s.made_out = not out.exists()
    if ranks.is_main:
        writable_dir(out, "run directory")
        s.lock = RunLock(out)  # held until training ends: a second training into `out` is refused
    try:
        _start_or_restore(s, previous)
    except KeyboardInterrupt:
        raise _interrupted_before_a_checkpoint(s, "while loading") from None
    except BaseException:
        _forget_unstarted_run(s)
        raise
    if s.lock:
        s.lock.claim()
    return s


def _forget_unstarted_run(s: Session) -> None:
    """Releases the lock of a run that never saved a checkpoint in this process, and removes the run directory
    again if this process made it and left nothing else in it (a tracker's files, say, keep it)."""
    if s.lock:
        s.lock.release(discard=True)
        s.lock = None
    if s.ranks.is_main and s.made_out and not (s.out / STATE_FILE).exists():
        for name in (METRICS_FILE, DATA_FILES):
            (s.out / name).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            s.out.rmdir()  # only if empty


def _interrupted_before_a_checkpoint(s: Session, when: str) -> TrainingInterrupted:
    """Ctrl-C before the first step of this process: a fresh run is forgotten, a resumed one is as it was."""
    resumable = (s.out / STATE_FILE).exists()
    _forget_unstarted_run(s)
    if resumable:
        return TrainingInterrupted(f"interrupted {when}, before the first step; its checkpoint is as it was", s.out)
    gone = "" if s.out.exists() else f" ({s.out} removed)"
    message = f"interrupted {when}, before the first checkpoint: nothing to resume{gone}"
    return TrainingInterrupted(message, s.out, resumable=False)


def _start_or_restore(s: Session, previous: RunRecord | None) -> None:
    main = s.ranks.is_main
    if previous is None:
        if main:
            check_unused(s.out)  # another process may have started here while this one was loading
            (s.out / METRICS_FILE).unlink(missing_ok=True)  # left by a run that stopped before its first checkpoint
            resolved = s.data.resolved  # what the model is trained on travels with it (overlap checks read it)
            files = {"train": resolved_paths(resolved.train), "val": resolved_paths(resolved.val)}
            s.record.data.files_sha256 = write_data_files(s.out, files)
        return
    restore(s, previous)
    set_base_lr(s, s.cfg.resolved_lr())  # the lr honoured on resume; the schedule stays where it was
    if main:
        MetricsLog(s.out / METRICS_FILE).truncate_after(s.counters.step)  # lines past the checkpoint come again


def run_training(s: Session, on_step: StepCallback | None = None, on_record: RecordCallback | None = None) -> Run:
    """Trains a prepared session to the end and points runs/latest at the finished run; `on_record` sees each
    metrics.jsonl record as it is written. Ctrl-C saves and raises TrainingInterrupted; a non-finite loss, gradient
    or weight raises TrainingDiverged, keeping the last good checkpoint."""
    finished = False
    try:
        run = _train_to_the_end(s, on_step, on_record)
        finished = True
        return run
    except TrainingDiverged as error:
        if s.ranks.is_main:
            mark_diverged(s, error)
        raise
    finally:
        if s.lock:
            s.lock.release(finished=finished)


def _train_to_the_end(s: Session, on_step: StepCallback | None, on_record: RecordCallback | None) -> Run:
    log = MetricsLog(s.out / METRICS_FILE, [on_record] if on_record else [])
    try:  # during the steps, Ctrl-C saves and stops at the next one (a second Ctrl-C kills)
        precompute_teacher_logits(s)
    except KeyboardInterrupt:
        raise _interrupted_before_a_checkpoint(s, "while computing the teacher's logits") from None
    start = time.time()
    with ctrl_c_requests_stop() as stop:
        while s.counters.step < s.total_steps:
            finished_epoch = run_epoch(s, log, stop, on_step)
            mid_epoch = not finished_epoch and mid_epoch_validation_due(s)
            if mid_epoch:  # before a stop is honoured: a resumed run starts past this point
                validate_and_keep_best(s, log)
            if s.ranks.any(stop()):
                save_checkpoint(s, "interrupted")
                draw_curves(s)
                raise TrainingInterrupted(f"interrupted at step {s.counters.step}/{s.total_steps}; saved", s.out)
            if finished_epoch:
                validate_and_keep_best(s, log)
                s.counters.epoch, s.counters.batch_in_epoch = s.counters.epoch + 1, 0
            elif s.counters.step >= s.total_steps and not mid_epoch:
                validate_and_keep_best(s, log)
            save_checkpoint(s, "running")
    s.record.train_seconds = round(time.time() - start + s.record.train_seconds, 2)
    if s.cfg.wise_alpha is not None:  # before "finished": a kill in between resumes into this step again
        model, info = _interpolate(s, s.cfg.wise_alpha)
        s.record.wise = replace(info, val_top1=validate(s, model.to(s.device)))
    save_checkpoint(s, "finished")
    draw_curves(s)
    if s.ranks.is_main:
        point_latest(s.out)
    return Run(s.out, s.record)


def draw_curves(s: Session) -> None:
    """curves.png in the run directory (rank 0): the loss terms, learning rate and validation top-1 so far."""
    if s.ranks.is_main:
        plot_curves(read_metrics(s.out / METRICS_FILE), s.record.best.step, s.out / CURVES_FILE)


def _interpolate(s: Session, alpha: float) -> tuple[torch.nn.Module, Any]:
    """WiSE-FT at the end of a recipe: rank 0 interpolates the run in place; the others then build the same model
    from the fine-tuned weights rank 0 kept, to validate it with their shares."""
    run = Run(s.out, s.record)
    model, info = interpolate_in_place(run, alpha) if s.ranks.is_main else (None, None)
    s.ranks.barrier()
    if model is None:
        model = wise_classifier(Run(s.out, replace(s.record, wise=None)), alpha, zero_shot_state(run))
    return model, s.ranks.broadcast(info)


def train(
    cfg: TrainConfig | None = None,
    out: Path | None = None,
    resume: bool = False,
    on_step: StepCallback | None = None,
    on_record: RecordCallback | None = None,
    on_start: StartCallback | None = None,
) -> Run:
    """Fine-tunes and writes a self-describing run directory (see `prepare` for `out` and `resume`, `run_training`
    for the callbacks; `on_start` is called on rank 0 once the run is prepared)."""
    s = prepare(cfg, out, resume)
    if on_start is not None and s.ranks.is_main:
        on_start(s.out, s.cfg.to_dict(), s.counters.step if resume else None)
    return run_training(s, on_step, on_record)
