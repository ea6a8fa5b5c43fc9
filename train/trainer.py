"""The fine-tuning loop: a frozen zero-shot teacher, a student image tower, the fixed text classifier.

Data order and augmentation are drawn from (seed, epoch, index), and the optimizer, scheduler and position are
checkpointed at every epoch end and on Ctrl-C, so a resumed run takes exactly the steps an uninterrupted run takes.
`prepare` does everything that can fail on bad input; `run_training` then trains; `train` does both.
"""

from __future__ import annotations

import contextlib
import copy
import math
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from common.checkpoint import load_weights, save_weights, weights_step
from common.classifier import ClipClassifier, zero_shot_classifier
from common.data import Batch, ImageDataset, make_loader
from common.errors import OptionError
from common.models import pick_device
from common.progress import ProgressHook
from common.provenance import git_commit
from common.run import (
    BEST_WEIGHTS,
    LAST_WEIGHTS,
    METRICS_FILE,
    STATE_FILE,
    BestCheckpoint,
    CheckpointError,
    Run,
    RunData,
    RunProgress,
    RunRecord,
    open_run,
    write_run_record,
)
from common.suites import TrainData, resolve_train_data
from common.transforms import eval_transform, train_transform
from train.config import TrainConfig
from train.losses import compute_loss, total_loss
from train.methods import LOSSES
from train.metrics_log import MetricsLog
from train.run_dirs import check_unused, config_to_resume, fresh_run_dir, point_latest

StepCallback = Callable[[int, dict[str, float]], None]


class TrainingInterrupted(Exception):
    """Raised after a clean save when the user pressed Ctrl-C."""


class SeededAugment(Dataset):
    """Draws each item's augmentation from (seed, epoch, index), so resumed runs see the same images."""

    def __init__(self, base: ImageDataset, seed: int):
        self.base, self.seed, self.epoch = base, seed, 0

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed * 1_000_003 + self.epoch * 100_003 + i)
            return self.base[i]


@dataclass
class ModelState:
    """The student the optimizer changes, the frozen teacher it is measured against, and the optimizer's state."""

    student: ClipClassifier
    teacher: ClipClassifier
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler  # FP16 loss scaling; a no-op unless --precision fp16 on CUDA


@dataclass
class DataState:
    """The training and validation images, and the teacher's logits when they are computed once."""

    resolved: TrainData
    train_set: SeededAugment
    val_set: ImageDataset
    teacher_logits: torch.Tensor | None = None  # [n_train, C], indexed by sample


@dataclass
class LoopCounters:
    """Where the step loop stands; saved in state.pt, so a resumed run continues exactly here."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # micro-batches of `epoch` already consumed
    best_val_top1: float = -1.0
    best_step: int = -1
    skipped: int = 0  # unreadable training images, counted at every read
    val_skipped: int = 0  # unreadable validation images in the latest validation pass


@dataclass
class Session:
    """One training run while it runs."""

    cfg: TrainConfig
    out: Path
    device: torch.device
    total_steps: int
    models: ModelState
    data: DataState
    record: RunRecord  # what run.json will say
    counters: LoopCounters = field(default_factory=LoopCounters)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA by default; CPU runs in fp32 (CPU autocast is slower than it saves here)."""
    if device.type != "cuda" or precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast("cuda", dtype=dtype)


def warmup_cosine(total_steps: int, warmup_fraction: float) -> Callable[[int], float]:
    warmup = max(1, math.ceil(warmup_fraction * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _model_state(cfg: TrainConfig, teacher: ClipClassifier, device: torch.device, total: int) -> ModelState:
    teacher = teacher.to(device).requires_grad_(False)
    student = copy.deepcopy(teacher).requires_grad_(False)
    student.visual.requires_grad_(True)
    params = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.resolved_lr(), betas=cfg.betas, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total, cfg.warmup_fraction))
    # FP16 autocast needs loss scaling (its gradients underflow); bf16 and fp32 do not.
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and cfg.precision == "fp16")
    return ModelState(student, teacher, optimizer, scheduler, scaler)


