"""The training config that what a user typed describes: a recipe (named, else the recommended one when no method
option was typed) with the options typed over it, or a method with its settings. The `train` command passes its
parsed options here; recipes resolve here, not in the CLI."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from common.errors import UserError
from common.files import read_text_file
from train.config import TrainConfig
from train.losses import LossConfig
from train.methods import METHODS
from train.recipes import RECOMMENDED, recipe_config, resolve_recipe

# Options that choose a method rather than a recipe: typed (or a method's own option typed), no recipe is implied.
METHOD_OPTIONS = ("loss", "head", "head_init", "head_lr_scale", "lp_fraction")
# train's options that are TrainConfig fields of the same name.
SAME_NAME = (
    *("model", "pretrained", "data", "val_data", "epochs", "max_steps", "batch_size", "accum_steps", "lr", "augment"),
    *("teacher_cache", "seed", "device", "autocast", "strict", "log_every", "val_per_epoch", "weight_decay"),
    *("warmup_fraction", "warmup_steps", "decay"),
)
CONFIG_NAMES = {"workers": "num_workers"}  # train options named otherwise in TrainConfig


def method_settings(options: dict[str, Any], typed: set[str], args: list[str]) -> dict[str, Any]:
    """The method's own options typed after train's (`args`: `--kd-alpha 0.7`), checked against the method they
    set: --loss's when typed (or resuming), else the recipe's (--recipe, else the recommended one)."""
    if not args:
        return {}
    if "loss" in typed or options.get("resume"):
        kind = options["loss"]
    else:
        kind = resolve_recipe(options["recipe"] or RECOMMENDED).loss.get("kind", "proreg")
    return METHODS[kind].settings_from_flags(args)


def resume_overrides(options: dict[str, Any], typed: set[str], own: dict[str, Any]) -> dict[str, Any]:
    """What a resume is asked to change: every option typed, by its TrainConfig name (train.run_dirs refuses all
    but a few)."""
    return {CONFIG_NAMES.get(k, k): options[k] for k in typed} | own


def train_config(options: dict[str, Any], typed: set[str], own: dict[str, Any]) -> TrainConfig:
    """The TrainConfig of the train command's options (`options`: parsed values by option name; `typed`: the names
    the user gave; `own`: the method's own options typed). A recipe sets the method; method options typed beside
    it change its settings."""
    o = options
    shared = {
        **{k: o[k] for k in SAME_NAME},
        "classnames": str(o["classnames"]) if o["classnames"] else None,
        "templates": templates(o["templates_file"], list(o["template"]) if "template" in typed else []),
        "num_workers": o["workers"],
    }
    recipe = o["recipe"] or (None if typed & set(METHOD_OPTIONS) or own else RECOMMENDED)
    method = {k: o[k] for k in METHOD_OPTIONS[1:] if k in typed or not recipe}
    if not recipe:
        return TrainConfig(**shared, **method, loss=LossConfig(o["loss"], own))
    loss = {**({"kind": o["loss"]} if "loss" in typed else {}), **own}
    # A recipe's own settings (ProReg's batch 32 x 8, RandAugment, lr 1e-5) give way only to options typed.
    recipe_fields = set(resolve_recipe(recipe).train)
    settings = {k: v for k, v in shared.items() if k in typed or k not in recipe_fields}
    cfg = recipe_config(recipe, loss, **settings, **method)
    # Options typed beside a recipe make another method: run.json and the folder name say so by naming none.
    return dataclasses.replace(cfg, recipe=None) if loss or method else cfg


def templates(file: Path | None, typed: list[str]) -> list[str]:
    """The prompt templates: those in `file`, else those typed, else [] (TrainConfig resolves it: the data suite's
    own, such as ImageNet's 80, else the default)."""
    return read_templates(file) if file else typed


def read_templates(path: Path) -> list[str]:
    from common.artifact import check_templates

    if not path.is_file():
        raise UserError(f"no such templates file: {path}")
    text = read_text_file(path, "templates file")
    lines = [t.strip() for t in text.splitlines() if t.strip() and not t.startswith("#")]
    check_templates(lines, f"templates file {path}")
    return lines


def method_options_help() -> str:
    """The methods' own options for train's --help, read from the registry (train/methods/)."""
    lines = ["Method options, after --loss NAME (or a recipe of that method):"]
    for name, method in METHODS.items():
        fields = method.option_fields().values()
        flags = [
            f"--{f.name.replace('_', '-')} (default {f.default}): {f.metadata['help'].rstrip('.')}" for f in fields
        ]
        lines.append(f"{name}: " + ("; ".join(flags) if flags else "none"))
    return "\n\n".join(lines)
