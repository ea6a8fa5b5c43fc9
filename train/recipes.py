"""Named training recipes: a method with its settings, optionally followed by WiSE-FT (`NAME+wise` or
`NAME+wiseALPHA`). `cli.py compare` measures the method recipes (COMPARED); RECOMMENDED is the one its table chose
(README, BENCHMARKS.md), and what `train` and `pipeline` run by default.

The others are the papers' own settings, each from the authors' released code or configs:
- proreg-bar, proreg-nico-animal, proreg-nico-vehicle, proreg-pacs, proreg-domainnet: ProReg (Zhu et al., AAAI
  2023; github.com/BeierZhu/ProReg, config/<dataset>/prompt_xERM.yaml and vilt/config.py task_finetune_*): the
  per-dataset alpha (and gamma) of those configs; AdamW betas (0.9, 0.98), weight decay 0.01, encoder lr 1e-5 and the
  text-initialised head (text_features, logit_scale) at x100, 10% warmup then linear decay to 0 (ViLT's polynomial
  decay of power 1), 10 epochs, RandAugment(2, 9), batch 256, validation every half epoch and the best checkpoint.
  The live `xERM` of that code is the `official` weight, p_t^10 / (p_s + p_t^10), which does not read gamma (the
  paper's CE^gamma form is commented out there); the configs' gamma is kept here for the record.
- tes, tes-cifar100: TeS (Qian et al., arXiv 2304.01489; github.com/idstcv/TeS): run.py's defaults (lambda_v 0.2,
  lambda_t 0.4, tau 0.03) and run_TeS.sh for CIFAR-100 (0.1, 0.3, 0.03). Only the method's settings carry over:
  its SGD schedule is for a MoCo ResNet-50.
- ce-imagenet: WiSE-FT's end-to-end ImageNet fine-tuning (Wortsman et al., CVPR 2022, appendix; the
  github.com/mlfoundations/wise-ft README's command): cross-entropy through a linear head started from the zero-shot
  classifier and trained at the encoder's rate, AdamW (torch's default betas), lr 3e-5, weight decay 0.1, batch 512,
  10 epochs, 500 warmup steps then cosine. `ce-imagenet+wise` is WiSE-FT at its alpha 0.5.
- flyp-imagenet: FLYP (Goyal et al., CVPR 2023; github.com/locuslab/FLYP, README's ImageNet command and src/args.py):
  one AdamW (torch's default betas) over both towers and CLIP's logit scale, lr 1e-5, weight decay 0.1, batch 512,
  10 epochs, 500 warmup steps then cosine to 0. Each image's caption is drawn from the run's templates (their
  CSVs pair each image with every one of the 80 ImageNet templates); give those with --template.
A recipe made for one data suite names it (`suite`); it trains on any other data all the same, and run.json records
the recipe's name with every setting it resolved to.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from common.errors import OptionError, check_choice

if TYPE_CHECKING:  # torch-heavy; the CLI reads the recipe names at start-up
    from train.config import TrainConfig

log = logging.getLogger(__name__)

WISE_SUFFIX = "+wise"
DEFAULT_WISE_ALPHA = 0.5  # WiSE-FT's own default (Wortsman et al.) when a recipe names no alpha


@dataclass(frozen=True)
class Recipe:
    description: str
    loss: dict[str, Any] = field(default_factory=dict)  # train.losses.LossConfig fields
    train: dict[str, Any] = field(default_factory=dict)  # train.config.TrainConfig fields
    # The main knob `compare` sweeps on validation data: a field of `loss` and the values tried.
    knob: str | None = None
    knob_values: tuple[Any, ...] = ()
    wise_alpha: float | None = None
    suite: str | None = None  # the data suite (SUITE or SUITE/VARIANT) the settings were made for, if any


# ProReg's released configs (vilt/config.py task_finetune_*), shared by every dataset. Batch 256 as 32 images x 8
# accumulated micro-batches, which fit a ViT-B on a single GPU or on a CPU; give --batch-size/--accum-steps to change
# the split (under torchrun the global batch is batch x processes x accumulation).
PROREG_RELEASED = {
    "head": "trainable",
    "lr": 1e-5,
    "head_lr_scale": 100.0,  # lr_mult 1e2 on text_features and logit_scale
    "betas": (0.9, 0.98),
    "weight_decay": 0.01,
    "warmup_fraction": 0.1,
    "decay": "linear",
    "epochs": 10,
    "augment": "randaugment",  # RandAugment(2, 9) before CLIP's preprocessing
    "batch_size": 32,
    "accum_steps": 8,
    "val_per_epoch": 2,  # val_check_interval 0.5, the best val/the_metric checkpoint kept
}


def _proreg(dataset: str, suite: str, alpha: float, gamma: float) -> Recipe:
    return Recipe(
        f"ProReg's released {dataset} config: official weight, alpha {alpha:g}, trainable head, its training settings",
        {"kind": "proreg", "weight_form": "official", "alpha": alpha, "gamma": gamma, "temperature": 1.0},
        dict(PROREG_RELEASED),
        suite=suite,
    )


def _tes(description: str, lv: float, lt: float, tau: float, knob: bool = False, suite: str | None = None) -> Recipe:
    return Recipe(
        description,
        {"kind": "tes", "tes_lv": lv, "tes_lt": lt, "tes_tau": tau},
        {"head": "linear"},
        knob="tes_lv,tes_lt" if knob else None,
        knob_values=((0.2, 0.4), (0.1, 0.3)) if knob else (),  # the authors' defaults and their CIFAR-100 script
        suite=suite,
    )


RECIPES = {
    "ce": Recipe("conventional fine-tuning, fixed text head", {"kind": "ce"}),
    "kd": Recipe(
        "CE + KL to the zero-shot model, fixed trade-off", {"kind": "kd"}, knob="kd_alpha", knob_values=(0.5, 0.75)
    ),
    "proreg": Recipe(
        "ProReg as in the paper: xerm weight, fixed text head",
        {"kind": "proreg"},
        knob="alpha",
        knob_values=(1.0, 2.0),
    ),
    "proreg-official": Recipe(
        "ProReg as its authors' code trains it: their weight form and a trainable text-initialised head (lr x100)",
        {"kind": "proreg", "weight_form": "official", "alpha": 2.0},  # alpha chosen on validation (BENCHMARKS.md)
        {"head": "trainable"},
        knob="alpha",
        knob_values=(1.0, 2.0),
    ),
    "tes": _tes(
        "TeS: linear vision head (from the text classifier) on a text reference distribution; authors' defaults",
        0.2,
        0.4,
        0.03,
        knob=True,
    ),
    "lp-ft": Recipe(
        "LP-FT: fit a trainable text-initialised head with the encoder frozen (half the steps), then fine-tune all",
        {"kind": "ce"},
        {"head": "trainable", "lp_fraction": 0.5},
    ),
    # The method alone, with this project's training settings like the recipes above (the authors' own settings
    # are flyp-imagenet's).
    "flyp": Recipe(
        "FLYP: contrastive loss between images and their class prompts, both towers trained, the text head rebuilt "
        "from the tuned text tower",
        {"kind": "flyp"},
    ),
    # The papers' settings (module docstring).
    "proreg-bar": _proreg("BAR", "bar", 1.0, 2.0),
    "proreg-nico-animal": _proreg("NICO-animal", "nico/animal", 2.0, 1.0),
    "proreg-nico-vehicle": _proreg("NICO-vehicle", "nico/vehicle", 1.5, 0.5),
    "proreg-pacs": _proreg("PACS", "pacs", 2.0, 1.0),
    "proreg-domainnet": _proreg("DomainNet", "domainnet", 2.0, 1.0),
    "tes-cifar100": _tes("TeS with its authors' CIFAR-100 script's settings", 0.1, 0.3, 0.03, suite="cifar100"),
    "ce-imagenet": Recipe(
        "WiSE-FT's end-to-end ImageNet fine-tuning: CE, zero-shot-initialised linear head, its optimizer settings",
        {"kind": "ce"},
        {
            "head": "linear",
            "head_init": "text",
            "head_lr_scale": 1.0,  # one AdamW over every parameter
            "lr": 3e-5,
            "betas": (0.9, 0.999),
            "weight_decay": 0.1,
            "warmup_steps": 500,
            "decay": "cosine",
            "epochs": 10,
            "batch_size": 64,
            "accum_steps": 8,  # batch 512
        },
        suite="imagenet",
    ),
    "flyp-imagenet": Recipe(
        "FLYP's ImageNet command: its optimizer settings (one AdamW over both towers and the logit scale)",
        {"kind": "flyp"},
        {
            "lr": 1e-5,
            "betas": (0.9, 0.999),  # torch's default: the authors' AdamW names none
            "weight_decay": 0.1,
            "warmup_steps": 500,
            "decay": "cosine",
            "epochs": 10,
            "batch_size": 512,  # the contrastive loss's negatives are one micro-batch's captions: do not split it
        },
        suite="imagenet",
    ),
}
# The method recipes `compare` trains by default; the papers' settings are trained when named.
COMPARED = ("ce", "kd", "proreg", "proreg-official", "tes", "lp-ft")
# Chosen from `compare`'s table (BENCHMARKS.md, README): the best mean OOD top-1 among the recipes whose ID top-1 is
# within 0.5 pp of the best fine-tuned ID top-1.
RECOMMENDED = "proreg-official+wise"


def recipe_names() -> list[str]:
    return [*RECIPES, *(name + WISE_SUFFIX for name in RECIPES)]


def resolve_recipe(name: str) -> Recipe:
    """A recipe by name: a key of RECIPES, optionally with +wise (alpha DEFAULT_WISE_ALPHA) or +wiseALPHA."""
    match = re.fullmatch(r"(.+?)(\+wise(.*))?", name)
    base = match.group(1) if match else name
    check_choice("recipe", base, RECIPES)
    recipe = RECIPES[base]
    if match and match.group(2):
        if not re.fullmatch(r"([0-9]+(\.[0-9]*)?|\.[0-9]+)?", match.group(3)):  # a plain decimal, or none
            raise OptionError(f"recipe {name!r}: +wise takes an alpha in [0, 1], e.g. {base}+wise0.5")
        alpha = float(match.group(3)) if match.group(3) else DEFAULT_WISE_ALPHA
        if not 0 <= alpha <= 1:
            raise OptionError(f"recipe {name!r}: the WiSE-FT alpha must lie in [0, 1], got {alpha:g}")
        recipe = replace(recipe, wise_alpha=alpha)
    return recipe


def knob_settings(recipe: Recipe, value: Any) -> dict[str, Any]:
    """The loss fields that set the recipe's knob to `value` (a tuple when the knob names several fields)."""
    if recipe.knob is None:
        return {}
    names = recipe.knob.split(",")
    values = value if isinstance(value, tuple) else (value,)
    return dict(zip(names, values, strict=True))


