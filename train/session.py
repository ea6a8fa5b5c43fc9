"""What one training run holds while it runs, and how it is built from a TrainConfig (nothing is written here)."""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from common.classifier import ClipClassifier, zero_shot_classifier
from common.distributed import Ranks, current
from common.models import pick_device
from common.progress import ProgressHook
from common.provenance import git_commit
from common.run import Parallelism, RunData, RunRecord
from data.loading import ImageDataset, check_some_readable, make_loader
from data.specs import TrainData, resolve_train_data
from data.transforms import eval_transform, train_transform
from train.config import TrainConfig
from train.methods import METHODS
from train.methods.base import SideContext
from train.methods.flyp import TextTower
from train.run_dirs import RunLock

log = logging.getLogger(__name__)


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


class TrainOutputs(NamedTuple):
    """What one training pass gives the loss."""

    logits: torch.Tensor | None  # the student's; None for FLYP, whose head is rebuilt from the text tower
    projected: torch.Tensor | None  # TeS: the projection of the image features
    contrastive: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None  # FLYP: image and caption features, scale


class TrainForward(nn.Module):
    """The training pass as one module: the student's logits and, for TeS, the projected features; for FLYP the image
    features and the captions' through the text tower. Under torchrun it is what DistributedDataParallel wraps, so
    every parameter the optimizer changes (the text tower's included) is synchronized."""

    def __init__(self, student: ClipClassifier, projection: nn.Module | None, text_tower: TextTower | None = None):
        super().__init__()
        self.student, self.projection, self.text_tower = student, projection, text_tower

    def forward(self, images: torch.Tensor, captions: torch.Tensor | None = None) -> TrainOutputs:
        features = self.student.features(images)
        if self.text_tower is not None:
            if captions is None:
                raise ValueError("FLYP's training pass needs the images' caption tokens")
            caption_features, scale = self.text_tower(captions)
            return TrainOutputs(None, None, (features, caption_features, scale))
        projected = self.projection(features) if self.projection is not None else None
        return TrainOutputs(self.student.head(features), projected, None)


@dataclass
class ModelState:
    """The student the optimizer changes, the frozen teacher it is measured against, and the optimizer's state."""

    student: ClipClassifier
    teacher: ClipClassifier  # the zero-shot model; its head holds the fixed text classifier W
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler  # FP16 loss scaling; a no-op unless --autocast fp16 on CUDA
    forward: nn.Module  # TrainForward, wrapped in DistributedDataParallel under torchrun
    projection: nn.Module | None = None  # a method's "projection" side module (TeS)
    frozen_encoder_steps: int = 0  # LP-FT: the encoder trains only from this step on
    text_tower: TextTower | None = None  # a method's "text_tower" (FLYP): trained, the source of the text head

    @property
    def data_parallel(self) -> nn.parallel.DistributedDataParallel | None:
        return self.forward if isinstance(self.forward, nn.parallel.DistributedDataParallel) else None

    @functools.cached_property
    def syncs_batch_norm(self) -> bool:
        """Whether the training pass holds SyncBatchNorm layers, whose forward is a collective (GPU torchrun runs of
        BatchNorm towers, TeS's projection). Fixed once the session is built."""
        return any(isinstance(module, nn.SyncBatchNorm) for module in self.forward.modules())

    def text_weights(self) -> torch.Tensor:
        return self.teacher.text_head().weight

    def side_modules(self) -> dict[str, nn.Module]:
        """What trains beside the student and is not part of the exported model (TeS's projection, FLYP's text
        tower), by the name its state has in state.pt: one list for the checks, the saves and the restores."""
        named = {"projection": self.projection, "text_tower": self.text_tower}
        return {name: module for name, module in named.items() if module is not None}

    def rebuild_text_head(self, prompts: list[str], templates: list[str]) -> None:
        """FLYP: the student's fixed text head becomes the one the tuned text tower gives (before each validation
        and each save of the best weights: it takes no part in the training loss)."""
        if self.text_tower is None:
            return
        weight, scale = self.text_tower.classifier(prompts, templates)
        head = self.student.text_head()
        head.weight.copy_(weight)
        head.logit_scale.fill_(scale)


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
    ranks: Ranks = field(default_factory=Ranks)  # this process's place under torchrun; rank 0 alone writes
    counters: LoopCounters = field(default_factory=LoopCounters)
    lock: RunLock | None = None  # once the run directory is claimed
    made_out: bool = False  # whether this process made the run directory (removed again if nothing was saved)
    saved_step: int | None = None  # the step of the checkpoint on disk (saved or restored), if any


def autocast(device: torch.device, mode: str) -> contextlib.AbstractContextManager:
    """Autocast to training_dtype(device, mode), or nothing for FP32."""
    dtype = training_dtype(device, mode)
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def training_dtype(device: torch.device, mode: str) -> torch.dtype | None:
    """The autocast dtype of training (None: FP32) for the --autocast `mode` on `device`."""
    capability = torch.cuda.get_device_capability(device) if device.type == "cuda" else None
    return autocast_dtype(mode, capability)


