"""The training configuration: every default in one place, saved resolved into run.json."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common.artifact import HEAD_INITS, check_templates
from common.builtin import BUILTIN
from common.errors import CheckpointError, OptionError, check_choice, check_number
from common.run import DataSource
from common.typed_json import from_json
from data.suites.registry import parse_suite_spec, prompt_templates
from data.transforms import AUGMENTATIONS
from train.losses import LossConfig
from train.methods import METHODS

# The ProReg recipe's encoder learning rate, tuned for CLIPs pretrained on hundreds of millions of pairs.
PAPER_LR = 1e-5
# The built-in model is tiny and was pretrained in minutes at 2e-3; 1e-5 would barely move it in a short run.
RECOMMENDED_LR = {BUILTIN: 3e-4}
# ProReg's released code trains the head at 100x the encoder's rate, 1e-3 with the paper's encoder rate.
HEAD_LR_SCALE = 100.0
# Seeds are mixed into per-epoch and per-image seeds (seed * 1_000_003 + ...), which must stay within torch's 64 bits.
MAX_SEED = 2**32 - 1
AUTOCASTS = ("auto", "fp32", "bf16", "fp16")  # training autocast: see train.session.autocast_dtype
# The learning rate's decay after warmup: cosine (the ProReg paper, WiSE-FT), or linear to 0 (ProReg's released code:
# ViLT's polynomial decay of power 1).
DECAYS = ("cosine", "linear")


# The command-line option of a TrainConfig field, for messages: what the user typed, not the Python name.
OPTION_OF_FIELD = {"num_workers": "--workers"}


def option(field_name: str) -> str:
    return OPTION_OF_FIELD.get(field_name, "--" + field_name.replace("_", "-"))


@dataclass
class TrainConfig:
    model: str = BUILTIN
    pretrained: str | None = None
    data: str = BUILTIN
    val_data: str | None = None
    classnames: str | None = None
    # Prompt templates; [] (the default): the data suite's own (ImageNet's 80), else DEFAULT_TEMPLATES. run.json
    # records the ones resolved.
    templates: list[str] = field(default_factory=list)
    loss: LossConfig = field(default_factory=LossConfig)
    head: str | None = None  # common.artifact.HEAD_KINDS; None: the loss's first (text, or linear for tes)
    head_init: str = "text"  # a linear head's start: the text classifier or random
    # A trainable head's (and TeS's projection's) learning rate over the encoder's; None: what puts the head at the
    # paper's 1e-3 (HEAD_LR_SCALE x PAPER_LR), which is x100 at the paper's encoder rate.
    head_lr_scale: float | None = None
    # LP-FT: the first share of the steps fits the head alone (encoder frozen), the rest fine-tunes everything,
    # each phase with its own warmup and decay. 0: plain fine-tuning.
    lp_fraction: float = 0.0
    # WiSE-FT applied when training ends: the run's model becomes (1 - a) zero-shot + a fine-tuned.
    wise_alpha: float | None = None
    recipe: str | None = None  # the train.recipes name these settings came from, for the record
    epochs: int = 10
    max_steps: int | None = None  # optimizer steps; overrides epochs when given
    batch_size: int = 64
    accum_steps: int = 1
    lr: float | None = None  # None: the model's recommended rate, else PAPER_LR
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_fraction: float = 0.1
    warmup_steps: int | None = None  # warmup in optimizer steps (WiSE-FT's 500), instead of warmup_fraction
    decay: str = "cosine"  # DECAYS
    augment: str = "none"
    # Without augmentation the teacher sees the same images every epoch: run it once and keep its logits (N x C
    # floats; 5 GB for ImageNet-1k, so it can be turned off).
    teacher_cache: bool = True
    seed: int = 0
    val_fraction: float = 0.1
    num_workers: int = 0
    device: str = "auto"  # auto: cuda when present
    autocast: str = "auto"  # auto: bf16 autocast on Ampere+ GPUs, fp16 before them, fp32 on CPU
    strict: bool = False
    log_every: int = 10
    # Validations per epoch, each one a checkpoint and a chance at the best weights: 2 validates every half epoch
    # (ProReg's released configs), 1 at epoch ends only.
    val_per_epoch: int = 1

    def __post_init__(self) -> None:
        """Every training option is checked here, once, before anything is loaded or written; paths to data are made
        absolute, so the run can be resumed and exported from any working directory."""
        self.data = _absolute(self.data) or self.data
        self.val_data, self.classnames = _absolute(self.val_data), _absolute(self.classnames)
        for name in ("epochs", "batch_size", "accum_steps", "log_every", "val_per_epoch"):
            check_number(option(name), getattr(self, name), 1)
        if self.max_steps is not None:
            check_number(option("max_steps"), self.max_steps, 1)
        check_number(option("num_workers"), self.num_workers, 0)
        check_number(option("seed"), self.seed, 0, MAX_SEED)
        if self.lr is not None:
            check_number(option("lr"), self.lr, 0, above=True)
        check_number(option("weight_decay"), self.weight_decay, 0)
        check_number(option("warmup_fraction"), self.warmup_fraction, 0, 1)
        if self.warmup_steps is not None:
            check_number(option("warmup_steps"), self.warmup_steps, 0)
        check_choice("learning-rate decay", self.decay, DECAYS)
        check_number("val_fraction", self.val_fraction, 0, 1, above=True)
        check_choice("autocast", self.autocast, AUTOCASTS)
        check_choice("augmentation", self.augment, AUGMENTATIONS)
        if not self.templates:
            self.templates = prompt_templates(parse_suite_spec(self.data))
        check_templates(self.templates)
        self._check_head()

    def _check_head(self) -> None:
        method = METHODS[self.loss.kind]
        self.head = self.head or method.heads[0]
        check_choice("head", self.head, dict.fromkeys(h for m in METHODS.values() for h in m.heads))
        if self.head not in method.heads:
            heads = " or ".join(method.heads)
            raise OptionError(
                f"head {self.head!r} does not go with loss {self.loss.kind!r}, which trains a {heads} head"
            )
        check_choice("head init", self.head_init, HEAD_INITS)
        if self.head_init != "text" and self.head != "linear":
            raise OptionError(
                f"--head-init {self.head_init}: only a linear head can start anywhere but the text classifier"
            )
        if self.head_lr_scale is not None:
            check_number(option("head_lr_scale"), self.head_lr_scale, 0, above=True)
        check_number(option("lp_fraction"), self.lp_fraction, 0, 1)
        if self.wise_alpha is not None:
            check_number("WiSE-FT alpha", self.wise_alpha, 0, 1)
            if self.head == "linear" and self.head_init != "text":
                raise OptionError("WiSE-FT interpolates towards the zero-shot head: a random linear head has none")
        if self.lp_fraction >= 1 or (self.lp_fraction > 0 and self.head == "text"):
            raise OptionError(
                f"--lp-fraction {self.lp_fraction}: LP-FT fits a trainable head first, then fine-tunes: it needs "
                "--head trainable or linear and a fraction below 1"
            )

    def resolved_lr(self) -> float:
        return self.lr if self.lr is not None else RECOMMENDED_LR.get(self.model, PAPER_LR)

    def resolved_head_lr_scale(self) -> float:
        """The head's rate over the encoder's; by default what puts the head at the paper's 100 x 1e-5 = 1e-3,
        whatever encoder rate the model's default or --lr gives."""
        if self.head_lr_scale is not None:
            return self.head_lr_scale
        return HEAD_LR_SCALE * PAPER_LR / self.resolved_lr()

    def data_source(self) -> DataSource:
        return DataSource(self.data, self.val_data, self.classnames, self.val_fraction, self.seed)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["lr"] = self.resolved_lr()
        out["head_lr_scale"] = self.resolved_head_lr_scale()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "training config") -> TrainConfig:
        """The config saved in run.json, every field's type checked (a damaged one is a CheckpointError)."""
        if isinstance(data, dict) and "loss" in data:
            data = {**data, "loss": LossConfig.from_record(data["loss"])}
        if isinstance(data, dict) and "precision" in data and "autocast" not in data:  # its name before 2026-12-07
            data = {**{k: v for k, v in data.items() if k != "precision"}, "autocast": data["precision"]}
        try:
            return from_json(cls, data, where, CheckpointError)
        except OptionError as err:  # a value out of its range: the file was written by something else, or damaged
            raise CheckpointError(f"{where}: {err}") from err


def _absolute(spec: str | None) -> str | None:
    """A path that exists, or a suite spec's root that exists, made absolute; anything else (builtin, a missing path)
    as given."""
    suite = parse_suite_spec(spec) if spec else None
    if suite and not suite.suite.info.generated and suite.root.exists():
        return f"{spec.partition(':')[0]}:{suite.root.resolve()}"  # type: ignore[union-attr]
    return str(Path(spec).resolve()) if spec and not suite and Path(spec).exists() else spec
