"""The fine-tuning loop: a frozen zero-shot teacher, a student image tower, the fixed text classifier.

Data order and augmentation are drawn from (seed, epoch, index), and the optimizer, scheduler and position are
checkpointed at every epoch end and on Ctrl-C, so a resumed run takes exactly the steps an uninterrupted run takes.
"""

from __future__ import annotations

import contextlib
import copy
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from common.checkpoint import (
    BEST_WEIGHTS,
    LAST_WEIGHTS,
    CheckpointError,
    read_run,
    save_weights,
    weights_step,
    zero_shot_classifier,
)
from common.data import Batch, ImageDataset, make_loader
from common.models import ClipClassifier, pick_device
from common.runinfo import atomic_write_json, git_commit
from common.suites import TrainData, resolve_train_data
from common.transforms import eval_transform, train_transform
from train.config import TrainConfig
from train.losses import compute_loss, total_loss
from train.metrics_log import MetricsLog

STATE_FILE = "state.pt"
StepCallback = Callable[[int, dict[str, float]], None]


class TrainingInterrupted(RuntimeError):
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
class Position:
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # micro-batches of `epoch` already consumed
    best_val_top1: float = -1.0
    best_step: int = -1
    skipped: int = 0  # unreadable training images, counted at every read
    val_skipped: int = 0  # unreadable validation images in the latest validation pass


@dataclass
class Session:
    """Everything one training run holds while it runs."""

    cfg: TrainConfig
    out: Path
    data: TrainData
    student: ClipClassifier
    teacher: ClipClassifier
    train_set: SeededAugment
    val_set: ImageDataset
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    device: torch.device
    total_steps: int
    steps_per_epoch: int
    scaler: torch.amp.GradScaler = field(default_factory=lambda: torch.amp.GradScaler("cuda", enabled=False))
    cached_teacher_logits: torch.Tensor | None = None
    pos: Position = field(default_factory=Position)
    run_info: dict[str, Any] = field(default_factory=dict)


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


def build_session(cfg: TrainConfig, out: Path) -> Session:
    """Loads data and models and makes the optimizer; nothing is written yet."""
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    classnames = Path(cfg.classnames) if cfg.classnames else None
    data = resolve_train_data(cfg.data, cfg.val_data, classnames, cfg.val_fraction, cfg.seed)
    teacher, meta = zero_shot_classifier(cfg.model, cfg.pretrained, data.classes, data.prompts, cfg.templates)
    teacher = teacher.to(device).requires_grad_(False)
    student = copy.deepcopy(teacher).requires_grad_(False)
    student.visual.requires_grad_(True)
    train_set = SeededAugment(
        ImageDataset(data.train, train_transform(meta.preprocess, cfg.augment), cfg.strict), cfg.seed
    )
    val_set = ImageDataset(data.val, eval_transform(meta.preprocess), cfg.strict)
    lr = cfg.resolved_lr()
    params = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    batches = math.ceil(len(train_set) / cfg.batch_size)
    steps_per_epoch = math.ceil(batches / cfg.accum_steps)
    total = cfg.max_steps or cfg.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total, cfg.warmup_fraction))
    run_info = {
        "format": "proreg-clip-run/1",
        "status": "running",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "git_commit": git_commit(),
        "classifier": meta.to_dict(),
        "train": cfg.to_dict(),
        "data": {
            "train": cfg.data,
            "val": cfg.val_data,
            "n_train": len(data.train.samples),
            "n_val": len(data.val.samples),
        },
        "trainable_params": sum(p.numel() for p in params),
    }
    # FP16 autocast needs loss scaling (its gradients underflow); bf16 and fp32 do not.
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and cfg.precision == "fp16")
    return Session(
        cfg,
        out,
        data,
        student,
        teacher,
        train_set,
        val_set,
        optimizer,
        scheduler,
        device,
        total,
        steps_per_epoch,
        run_info=run_info,
        scaler=scaler,
    )


def loader(s: Session, dataset: Dataset, order: list[int] | None) -> DataLoader:
    return make_loader(dataset, s.cfg.batch_size, order, s.cfg.num_workers, pin_memory=s.device.type == "cuda")