def autocast_dtype(mode: str, capability: tuple[int, int] | None) -> torch.dtype | None:
    """`auto` on a GPU of compute `capability` is bf16 from Ampere (8.0) on and fp16 before it, where torch emulates
    bf16 slowly (fp16 gets loss scaling); on the CPU (`capability` None) FP32 unless bf16 is asked for (a CPU with
    AVX-512 BF16 or AMX gains from it; others emulate it: BENCHMARKS.md has the ratio); fp16 is CUDA's only."""
    if mode == "fp32" or (capability is None and mode != "bf16"):
        return None
    if mode == "auto":
        return torch.bfloat16 if capability is not None and capability >= (8, 0) else torch.float16
    return torch.float16 if mode == "fp16" else torch.bfloat16


def _warmup_length(total_steps: int, warmup_fraction: float, warmup_steps: int | None) -> int:
    return max(1, warmup_steps if warmup_steps is not None else math.ceil(warmup_fraction * total_steps))


def warmup_cosine(total_steps: int, warmup_fraction: float, warmup_steps: int | None = None) -> Callable[[int], float]:
    """Linear warmup (`warmup_steps`, else that share of the steps), then cosine decay to 0."""
    warmup = _warmup_length(total_steps, warmup_fraction, warmup_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def warmup_linear(total_steps: int, warmup_fraction: float, warmup_steps: int | None = None) -> Callable[[int], float]:
    """Linear warmup, then linear decay to 0: ProReg's released code (ViLT's polynomial decay, power 1, end 0)."""
    warmup = _warmup_length(total_steps, warmup_fraction, warmup_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, 1 - (step - warmup) / max(1, total_steps - warmup))

    return factor


SCHEDULES = {"cosine": warmup_cosine, "linear": warmup_linear}  # by train.config.DECAYS name


def lp_ft_schedule(
    total: int,
    frozen: int,
    warmup_fraction: float,
    encoder: bool,
    decay: str = "cosine",
    warmup_steps: int | None = None,
) -> Callable[[int], float]:
    """LP-FT's learning-rate factors: the encoder's is 0 for the `frozen` linear-probing steps, then warms up and
    decays over the rest; the head's warms up and decays over the probing steps, then again over the rest. With
    nothing frozen both are one warmup and decay over `total`."""
    schedule = SCHEDULES[decay]
    probe = schedule(max(1, frozen), warmup_fraction, warmup_steps)
    tune = schedule(total - frozen, warmup_fraction, warmup_steps)

    def factor(step: int) -> float:
        if step >= frozen:
            return tune(step - frozen)
        return 0.0 if encoder else probe(step)

    return factor


def epoch_steps(cfg: TrainConfig, n_train: int, world: int) -> tuple[int, int]:
    """An epoch's global micro-batches and optimizer steps (the last step may take fewer micro-batches)."""
    micro_batches = math.ceil(n_train / (cfg.batch_size * world))
    return micro_batches, math.ceil(micro_batches / cfg.accum_steps)


def _student(cfg: TrainConfig, teacher: ClipClassifier) -> ClipClassifier:
    """The model to fine-tune: a copy of the zero-shot tower with the configured head, started from W."""
    text = teacher.text_head()
    student = ClipClassifier(
        copy.deepcopy(teacher.visual), text.weight, float(text.logit_scale), cfg.head or "text", cfg.head_init
    )
    return student.to(text.weight.device).requires_grad_(True)  # a fixed text head's tensors are buffers


def _model_state(
    cfg: TrainConfig, teacher: ClipClassifier, device: torch.device, total: int, ranks: Ranks | None = None
) -> ModelState:
    teacher = teacher.to(device).requires_grad_(False)
    student = _student(cfg, teacher)
    method = METHODS[cfg.loss.kind]
    context = SideContext(cfg.model, cfg.pretrained, int(teacher.text_head().weight.shape[1]))
    side = {name: module.build(context).to(device) for name, module in method.side_modules.items()}
    groups = _parameter_groups(cfg, student, side)
    optimizer = torch.optim.AdamW(groups, lr=cfg.resolved_lr(), betas=cfg.betas, weight_decay=cfg.weight_decay)
    frozen = min(total - 1, math.floor(cfg.lp_fraction * total))  # at least one step fine-tunes everything
    factors = [
        lp_ft_schedule(total, frozen, cfg.warmup_fraction, i == 0, cfg.decay, cfg.warmup_steps)
        for i in range(len(groups))
    ]
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factors)
    # FP16 autocast needs loss scaling (its gradients underflow); bf16 and fp32 do not.
    scaler = torch.amp.GradScaler("cuda", enabled=training_dtype(device, cfg.autocast) == torch.float16)
    projection, text_tower = side.get("projection"), side.get("text_tower")
    if text_tower is not None and not isinstance(text_tower, TextTower):  # the trainer tokenizes captions with it
        raise TypeError(f"a method's text_tower side module must be a TextTower, not {type(text_tower).__name__}")
    forward: nn.Module = TrainForward(student, projection, text_tower)
    ranks = ranks or Ranks()
    if ranks.distributed:
        forward = _data_parallel(forward, device, find_unused=frozen > 0, warn=ranks.is_main)
    return ModelState(student, teacher, optimizer, scheduler, scaler, forward, projection, frozen, text_tower)


