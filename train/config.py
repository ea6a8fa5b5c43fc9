"""The training configuration: every default in one place, saved resolved into run.json."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from common.artifact import DEFAULT_TEMPLATES
from common.run import DataSource
from common.world import BUILTIN
from train.losses import LossConfig

# The ProReg recipe's encoder learning rate, tuned for CLIPs pretrained on hundreds of millions of pairs.
PAPER_LR = 1e-5
# The built-in model is tiny and was pretrained in minutes at 2e-3; 1e-5 would barely move it in a short run.
RECOMMENDED_LR = {BUILTIN: 3e-4}


@dataclass
class TrainConfig:
    model: str = BUILTIN
    pretrained: str | None = None
    data: str = BUILTIN
    val_data: str | None = None
    classnames: str | None = None
    templates: list[str] = field(default_factory=lambda: list(DEFAULT_TEMPLATES))
    loss: LossConfig = field(default_factory=LossConfig)
    epochs: int = 10
    max_steps: int | None = None  # optimizer steps; overrides epochs when given
    batch_size: int = 64
    accum_steps: int = 1
    lr: float | None = None  # None: the model's recommended rate, else PAPER_LR
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_fraction: float = 0.1
    augment: str = "none"
    # Without augmentation the teacher sees the same images every epoch: run it once and keep its logits (N x C
    # floats; 5 GB for ImageNet-1k, so it can be turned off).
    teacher_cache: bool = True
    seed: int = 0
    val_fraction: float = 0.1
    num_workers: int = 0
    device: str = "auto"  # auto: cuda when present
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    strict: bool = False
    log_every: int = 10

    def resolved_lr(self) -> float:
        return self.lr if self.lr is not None else RECOMMENDED_LR.get(self.model, PAPER_LR)

    def data_source(self) -> DataSource:
        return DataSource(self.data, self.val_data, self.classnames, self.val_fraction, self.seed)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["lr"] = self.resolved_lr()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["loss"] = LossConfig(**data.get("loss", {}))
        kwargs["betas"] = tuple(data.get("betas", (0.9, 0.98)))
        return cls(**kwargs)