@torch.no_grad()
def precompute_teacher_logits(s: Session) -> None:
    """Without augmentation every epoch shows the teacher the same images: run it once, index by sample."""
    if s.cfg.augment != "none" or s.cfg.loss.kind == "ce" or not s.cfg.teacher_cache:
        return
    start = time.time()
    plain = ImageDataset(s.data.train, eval_transform(s.run_info["classifier"]["preprocess"]), s.cfg.strict)
    cache = torch.zeros(len(plain), len(s.data.classes))
    for batch in loader(s, plain, None):
        if not len(batch.labels):  # every image of this batch was unreadable (and counted)
            continue
        with autocast(s.device, s.cfg.precision):
            cache[batch.indices] = s.teacher(batch.images.to(s.device)).float().cpu()
    s.cached_teacher_logits = cache
    s.run_info["teacher_cache"] = {"seconds": round(time.time() - start, 2), "images": len(plain)}


def teacher_logits(s: Session, batch: Batch, images: torch.Tensor) -> torch.Tensor | None:
    if s.cfg.loss.kind == "ce":
        return None
    if s.cached_teacher_logits is not None:
        return s.cached_teacher_logits[batch.indices].to(s.device)
    with torch.no_grad(), autocast(s.device, s.cfg.precision):
        return s.teacher(images).float()


@torch.no_grad()
def validate(s: Session) -> float:
    s.student.eval()
    correct = seen = skipped = 0
    for batch in loader(s, s.val_set, None):
        skipped += batch.skipped
        if not len(batch.labels):
            continue
        with autocast(s.device, s.cfg.precision):
            pred = s.student(batch.images.to(s.device)).argmax(dim=-1).cpu()
        correct += int((pred == batch.labels).sum())
        seen += len(batch.labels)
    s.pos.val_skipped = skipped
    return correct / max(1, seen)


def optimizer_step(s: Session, micro_batches: list[Batch]) -> dict[str, float]:
    """One optimizer step over `micro_batches` (gradient accumulation); returns the averaged loss terms."""
    s.student.train()
    sums: dict[str, float] = {}
    for batch in micro_batches:
        images, labels = batch.images.to(s.device), batch.labels.to(s.device)
        with autocast(s.device, s.cfg.precision):
            student = s.student(images).float()
        terms = compute_loss(s.cfg.loss, student, teacher_logits(s, batch, images), labels)
        s.scaler.scale(total_loss(terms) / len(micro_batches)).backward()
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach()) / len(micro_batches)
    sums["loss"] = sum(v for k, v in sums.items() if k.endswith("_loss"))
    s.scaler.step(s.optimizer)  # a plain optimizer step unless FP16 loss scaling is on
    s.scaler.update()
    s.optimizer.zero_grad(set_to_none=True)
    s.scheduler.step()
    s.pos.step += 1
    return sums


def save_checkpoint(s: Session, status: str) -> None:
    """Writes last weights and optimizer state, then run.json, each atomically (run.json last: it is the index)."""
    save_weights(s.student, s.out / LAST_WEIGHTS, step=s.pos.step)
    state = {
        "optimizer": s.optimizer.state_dict(),
        "scheduler": s.scheduler.state_dict(),
        "scaler": s.scaler.state_dict(),
        "position": vars(s.pos),
    }
    tmp = s.out / (STATE_FILE + ".tmp")
    torch.save(state, tmp)
    tmp.replace(s.out / STATE_FILE)
    s.run_info.update(status=status, progress={"step": s.pos.step, "total_steps": s.total_steps, "epoch": s.pos.epoch})
    s.run_info["best"] = {"step": s.pos.best_step, "val_top1": s.pos.best_val_top1}
    s.run_info["data"].update(skipped_train_reads=s.pos.skipped, skipped_val=s.pos.val_skipped)
    atomic_write_json(s.out / "run.json", s.run_info)


def validate_and_keep_best(s: Session, log: MetricsLog) -> None:
    top1 = validate(s)
    log.write({"step": s.pos.step, "epoch": s.pos.epoch, "val_top1": top1})
    if top1 > s.pos.best_val_top1:
        s.pos.best_val_top1, s.pos.best_step = top1, s.pos.step
        save_weights(s.student, s.out / BEST_WEIGHTS, step=s.pos.step)