def _parameter_groups(cfg: TrainConfig, student: ClipClassifier, side: dict[str, nn.Module]) -> list[dict]:
    """The encoder's group (with the side modules a method trains at its rate: FLYP's text tower and CLIP's logit
    scale, as the authors train every CLIP parameter with one AdamW) and, when there is one, the head's (a trainable
    head, and the side modules at the head's rate: TeS's projection) at its multiple."""
    lr = cfg.resolved_lr()
    rate = {name: module.group for name, module in METHODS[cfg.loss.kind].side_modules.items()}
    encoder = list(student.visual.parameters())
    encoder += [p for name, module in side.items() if rate[name] == "encoder" for p in module.parameters()]
    head = list(student.head.parameters())
    head += [p for name, module in side.items() if rate[name] == "head" for p in module.parameters()]
    groups = [{"params": encoder, "lr": lr, "lr_scale": 1.0}]
    if head:
        scale = cfg.resolved_head_lr_scale()
        groups.append({"params": head, "lr": lr * scale, "lr_scale": scale})
    return groups


def _data_parallel(forward: nn.Module, device: torch.device, find_unused: bool, warn: bool) -> nn.Module:
    """DDP around the training pass. BatchNorm (ResNet towers, TeS's projection) normalizes over the global batch
    on GPUs (SyncBatchNorm, which keeps the same parameters, so the optimizer is unchanged); SyncBatchNorm needs
    CUDA, so on CPUs each process normalizes over its own share and results differ slightly from one process.
    LP-FT's frozen steps leave the encoder without gradients: DDP must be told (`find_unused`)."""
    if device.type == "cuda":
        forward = nn.SyncBatchNorm.convert_sync_batchnorm(forward)
    elif warn and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in forward.modules()):
        log.warning(
            "BatchNorm layers normalize over each process's share of the batch on CPUs (SyncBatchNorm needs CUDA): "
            "losses differ slightly from one process with the same global batch"
        )
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(forward, device_ids=ids, find_unused_parameters=find_unused)


def build_session(cfg: TrainConfig, out: Path, progress: ProgressHook | None = None) -> Session:
    """Loads data and models and makes the optimizer; nothing is written yet. Under torchrun every rank builds the
    same session (the same seed, data split and starting weights) and trains on its share of each global batch."""
    torch.manual_seed(cfg.seed)
    ranks = current()
    device = pick_device(cfg.device)  # under torchrun, the GPU of this rank's LOCAL_RANK
    resolved = resolve_train_data(cfg.data_source())
    teacher, meta = zero_shot_classifier(
        cfg.model, cfg.pretrained, resolved.classes, resolved.prompts, cfg.templates, progress, device
    )
    meta.head = cfg.head or meta.head
    train_set = SeededAugment(
        ImageDataset(resolved.train, train_transform(meta.preprocess, cfg.augment), cfg.strict), cfg.seed
    )
    val_set = ImageDataset(resolved.val, eval_transform(meta.preprocess), cfg.strict)
    parallel = Parallelism(ranks.world, cfg.batch_size, cfg.accum_steps, cfg.batch_size * ranks.world * cfg.accum_steps)
    _, steps_per_epoch = epoch_steps(cfg, len(train_set), ranks.world)
    total = cfg.max_steps or cfg.epochs * steps_per_epoch
    models = _model_state(cfg, teacher, device, total, ranks)
    record = RunRecord(
        classifier=meta,
        train_config=cfg.to_dict(),
        data=RunData(cfg.data_source(), n_train=len(resolved.train.samples), n_val=len(resolved.val.samples)),
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        git_commit=git_commit(),
        trainable_params=sum(p.numel() for p in models.student.parameters() if p.requires_grad),
        parallel=parallel,
    )
    for data in (resolved.train, resolved.val):
        check_some_readable(data)
    return Session(cfg, out, device, total, models, DataState(resolved, train_set, val_set), record, ranks)


def trained_parameters(s: Session) -> list[nn.Parameter]:
    """Everything the optimizer changes: the student's parameters, TeS's projection's and FLYP's text tower's."""
    extra = list(s.models.projection.parameters()) if s.models.projection else []
    extra += list(s.models.text_tower.parameters()) if s.models.text_tower else []
    return list(s.models.student.parameters()) + extra


def loader(s: Session, dataset: Dataset, batches: list[list[int]]) -> DataLoader:
    return make_loader(
        dataset, s.cfg.batch_size, None, s.cfg.num_workers, pin_memory=s.device.type == "cuda", batches=batches
    )


def rank_batches(s: Session, order: list[int], start: int = 0) -> list[list[int]]:
    """This rank's micro-batches over `order`, from global micro-batch `start` on: global micro-batch i is
    order[i*G:(i+1)*G] with G = batch size x processes, and this rank takes its interleaved share of it (which may
    be empty at the end). With one process these are plain consecutive batches."""
    size = s.cfg.batch_size * s.ranks.world
    return [s.ranks.shard(order[i : i + size]) for i in range(start * size, len(order), size)]
