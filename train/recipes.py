"""Named training recipes: a method with its settings, optionally followed by WiSE-FT (`NAME+wise` or
`NAME+wiseALPHA`). `cli.py compare` measures them; RECOMMENDED is the one its table chose (README, BENCHMARKS.md),
and what `train` and `pipeline` run by default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from common.errors import OptionError, check_choice

if TYPE_CHECKING:  # torch-heavy; the CLI reads the recipe names at start-up
    from train.config import TrainConfig

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
    "tes": Recipe(
        "TeS: linear vision head (from the text classifier) on a text reference distribution",
        {"kind": "tes"},
        {"head": "linear"},
        knob="tes_lv,tes_lt",
        knob_values=((0.2, 0.4), (0.1, 0.3)),  # the authors' defaults and their CIFAR-100 script
    ),
    "lp-ft": Recipe(
        "LP-FT: fit a trainable text-initialised head with the encoder frozen (half the steps), then fine-tune all",
        {"kind": "ce"},
        {"head": "trainable", "lp_fraction": 0.5},
    ),
}
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
    from train.losses import LossConfig

    recipe = resolve_recipe(name)
    settings = {**recipe.train, "recipe": name, "wise_alpha": recipe.wise_alpha, **train}
    return TrainConfig(loss=LossConfig(**{**recipe.loss, **(loss or {})}), **settings)
