"""Named recipes: the name forms resolve_recipe takes and refuses, the TrainConfig recipe_config builds (recipe fields,
then what the user typed), and every recipe's knob values as valid configs. No training."""

from __future__ import annotations

import dataclasses
import json

import pytest

from common.errors import OptionError
from train.config import TrainConfig
from train.losses import LossConfig
from train.recipes import (
    DEFAULT_WISE_ALPHA,
    RECIPES,
    RECOMMENDED,
    WISE_SUFFIX,
    knob_settings,
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
    assert list(RECIPES) == ["ce", "kd", "proreg", "proreg-official", "tes", "lp-ft"]
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
    assert message.startswith("unknown recipe ") and message.endswith(f"(choose from {CHOICES})")
    assert "\n" not in message


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
    assert (cfg.recipe, cfg.loss.kind, cfg.loss.weight_form, cfg.loss.alpha) == (RECOMMENDED, "proreg", "official", 2)
    assert (cfg.head, cfg.wise_alpha) == ("trainable", 0.5)
    assert stored(cfg).to_dict() == cfg.to_dict()


# ------------------------------------------------------------------------------------------------ recipe_config


def test_recipe_config_applies_the_recipe_fields():
    cfg = recipe_config("proreg-official")
    assert cfg.loss == LossConfig(kind="proreg", weight_form="official", alpha=2.0)
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
    assert cfg.loss == LossConfig(kind="proreg", weight_form="xerm", alpha=2.0)
    assert (cfg.head, cfg.max_steps, cfg.batch_size, cfg.seed) == ("text", 3, 16, 7)
    assert recipe_config("lp-ft", lp_fraction=0.25).lp_fraction == 0.25
    assert recipe_config("kd", {"kd_alpha": 0.9}).loss.kd_alpha == 0.9
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


def test_knobs_name_loss_fields_and_have_values():
    fields = {f.name for f in dataclasses.fields(LossConfig)}
    for name, recipe in RECIPES.items():
        if recipe.knob is None:
            assert recipe.knob_values == (), name
            continue
        assert set(recipe.knob.split(",")) <= fields, name
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
    cfg = recipe_config(name, settings, max_steps=2, batch_size=16, seed=1)
    for field, expected in settings.items():
        assert getattr(cfg.loss, field) == expected
    assert cfg.loss.kind == recipe.loss["kind"] and cfg.recipe == name
    for field, expected in recipe.train.items():
        assert getattr(cfg, field) == expected
    # As run.json stores it and a resumed run reads it back.
    assert stored(cfg).to_dict() == cfg.to_dict()
    # With WiSE-FT as well: every recipe can be followed by it.
    assert recipe_config(name + "+wise0.3", settings).wise_alpha == 0.3
