"""NICO and NICO++ read from miniature copies of their releases (tests/suite_layouts/nico.py, nico_plus.py): ID and
OOD by context (CaaM's training contexts for animals, the documented rule for vehicles), by held-out domain for
NICO++, groups, labels, and what a missing or partial copy says."""

from __future__ import annotations

import logging
import shutil

import pytest
from typer.testing import CliRunner

from cli import app
from common.run import DataSource
from data.labeled import DataError
from data.specs import resolve_eval_sets, resolve_train_data
from data.suites.base import MissingSuiteData
from data.suites.nico import ANIMAL_TRAIN_CONTEXTS, NICO_CLASSES, PLUS_CLASSES, PLUS_DOMAINS
from tests.suite_layouts import nico, nico_plus


@pytest.fixture(scope="module")
def nico_root(tmp_path_factory):
    return nico.make(tmp_path_factory.mktemp("nico") / "NICO")


@pytest.fixture(scope="module")
def plus_root(tmp_path_factory):
    return nico_plus.make(tmp_path_factory.mktemp("nicopp") / "NICO++")


def _context_of(sample):
    return sample.path.parent.name.replace(" ", "_")


def test_nico_animal_trains_on_caams_contexts_and_tests_on_the_unseen_ones(nico_root):
    classes = list(NICO_CLASSES["animal"])
    data = resolve_train_data(DataSource(f"nico/animal:{nico_root}", val_fraction=0.3))
    assert data.classes == classes
    train = [*data.train.samples, *data.val.samples]
    assert len(train) == 7 * len(classes)  # one image in each of the 7 training contexts
    for s in train:
        assert s.path.parent.parent.name == classes[s.label] and s.group == _context_of(s)
        assert s.group in ANIMAL_TRAIN_CONTEXTS[classes[s.label]]
    (ood,) = resolve_eval_sets([f"nico/animal:{nico_root}"], classes=classes)
    assert (ood.data.name, ood.role, len(ood.data.samples)) == ("nico-animal-ood", "ood", 2 * len(classes))
    for s in ood.data.samples:
        assert s.path.parent.parent.name == classes[s.label]
        assert s.group == _context_of(s) in nico.unseen_animal_contexts(classes[s.label])  # 'on snow' -> on_snow
    assert len(ood.data.groups) > 1  # grouped by context: the report has a worst-group accuracy


def test_nico_vehicle_ranks_contexts_by_size(nico_root):
    classes = list(NICO_CLASSES["vehicle"])
    (ood,) = resolve_eval_sets([f"nico/vehicle:{nico_root}"], classes=classes)
    unseen = {(classes[s.label], s.group) for s in ood.data.samples}
    # airplane: 7 contexts of 2 images are ID, the 2 of 1 image OOD; the rest: 'on_road' (2) and 'at_night' (first
    # by name of the 1-image contexts) are ID, 'in_city' OOD
    assert unseen == {("airplane", "in_water"), ("airplane", "aside")} | {(c, "in_city") for c in classes[1:]}
    data = resolve_train_data(DataSource(f"nico/vehicle:{nico_root}", val_fraction=0.2))
    assert len(data.train.samples) + len(data.val.samples) == 14 + 3 * (len(classes) - 1)


def test_nico_needs_a_variant_and_names_what_is_missing(nico_root, tmp_path):
    with pytest.raises(DataError, match=r"nico needs a variant: nico/VARIANT:ROOT, VARIANT one of animal, vehicle"):
        resolve_eval_sets([f"nico:{nico_root}"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingSuiteData, match=r"the Animal/ folder not found .*get it from https://nico"):
        resolve_eval_sets([f"nico/animal:{tmp_path / 'empty'}"])
    copy = tmp_path / "copy"
    shutil.copytree(nico_root / "Animal", copy / "animals")  # a copy with the superclass folder renamed
    shutil.rmtree(copy / "animals" / "rat")
    with pytest.raises(MissingSuiteData, match=r"class folder rat/ not found \(looked for .*animals/rat\)"):
        resolve_eval_sets([f"nico/animal:{copy}"])


def test_a_missing_training_context_is_reported(nico_root, tmp_path, caplog):
    copy = shutil.copytree(nico_root, tmp_path / "NICO")
    shutil.rmtree(copy / "Animal" / "dog" / "on_grass")
    with caplog.at_level(logging.WARNING):
        data = resolve_train_data(DataSource(f"nico/animal:{copy}"))
    assert "partial copy: dog/on_grass: missing (a training context)" in caplog.text
    assert len(data.train.samples) + len(data.val.samples) == 7 * 10 - 1
    for context in ANIMAL_TRAIN_CONTEXTS["cat"]:
        shutil.rmtree(copy / "Animal" / "cat" / context)
    with pytest.raises(MissingSuiteData, match=r"cat has 2 context folder\(s\), 0 of them training contexts"):
        resolve_train_data(DataSource(f"nico/animal:{copy}"))


def test_nico_plus_holds_out_one_domain(plus_root):
    data = resolve_train_data(DataSource(f"nico-plus/rock:{plus_root}", val_fraction=0.2))
    assert (
        data.classes == list(PLUS_CLASSES) and data.prompts[PLUS_CLASSES.index("hot_air_balloon")] == "hot air balloon"
    )
    train = [*data.train.samples, *data.val.samples]
    assert len(train) == 5 * len(PLUS_CLASSES)
    assert {s.group for s in train} == set(PLUS_DOMAINS) - {"rock"}
    for s in train:
        assert s.path.parent.name == PLUS_CLASSES[s.label].replace("_", " ") and s.path.parent.parent.name == s.group
    (ood,) = resolve_eval_sets([f"nico-plus/rock:{plus_root}"], classes=data.classes)
    assert (ood.data.name, ood.role, len(ood.data.samples)) == ("rock", "ood", len(PLUS_CLASSES))
    assert ood.data.groups == ["rock"]
    # ROOT may also be the train/ folder itself
    (ood2,) = resolve_eval_sets([f"nico-plus/dim:{plus_root / nico_plus.TRAIN}"])
    assert {s.group for s in ood2.data.samples} == {"dim"} and len(ood2.data.samples) == len(PLUS_CLASSES)


def test_nico_plus_partial_copies(plus_root, tmp_path, caplog):
    with pytest.raises(DataError, match=r"nico-plus: unknown variant 'snow'; one of autumn, dim, grass"):
        resolve_eval_sets([f"nico-plus/snow:{plus_root}"])
    with pytest.raises(DataError, match=r"nico-plus needs a variant"):
        resolve_eval_sets([f"nico-plus:{plus_root}"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingSuiteData, match=r"no domain folder .* get it from https://github.com/xxgege/NICO-plus"):
        resolve_eval_sets([f"nico-plus/rock:{tmp_path / 'empty'}"])
    copy = shutil.copytree(plus_root / nico_plus.TRAIN, tmp_path / "train")
    shutil.rmtree(copy / "grass" / "fishing rod")
    shutil.rmtree(copy / "grass" / "hot air balloon")
    with caplog.at_level(logging.WARNING):
        resolve_eval_sets([f"nico-plus/rock:{copy}"])
    assert "partial copy: grass: 58 of 60 classes" in caplog.text
    shutil.rmtree(copy / "water")
    with pytest.raises(MissingSuiteData, match=r"domain folder water/ not found \(looked for .*train/water\)"):
        resolve_eval_sets([f"nico-plus/rock:{copy}"])


def test_datasets_lists_the_suites():
    result = CliRunner().invoke(app, ["datasets"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    for words in ("nico-plus", "NICO++", "BAR", "alinlab", "Waterbirds"):
        assert words in text
