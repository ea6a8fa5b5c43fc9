"""Named recipes: the name forms resolve_recipe takes and refuses, the TrainConfig recipe_config builds (recipe fields,
then what the user typed), every recipe's knob values as valid configs, the papers' settings as their released code
and configs give them (and as run.json records them), and the knobs those settings needed: the linear decay, warmup
in steps, and validation every fraction of an epoch (a tiny real run for the last)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
from pathlib import Path

import pytest
import torch

from common.errors import OptionError
from train.config import TrainConfig
from train.losses import LossConfig, loss_config
from train.methods import METHODS
from train.recipes import (
    COMPARED,
    DEFAULT_WISE_ALPHA,
    RECIPES,
    RECOMMENDED,
    WISE_SUFFIX,
    knob_settings,
    made_for,
    recipe_config,
    recipe_names,
    resolve_recipe,
)

CHOICES = ", ".join(RECIPES)


def stored(cfg: TrainConfig) -> TrainConfig:
    """The config as a run reads it back from run.json."""
    return TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))


# ------------------------------------------------------------------------------------------------- resolve_recipe


def test_the_recipes_are_the_documented_ones():
    methods = ["ce", "kd", "proreg", "proreg-official", "tes", "lp-ft"]
    papers = ["proreg-bar", "proreg-nico-animal", "proreg-nico-vehicle", "proreg-pacs", "proreg-domainnet"]
    assert list(RECIPES) == [*methods, "flyp", *papers, "tes-cifar100", "ce-imagenet", "flyp-imagenet"]
    assert list(COMPARED) == methods  # what compare trains by default; FLYP and the papers' settings when named
    assert DEFAULT_WISE_ALPHA == 0.5
    assert recipe_names() == [*RECIPES, *(f"{name}{WISE_SUFFIX}" for name in RECIPES)]


@pytest.mark.parametrize("name", list(RECIPES))
def test_a_plain_name_is_the_recipe_without_wise(name):
    assert resolve_recipe(name) == RECIPES[name]
    assert resolve_recipe(name).wise_alpha is None


@pytest.mark.parametrize(
    ("suffix", "alpha"),
    [("+wise", 0.5), ("+wise0.3", 0.3), ("+wise0", 0.0), ("+wise1", 1.0), ("+wise.25", 0.25), ("+wise1.0", 1.0)],
)
def test_wise_suffix_sets_the_alpha_and_nothing_else(suffix, alpha):
    recipe = resolve_recipe("proreg-official" + suffix)
    assert recipe.wise_alpha == alpha
    assert dataclasses.replace(recipe, wise_alpha=None) == RECIPES["proreg-official"]
    assert RECIPES["proreg-official"].wise_alpha is None  # the table itself is untouched


@pytest.mark.parametrize("name", ["magic", "magic+wise", "PROREG", "proreg ", "", "+wise"])
def test_an_unknown_name_is_refused_listing_the_choices(name):
    with pytest.raises(OptionError) as info:
        resolve_recipe(name)
    message = str(info.value)
    assert message.startswith("unknown recipe ") and f"(choose from {CHOICES})" in message
    assert "\n" not in message
    if name in ("PROREG", "proreg "):  # a close miss is named
        assert message.endswith("; did you mean 'proreg'?")


def test_an_unknown_name_message_exactly():
    with pytest.raises(OptionError) as info:
        resolve_recipe("magic")
    assert str(info.value) == f"unknown recipe 'magic' (choose from {CHOICES})"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("proreg+wise1.5", "recipe 'proreg+wise1.5': the WiSE-FT alpha must lie in [0, 1], got 1.5"),
        ("proreg+wise2", "recipe 'proreg+wise2': the WiSE-FT alpha must lie in [0, 1], got 2"),
        ("kd+wise1.2.3", "recipe 'kd+wise1.2.3': +wise takes an alpha in [0, 1], e.g. kd+wise0.5"),
        ("kd+wise.", "recipe 'kd+wise.': +wise takes an alpha in [0, 1], e.g. kd+wise0.5"),
    ],
)
def test_a_bad_wise_alpha_is_refused_in_one_line(name, message):
    with pytest.raises(OptionError) as info:
        resolve_recipe(name)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "name", ["proreg+wiseabc", "proreg+wise-0.5", "proreg+wisenan", "proreg+wise1e-1", "proreg+wise+wise"]
)
def test_a_wise_alpha_that_is_not_a_plain_number_is_refused_in_one_line(name):
    with pytest.raises(OptionError) as info:
        resolve_recipe(name)
    message = str(info.value)
    assert "\n" not in message and repr(name) in message


def test_the_recommended_recipe_resolves_to_proreg_with_wise():
    recipe = resolve_recipe(RECOMMENDED)
    assert recipe.loss["kind"] == "proreg" and recipe.wise_alpha == DEFAULT_WISE_ALPHA
    cfg = recipe_config(RECOMMENDED)
    settings = cfg.loss.settings
    assert (cfg.recipe, cfg.loss.kind, settings["weight_form"], settings["alpha"]) == (
        RECOMMENDED,
        "proreg",
        "official",
        2,
    )
    assert (cfg.head, cfg.wise_alpha) == ("trainable", 0.5)
    assert stored(cfg).to_dict() == cfg.to_dict()


# ------------------------------------------------------------------------------------------------ recipe_config


def test_recipe_config_applies_the_recipe_fields():
    cfg = recipe_config("proreg-official")
    assert cfg.loss == loss_config("proreg", weight_form="official", alpha=2.0)
    assert (cfg.head, cfg.recipe, cfg.wise_alpha) == ("trainable", "proreg-official", None)
    tes = recipe_config("tes")
    assert tes.loss == LossConfig(kind="tes") and tes.head == "linear" and tes.head_init == "text"
    lp_ft = recipe_config("lp-ft")
    assert (lp_ft.loss.kind, lp_ft.head, lp_ft.lp_fraction) == ("ce", "trainable", 0.5)
    ce = recipe_config("ce")
    assert ce.loss == LossConfig(kind="ce") and ce.head == "text" and ce.lp_fraction == 0.0


def test_recipe_config_sets_wise_alpha_from_the_name():
    assert recipe_config("lp-ft+wise0.3").wise_alpha == 0.3
    assert recipe_config("lp-ft+wise").wise_alpha == DEFAULT_WISE_ALPHA
    assert recipe_config("lp-ft+wise0").wise_alpha == 0.0
    cfg = recipe_config("tes+wise0.7")
    assert (cfg.recipe, cfg.wise_alpha, cfg.head) == ("tes+wise0.7", 0.7, "linear")
    assert stored(cfg).wise_alpha == 0.7 and stored(cfg).recipe == "tes+wise0.7"


def test_typed_options_win_over_the_recipe():
    cfg = recipe_config(
        "proreg-official",
        {"weight_form": "xerm", "alpha": 2.0},
        head="text",
        max_steps=3,
        batch_size=16,
        seed=7,
    )
    assert cfg.loss == loss_config("proreg", weight_form="xerm", alpha=2.0)
    assert (cfg.head, cfg.max_steps, cfg.batch_size, cfg.seed) == ("text", 3, 16, 7)
    assert recipe_config("lp-ft", lp_fraction=0.25).lp_fraction == 0.25
    assert recipe_config("kd", {"kd_alpha": 0.9}).loss.settings["kd_alpha"] == 0.9
    assert recipe_config("proreg+wise0.3", wise_alpha=0.8).wise_alpha == 0.8  # a typed train field wins too
    assert recipe_config("ce", {"kind": "kd"}).loss.kind == "kd"  # so does a typed --loss


def test_typed_options_that_do_not_go_with_the_recipe_are_refused():
    with pytest.raises(OptionError, match="head 'text' does not go with loss 'tes'"):
        recipe_config("tes", head="text")
    with pytest.raises(OptionError, match="--lp-fraction 0.5: LP-FT fits a trainable head first"):
        recipe_config("lp-ft", head="text")
    with pytest.raises(OptionError, match="tes_lv must be a finite number at least 0 and at most 1, got 1.5"):
        recipe_config("tes", {"tes_lv": 1.5})
    with pytest.raises(OptionError, match="unknown recipe 'magic'"):
        recipe_config("magic")


def test_a_wise_recipe_with_a_random_linear_head_is_refused():
    with pytest.raises(OptionError, match="a random linear head has none"):
        recipe_config("tes+wise", head_init="random")
    assert recipe_config("tes", head_init="random").head_init == "random"  # without WiSE-FT it is fine


# ------------------------------------------------------------------------------------------------------ knobs


def test_knob_settings():
    assert knob_settings(RECIPES["kd"], 0.75) == {"kd_alpha": 0.75}
    assert knob_settings(RECIPES["proreg"], 2.0) == {"alpha": 2.0}
    assert knob_settings(RECIPES["tes"], (0.1, 0.3)) == {"tes_lv": 0.1, "tes_lt": 0.3}
    assert knob_settings(RECIPES["ce"], None) == {} and knob_settings(RECIPES["lp-ft"], 1.0) == {}


def test_knobs_name_options_of_their_method_and_have_values():
    for name, recipe in RECIPES.items():
        if recipe.knob is None:
            assert recipe.knob_values == (), name
            continue
        assert set(recipe.knob.split(",")) <= set(METHODS[recipe.loss["kind"]].option_fields()), name
        assert len(recipe.knob_values) >= 2, name  # a sweep, else compare has nothing to choose
        assert len(set(recipe.knob_values)) == len(recipe.knob_values), name


CELLS = [
    pytest.param(name, value, id=f"{name}-{value}")
    for name, recipe in RECIPES.items()
    for value in recipe.knob_values or (None,)
]


@pytest.mark.parametrize(("name", "value"), CELLS)
def test_every_recipe_knob_value_makes_a_valid_config(name, value):
    recipe = RECIPES[name]
    settings = knob_settings(recipe, value) if value is not None else {}
    typed = {"max_steps": 2, "batch_size": 16, "seed": 1}
    cfg = recipe_config(name, settings, **typed)
    for field, expected in settings.items():
        assert cfg.loss.settings[field] == expected
    assert cfg.loss.kind == recipe.loss["kind"] and cfg.recipe == name
    for field, expected in {**recipe.train, **typed}.items():
        assert getattr(cfg, field) == expected
    # As run.json stores it and a resumed run reads it back.
    assert stored(cfg).to_dict() == cfg.to_dict()
    # With WiSE-FT as well: every recipe can be followed by it.
    assert recipe_config(name + "+wise0.3", settings).wise_alpha == 0.3


# ------------------------------------------------------------------------------------------ the papers' settings

# ProReg's released configs: config/<dataset>/prompt_xERM.yaml (alpha, gamma) and vilt/config.py task_finetune_*.
PROREG = {
    "proreg-bar": ("bar", 1.0, 2.0),
    "proreg-nico-animal": ("nico/animal", 2.0, 1.0),
    "proreg-nico-vehicle": ("nico/vehicle", 1.5, 0.5),
    "proreg-pacs": ("pacs", 2.0, 1.0),
    "proreg-domainnet": ("domainnet", 2.0, 1.0),
}


@pytest.mark.parametrize("name", list(PROREG))
def test_proreg_recipes_are_the_released_configs(name):
    suite, alpha, gamma = PROREG[name]
    cfg = recipe_config(name)
    assert cfg.loss == loss_config("proreg", weight_form="official", alpha=alpha, gamma=gamma, temperature=1.0)
    assert RECIPES[name].suite == suite and cfg.recipe == name and cfg.wise_alpha is None
    assert (cfg.head, cfg.head_init) == ("trainable", "text")
    assert cfg.resolved_lr() == 1e-5 and cfg.resolved_head_lr_scale() == 100.0  # the head at 1e-3
    assert (cfg.betas, cfg.weight_decay) == ((0.9, 0.98), 0.01)
    assert (cfg.warmup_fraction, cfg.warmup_steps, cfg.decay) == (0.1, None, "linear")
    assert (cfg.epochs, cfg.max_steps, cfg.augment, cfg.val_per_epoch) == (10, None, "randaugment", 2)
    assert (cfg.batch_size, cfg.accum_steps) == (32, 8) and cfg.batch_size * cfg.accum_steps == 256
    # run.json holds every resolved setting under the recipe's name, and a resumed run reads back the same config.
    saved = json.loads(json.dumps(cfg.to_dict()))
    assert saved["recipe"] == name
    assert saved["loss"]["settings"] == {**cfg.loss.settings, "alpha": alpha, "gamma": gamma}
    assert (saved["lr"], saved["head_lr_scale"], saved["decay"], saved["val_per_epoch"]) == (1e-5, 100.0, "linear", 2)
    assert saved["betas"] == [0.9, 0.98] and saved["augment"] == "randaugment"
    assert stored(cfg).to_dict() == cfg.to_dict()


@pytest.mark.parametrize(("name", "lv", "lt", "tau"), [("tes", 0.2, 0.4, 0.03), ("tes-cifar100", 0.1, 0.3, 0.03)])
def test_tes_recipes_are_the_authors_settings(name, lv, lt, tau):
    cfg = recipe_config(name)
    assert cfg.loss == loss_config("tes", tes_lv=lv, tes_lt=lt, tes_tau=tau)
    assert (cfg.head, cfg.head_init, cfg.recipe) == ("linear", "text", name)
    assert stored(cfg).loss == cfg.loss
    assert RECIPES["tes"].loss == {
        "kind": "tes",
        "tes_lv": 0.2,
        "tes_lt": 0.4,
        "tes_tau": 0.03,
    }  # defaults, spelled out


def test_ce_imagenet_is_wise_ft_imagenet_fine_tuning_and_its_wise_alpha():
    cfg = recipe_config("ce-imagenet")
    assert cfg.loss == LossConfig(kind="ce") and (cfg.head, cfg.head_init) == ("linear", "text")
    assert cfg.resolved_lr() == 3e-5 and cfg.resolved_head_lr_scale() == 1.0  # one rate for every parameter
    assert (cfg.betas, cfg.weight_decay) == ((0.9, 0.999), 0.1)
    assert (cfg.warmup_steps, cfg.decay, cfg.epochs) == (500, "cosine", 10)
    assert cfg.batch_size * cfg.accum_steps == 512 and cfg.wise_alpha is None
    wise = recipe_config("ce-imagenet+wise")
    assert (wise.recipe, wise.wise_alpha, wise.weight_decay) == ("ce-imagenet+wise", 0.5, 0.1)
    assert stored(wise).to_dict() == wise.to_dict()


def test_typed_options_win_over_the_papers_settings():
    cfg = recipe_config(
        "proreg-pacs",
        {"alpha": 1.0},
        lr=2e-5,
        epochs=3,
        batch_size=16,
        accum_steps=2,
        augment="none",
        val_per_epoch=1,
        decay="cosine",
        weight_decay=0.05,
    )
    assert [cfg.loss.settings[k] for k in ("alpha", "weight_form", "gamma")] == [1.0, "official", 1.0]
    assert (cfg.lr, cfg.epochs, cfg.batch_size, cfg.accum_steps) == (2e-5, 3, 16, 2)
    assert (cfg.augment, cfg.val_per_epoch, cfg.decay, cfg.weight_decay) == ("none", 1, "cosine", 0.05)
    assert cfg.head_lr_scale == 100.0 and cfg.betas == (0.9, 0.98)  # what was not typed stays the recipe's
    assert cfg.recipe == "proreg-pacs"
    imagenet = recipe_config("ce-imagenet", warmup_steps=None, warmup_fraction=0.05, max_steps=7)
    assert (imagenet.warmup_steps, imagenet.warmup_fraction, imagenet.max_steps) == (None, 0.05, 7)
    with pytest.raises(OptionError, match="--val-per-epoch must be a finite number at least 1, got 0"):
        recipe_config("proreg-bar", val_per_epoch=0)


def test_a_misspelt_paper_recipe_is_refused_listing_them_all():
    with pytest.raises(OptionError) as info:
        resolve_recipe("proreg-office-home")
    assert str(info.value) == f"unknown recipe 'proreg-office-home' (choose from {CHOICES})"  # nothing close
    assert "proreg-nico-vehicle" in CHOICES and "ce-imagenet" in CHOICES


def test_the_suites_recipes_name_are_registered_with_their_variants():
    from data.suites.registry import suites

    named = {recipe.suite for recipe in RECIPES.values() if recipe.suite}
    assert named == {"bar", "nico/animal", "nico/vehicle", "pacs", "domainnet", "cifar100", "imagenet"}
    for suite in named:
        name, _, variant = suite.partition("/")
        assert name in suites(), suite
        assert not variant or variant in suites()[name].info.variants, suite


@pytest.mark.parametrize(
    ("suite", "data", "made"),
    [
        ("pacs", "pacs/sketch:/data/PACS", True),
        ("pacs", "PACS:/data/PACS", True),
        ("pacs", "/data/PACS", False),  # a folder, not the suite's reader
        ("pacs", "builtin", False),
        ("nico/animal", "nico/animal:/data/NICO", True),
        ("nico/animal", "nico/vehicle:/data/NICO", False),
        ("nico/animal", "nico:/data/NICO", False),
        ("bar", "barn:/data", False),
    ],
)
def test_made_for(suite, data, made):
    assert made_for(suite, data) is made


def test_a_recipe_trains_on_other_data_with_a_warning_and_keeps_its_name(caplog):
    with caplog.at_level("WARNING", logger="train.recipes"):
        cfg = recipe_config("proreg-pacs", data="nico/animal:/nowhere")
    assert cfg.recipe == "proreg-pacs" and stored(cfg).recipe == "proreg-pacs" and cfg.data == "nico/animal:/nowhere"
    assert [r.getMessage() for r in caplog.records] == [
        "recipe 'proreg-pacs' was made for pacs data; training on nico/animal:/nowhere with its settings"
    ]
    caplog.clear()
    with caplog.at_level("WARNING", logger="train.recipes"):
        recipe_config("proreg-pacs", data="pacs/sketch:/nowhere")
        recipe_config("proreg", data="nico/animal:/nowhere")  # a method recipe names no suite
    assert caplog.records == []


# ------------------------------------------------------------------------------- the knobs the settings needed


def test_the_new_settings_are_checked():
    with pytest.raises(OptionError, match=r"unknown learning-rate decay 'step' \(choose from cosine, linear\)"):
        TrainConfig(decay="step")
    with pytest.raises(OptionError, match="--warmup-steps must be a finite number at least 0, got -1"):
        TrainConfig(warmup_steps=-1)
    with pytest.raises(OptionError, match="--val-per-epoch must be a finite number at least 1, got 0"):
        TrainConfig(val_per_epoch=0)
    assert (TrainConfig().decay, TrainConfig().warmup_steps, TrainConfig().val_per_epoch) == ("cosine", None, 1)


def test_linear_decay_and_warmup_in_steps():
    from train.session import lp_ft_schedule, warmup_cosine, warmup_linear

    # total 10, warmup 20%: 2 steps, 1/2 and 1; then 1 - k/8 for k = 0..7.
    assert [warmup_linear(10, 0.2)(step) for step in range(11)] == pytest.approx(
        [0.5, 1.0, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125, 0.0]
    )
    # warmup_steps wins over the fraction: 4 steps of 10, then the decay over the other 6.
    assert [warmup_linear(10, 0.2, warmup_steps=4)(step) for step in range(6)] == pytest.approx(
        [0.25, 0.5, 0.75, 1.0, 1.0, 5 / 6]
    )
    assert [warmup_cosine(10, 0.5, warmup_steps=2)(step) for step in (0, 1, 2, 6)] == pytest.approx([0.5, 1, 1, 0.5])
    factor = lp_ft_schedule(10, 0, 0.2, encoder=True, decay="linear")
    assert [factor(step) for step in range(12)] == [warmup_linear(10, 0.2)(step) for step in range(12)]


def test_the_optimizer_takes_the_recipes_betas_decay_and_schedule():
    from common.artifact import DEFAULT_TEMPLATES
    from common.builtin import BUILTIN
    from common.classifier import zero_shot_classifier
    from data.specs import builtin_classnames
    from train.session import _model_state

    names = builtin_classnames()
    teacher, _ = zero_shot_classifier(BUILTIN, None, list(names), list(names.values()), list(DEFAULT_TEMPLATES))
    cfg = recipe_config("proreg-bar", warmup_fraction=0.25)
    m = _model_state(cfg, teacher, torch.device("cpu"), total=8)  # 2 warmup steps, then linear over 6
    encoder, head = m.optimizer.param_groups
    assert (encoder["betas"], encoder["weight_decay"]) == ((0.9, 0.98), 0.01)
    lrs = []
    for _ in range(8):
        lrs.append((encoder["lr"], head["lr"]))
        m.optimizer.step()
        m.scheduler.step()
    factors = [0.5, 1.0, 1.0, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6]
    assert [e for e, _ in lrs] == pytest.approx([1e-5 * f for f in factors])
    assert [h for _, h in lrs] == pytest.approx([1e-3 * f for f in factors])


def _validations(run_dir: Path) -> list[tuple[int, int]]:
    from common.run import open_run

    return [(r["step"], r["epoch"]) for r in open_run(run_dir).metrics() if "val_top1" in r]


@pytest.mark.slow
def test_validation_every_half_epoch_on_a_tiny_run(tmp_path, tiny_folder):
    from common.run import open_run
    from train.trainer import train

    # 54 training images, batch 16: 4 micro-batches an epoch; 2 accumulated per step: 2 steps an epoch.
    cfg = TrainConfig(
        data=str(tiny_folder), epochs=2, batch_size=16, accum_steps=2, val_per_epoch=2, loss=LossConfig(kind="ce")
    )
    run = train(cfg, tmp_path / "half")
    assert _validations(tmp_path / "half") == [(1, 0), (2, 0), (3, 1), (4, 1)]  # twice an epoch
    assert run.record.best.step in (1, 2, 3, 4) and run.record.progress.step == 4
    once = train(dataclasses.replace(cfg, val_per_epoch=1), tmp_path / "once")
    assert _validations(tmp_path / "once") == [(2, 0), (4, 1)]
    # The same steps either way: validating in between changes no weight.
    assert (tmp_path / "half" / "last.safetensors").read_bytes() == (
        tmp_path / "once" / "last.safetensors"
    ).read_bytes()
    assert open_run(tmp_path / "half").record.train_config["val_per_epoch"] == 2 and once.record.progress.step == 4


@pytest.mark.slow
def test_a_stop_at_a_mid_epoch_validation_resumes_past_it(tmp_path, tiny_folder):
    from train.trainer import TrainingInterrupted, train

    # 4 steps an epoch, validated after steps 2 and 4 of each; Ctrl-C during step 2 stops after its validation.
    cfg = TrainConfig(data=str(tiny_folder), max_steps=6, batch_size=16, val_per_epoch=2, loss=LossConfig(kind="ce"))

    def press_ctrl_c(step, terms):
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted):
        train(cfg, tmp_path / "run", on_step=press_ctrl_c)
    assert _validations(tmp_path / "run") == [(2, 0)]
    train(cfg, tmp_path / "run", resume=True)
    assert _validations(tmp_path / "run") == [(2, 0), (4, 0), (6, 1)]  # step 6 is the last: validated once


def test_the_cli_applies_a_recipes_settings_and_typed_options_override_them(monkeypatch):
    """`train --recipe proreg-pacs` trains with the recipe's batch, accumulation, augmentation and rate, not the
    options' defaults; an option typed beside it wins."""
    from typer.testing import CliRunner

    import cli

    seen = []

    def capture(cfg, out, resume, overrides=None, tracking=None):
        seen.append(cfg)

    monkeypatch.setattr(cli, "do_train", capture)
    for args in (
        ["--recipe", "proreg-pacs"],
        ["--recipe", "proreg-pacs", "--batch-size", "16", "--val-per-epoch", "1"],
    ):
        result = CliRunner().invoke(cli.app, ["train", *args])
        assert result.exit_code == 0, result.output
    recipe, typed = seen
    assert (recipe.batch_size, recipe.accum_steps, recipe.augment, recipe.lr) == (32, 8, "randaugment", 1e-5)
    assert (recipe.val_per_epoch, recipe.decay, recipe.weight_decay, recipe.recipe) == (
        2,
        "linear",
        0.01,
        "proreg-pacs",
    )
    assert (typed.batch_size, typed.accum_steps, typed.val_per_epoch, typed.recipe) == (16, 8, 1, "proreg-pacs")