def build_session(cfg: TrainConfig, out: Path, progress: ProgressHook | None = None) -> Session:
    """Loads data and models and makes the optimizer; nothing is written yet."""
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    resolved = resolve_train_data(cfg.data_source())
    teacher, meta = zero_shot_classifier(
        cfg.model, cfg.pretrained, resolved.classes, resolved.prompts, cfg.templates, progress
    )
    train_set = SeededAugment(
        ImageDataset(resolved.train, train_transform(meta.preprocess, cfg.augment), cfg.strict), cfg.seed
    )
    val_set = ImageDataset(resolved.val, eval_transform(meta.preprocess), cfg.strict)
    steps_per_epoch = math.ceil(math.ceil(len(train_set) / cfg.batch_size) / cfg.accum_steps)
    total = cfg.max_steps or cfg.epochs * steps_per_epoch
    models = _model_state(cfg, teacher, device, total)
    record = RunRecord(
        classifier=meta,
        train_config=cfg.to_dict(),
        data=RunData(cfg.data_source(), n_train=len(resolved.train.samples), n_val=len(resolved.val.samples)),
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        git_commit=git_commit(),
        trainable_params=sum(p.numel() for p in models.student.parameters() if p.requires_grad),
    )
    return Session(cfg, out, device, total, models, DataState(resolved, train_set, val_set), record)


def loader(s: Session, dataset: Dataset, order: list[int] | None) -> DataLoader:
    return make_loader(dataset, s.cfg.batch_size, order, s.cfg.num_workers, pin_memory=s.device.type == "cuda")


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
def validate(s: Session) -> float:
    s.models.student.eval()
    correct = seen = skipped = 0
    for batch in loader(s, s.data.val_set, None):
        skipped += batch.skipped
        if not len(batch.labels):
            continue
        with autocast(s.device, s.cfg.precision):
            pred = s.models.student(batch.images.to(s.device)).argmax(dim=-1).cpu()
        correct += int((pred == batch.labels).sum())
        seen += len(batch.labels)
    s.counters.val_skipped = skipped
    return correct / max(1, seen)


def optimizer_step(s: Session, micro_batches: list[Batch]) -> dict[str, float]:
    """One optimizer step over `micro_batches` (gradient accumulation); returns the averaged loss terms and their
    sum as "loss"."""
    m = s.models
    m.student.train()
    sums: dict[str, float] = {}
    for batch in micro_batches:
        images, labels = batch.images.to(s.device), batch.labels.to(s.device)
        with autocast(s.device, s.cfg.precision):
            student = m.student(images).float()
        terms = compute_loss(s.cfg.loss, student, teacher_logits(s, batch, images), labels)
        terms["loss"] = total_loss(terms)  # "loss" does not end in LOSS_SUFFIX, so it is not summed again
        m.scaler.scale(terms["loss"] / len(micro_batches)).backward()
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach()) / len(micro_batches)
    m.scaler.step(m.optimizer)  # a plain optimizer step unless FP16 loss scaling is on
    m.scaler.update()
    m.optimizer.zero_grad(set_to_none=True)
    m.scheduler.step()
    s.counters.step += 1
    return sums


def save_checkpoint(s: Session, status: str) -> None:
    """Writes last weights and optimizer state, then run.json, each atomically (run.json last: it is the index)."""
    save_weights(s.models.student, s.out / LAST_WEIGHTS, step=s.counters.step)
    m, c = s.models, s.counters
    state = {
        "optimizer": m.optimizer.state_dict(),
        "scheduler": m.scheduler.state_dict(),
        "scaler": m.scaler.state_dict(),
        "position": vars(c),
    }
    tmp = s.out / (STATE_FILE + ".tmp")
    torch.save(state, tmp)
    tmp.replace(s.out / STATE_FILE)
    s.record.status = status
    s.record.progress = RunProgress(step=c.step, total_steps=s.total_steps, epoch=c.epoch)
    s.record.best = BestCheckpoint(step=c.best_step, val_top1=c.best_val_top1)
    s.record.data.skipped_train_reads, s.record.data.skipped_val = c.skipped, c.val_skipped
    write_run_record(s.out, s.record)