def run_epoch(s: Session, log: MetricsLog, stop: Callable[[], bool], on_step: StepCallback | None) -> bool:
    """Trains through the rest of the current epoch; returns whether the epoch's last batch was consumed."""
    s.train_set.epoch = s.pos.epoch
    order = torch.randperm(len(s.train_set), generator=torch.Generator().manual_seed(s.cfg.seed * 7919 + s.pos.epoch))
    start_batch = s.pos.batch_in_epoch
    pending: list[Batch] = []
    tick = time.time()
    batches = loader(s, s.train_set, order[start_batch * s.cfg.batch_size :].tolist())
    for i, batch in enumerate(batches, start=start_batch):
        s.pos.skipped += batch.skipped
        if len(batch.labels):
            pending.append(batch)
        last_of_epoch = i == len(batches) + start_batch - 1
        if len(pending) < s.cfg.accum_steps and not last_of_epoch:
            continue
        n_images = sum(len(b.labels) for b in pending)
        terms = optimizer_step(s, pending) if pending else {}
        pending = []
        s.pos.batch_in_epoch = i + 1
        terms.update(lr=float(s.scheduler.get_last_lr()[0]), images_per_s=n_images / max(1e-9, time.time() - tick))
        tick = time.time()
        if s.pos.step % s.cfg.log_every == 0 or s.pos.step == 1:
            log.write({"step": s.pos.step, "epoch": s.pos.epoch, **terms})
        if on_step:
            on_step(s.pos.step, terms)
        if stop() or s.pos.step >= s.total_steps:
            return last_of_epoch
    return True


@contextlib.contextmanager
def ctrl_c_requests_stop():
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


def restore(s: Session) -> None:
    """Loads last weights, optimizer state and position from the run directory for --resume."""
    from safetensors.torch import load_file

    s.student.load_state_dict(load_file(str(s.out / LAST_WEIGHTS)))
    state = torch.load(s.out / STATE_FILE, weights_only=True)
    s.optimizer.load_state_dict(state["optimizer"])
    s.scheduler.load_state_dict(state["scheduler"])
    if state.get("scaler"):
        s.scaler.load_state_dict(state["scaler"])
    s.pos = Position(**state["position"])
    # Weights and optimizer state are separate files; a kill between the two writes must not go unnoticed.
    if weights_step(s.out / LAST_WEIGHTS) != s.pos.step:
        raise CheckpointError(
            f"cannot resume {s.out}: {LAST_WEIGHTS} is from step {weights_step(s.out / LAST_WEIGHTS)} but {STATE_FILE} "
            f"from step {s.pos.step} (the run was killed while saving); start a new run"
        )
    previous = read_run(s.out)
    s.run_info.update(created=previous.get("created"), resumed_at_step=s.pos.step)
    s.run_info["train_seconds"] = previous.get("train_seconds", 0.0)
    if "teacher_cache" in previous:
        s.run_info.setdefault("teacher_cache", previous["teacher_cache"])


def prepare(cfg: TrainConfig, out: Path, resume: bool = False) -> Session:
    """Loads data and models (and, on resume, the saved state): everything that can fail on bad input."""
    out = Path(out)
    s = build_session(cfg, out)
    out.mkdir(parents=True, exist_ok=True)
    if resume:
        restore(s)
        MetricsLog(out / "metrics.jsonl").truncate_after(s.pos.step)  # lines past the checkpoint come again
    return s


def run_training(s: Session, on_step: StepCallback | None = None) -> dict[str, Any]:
    """Trains a prepared session to the end (or Ctrl-C) and returns the run.json content."""
    log = MetricsLog(s.out / "metrics.jsonl")
    precompute_teacher_logits(s)
    start = time.time()
    with ctrl_c_requests_stop() as stop:
        while s.pos.step < s.total_steps:
            finished_epoch = run_epoch(s, log, stop, on_step)
            if stop():
                save_checkpoint(s, "interrupted")
                raise TrainingInterrupted(f"interrupted at step {s.pos.step}/{s.total_steps}")
            if finished_epoch:
                validate_and_keep_best(s, log)
                s.pos.epoch, s.pos.batch_in_epoch = s.pos.epoch + 1, 0
            elif s.pos.step >= s.total_steps:
                validate_and_keep_best(s, log)
            save_checkpoint(s, "running")
    s.run_info["train_seconds"] = round(time.time() - start + s.run_info.get("train_seconds", 0.0), 2)
    save_checkpoint(s, "finished")
    return s.run_info


def train(cfg: TrainConfig, out: Path, resume: bool = False, on_step: StepCallback | None = None) -> dict[str, Any]:
    """Fine-tunes and writes a self-describing run directory; returns its run.json content."""
    return run_training(prepare(cfg, out, resume), on_step)