def recipe_config(name: str, loss: dict[str, Any] | None = None, **train: Any) -> TrainConfig:
    """The TrainConfig of recipe `name`, with `loss` and `train` fields set on top (options the user typed)."""
    from train.config import TrainConfig
    from train.losses import loss_config

    recipe = resolve_recipe(name)
    settings = {**recipe.train, "recipe": name, "wise_alpha": recipe.wise_alpha, **train}
    loss = loss or {}
    # Another method named over the recipe's takes its own settings, not the recipe's method's.
    base = recipe.loss if loss.get("kind", recipe.loss.get("kind")) == recipe.loss.get("kind") else {}
    cfg = TrainConfig(loss=loss_config(**{**base, **loss}), **settings)
    if recipe.suite and not made_for(recipe.suite, cfg.data):
        log.warning("recipe %r was made for %s data; training on %s with its settings", name, recipe.suite, cfg.data)
    return cfg


def made_for(suite: str, data: str) -> bool:
    """Whether the data spec `data` (SUITE[/VARIANT]:ROOT, a path, builtin) reads `suite` (SUITE, or SUITE/VARIANT
    when the settings were made for one variant)."""
    from data.labeled import DataError
    from data.suites.registry import parse_suite_spec  # reads the suites: not at the CLI's start-up

    try:
        spec = parse_suite_spec(data)
    except DataError:  # a mistyped suite: reading the data says so
        return False
    wanted, _, wanted_variant = suite.partition("/")
    if spec is None or spec.suite.info.name != wanted:
        return False
    return not wanted_variant or (spec.variant or spec.suite.info.default_variant) == wanted_variant