def validate_and_keep_best(s: Session, log: MetricsLog) -> None:
    top1 = validate(s)
    c = s.counters
    log.write({"step": c.step, "epoch": c.epoch, "val_top1": top1})
    if top1 > c.best_val_top1:
        c.best_val_top1, c.best_step = top1, c.step
        save_weights(s.models.student, s.out / BEST_WEIGHTS, step=c.step)


def run_epoch(s: Session, log: MetricsLog, stop: Callable[[], bool], on_step: StepCallback | None) -> bool:
    """Trains through the rest of the current epoch; returns whether the epoch's last batch was consumed."""
    c = s.counters
    s.data.train_set.epoch = c.epoch
    order = torch.randperm(len(s.data.train_set), generator=torch.Generator().manual_seed(s.cfg.seed * 7919 + c.epoch))
    start_batch = c.batch_in_epoch
    pending: list[Batch] = []
    tick = time.time()
    batches = loader(s, s.data.train_set, order[start_batch * s.cfg.batch_size :].tolist())
    for i, batch in enumerate(batches, start=start_batch):
        c.skipped += batch.skipped
        if len(batch.labels):
            pending.append(batch)
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


def restore(s: Session, previous: RunRecord) -> None:
    """Loads last weights, optimizer state and position from the run directory for --resume."""
    m = s.models
    m.student.load_state_dict(load_weights(s.out / LAST_WEIGHTS))
    if not (s.out / STATE_FILE).is_file():
        raise CheckpointError(f"cannot resume {s.out}: no {STATE_FILE} (the run never saved its optimizer state)")
    try:
        state = torch.load(s.out / STATE_FILE, weights_only=True)
    except Exception as err:  # truncated or foreign: torch's unpickler raises many kinds (IndexError, EOFError, ...)
        raise CheckpointError(f"cannot resume {s.out}: unreadable {STATE_FILE} ({err})".splitlines()[0]) from err
    m.optimizer.load_state_dict(state["optimizer"])
    m.scheduler.load_state_dict(state["scheduler"])
    if state.get("scaler"):
        m.scaler.load_state_dict(state["scaler"])
    s.counters = LoopCounters(**state["position"])
    # Weights and optimizer state are separate files; a kill between the two writes must not go unnoticed.
    if weights_step(s.out / LAST_WEIGHTS) != s.counters.step:
        raise CheckpointError(
            f"cannot resume {s.out}: {LAST_WEIGHTS} is from step {weights_step(s.out / LAST_WEIGHTS)} but "
            f"{STATE_FILE} from step {s.counters.step} (the run was killed while saving); start a new run"
        )
    s.record.created, s.record.resumed_at_step = previous.created, s.counters.step
    s.record.train_seconds = previous.train_seconds
    s.record.teacher_cache = s.record.teacher_cache or previous.teacher_cache


def prepare(
    cfg: TrainConfig | None = None, out: Path | None = None, resume: bool = False, progress: ProgressHook | None = None
) -> Session:
    """Everything that can fail on bad input, before the first step: the run directory (fresh under runs/ when
    `out` is None; with `resume`, the interrupted run in `out` and its own config), data, models, saved state."""
    if resume:
        if out is None:
            raise OptionError("resuming needs the run directory to continue")
        previous = open_run(out).record
        cfg = config_to_resume(Run(Path(out), previous), cfg)
    else:
        cfg = cfg or TrainConfig()
        out = out or fresh_run_dir(cfg)
        check_unused(out)
    out = Path(out)
    s = build_session(cfg, out, progress)
    out.mkdir(parents=True, exist_ok=True)
    if resume:
        restore(s, previous)
        MetricsLog(out / METRICS_FILE).truncate_after(s.counters.step)  # lines past the checkpoint come again
    return s


def run_training(s: Session, on_step: StepCallback | None = None) -> Run:
    """Trains a prepared session to the end (or Ctrl-C: TrainingInterrupted after saving) and points runs/latest at
    the finished run."""
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
    save_checkpoint(s, "finished")
    point_latest(s.out)
    return Run(s.out, s.record)


def train(
    cfg: TrainConfig | None = None, out: Path | None = None, resume: bool = False, on_step: StepCallback | None = None
) -> Run:
    """Fine-tunes and writes a self-describing run directory (see `prepare` for `out` and `resume`)."""
    return run_training(prepare(cfg, out, resume), on_step)
