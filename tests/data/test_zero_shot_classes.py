"""data.specs.zero_shot_classes: the classes, display names and templates a zero-shot model is built over for the
evaluation sets it is given (`eval --checkpoint builtin --data ...`)."""

from __future__ import annotations

import shutil

import pytest
from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

from common.artifact import DEFAULT_TEMPLATES
from data.labeled import DataError
from data.specs import builtin_classnames, resolve_eval_sets, zero_shot_classes
from data.suites import pacs as pacs_reader
from data.suites.imagenet import TEMPLATES as IMAGENET_TEMPLATES
from data.suites.imagenet import WNIDS
from tests.suite_layouts import imagenet, pacs


def test_the_builtin_data_gives_the_builtin_classes():
    names = builtin_classnames()
    assert zero_shot_classes([]) == zero_shot_classes(["builtin"])
    got = zero_shot_classes(["builtin:ood_sketch"])
    assert (got.classes, got.prompts, got.templates) == (list(names), list(names.values()), list(DEFAULT_TEMPLATES))


def test_a_folder_gives_its_class_folders_and_the_default_template(tiny_folder):
    (tiny_folder / "star").rename(tiny_folder / "shooting_star")
    got = zero_shot_classes([f"ood:{tiny_folder}"])
    assert "shooting_star" in got.classes and "star" not in got.classes
    assert got.prompts[got.classes.index("shooting_star")] == "shooting star"
    assert got.templates == list(DEFAULT_TEMPLATES)
    sets = resolve_eval_sets([f"ood:{tiny_folder}"], classes=got.classes)  # the sets fit the classes
    assert sets[0].data.classes == got.classes


def test_a_suite_gives_its_classes_and_templates(tmp_path):
    root = pacs.make(tmp_path / "PACS")
    got = zero_shot_classes([f"pacs/photo:{root}"])
    assert got.classes == list(pacs_reader.CLASSES) and got.templates == list(pacs_reader.INFO.templates)


def test_sets_of_a_subset_of_the_classes_are_taken_and_other_classes_refused(tmp_path, tiny_folder):
    part = tmp_path / "part"
    shutil.copytree(tiny_folder / "star", part / "star")
    assert set(zero_shot_classes([str(part), "builtin"]).classes) == set(builtin_classnames())  # either order
    assert set(zero_shot_classes(["builtin", str(part)]).classes) == set(builtin_classnames())
    with pytest.raises(DataError, match=r"have different classes .*evaluate them apart"):
        zero_shot_classes([f"pacs/photo:{pacs.make(tmp_path / 'PACS')}", "builtin"])


def test_imagenet_r_gives_imagenets_1000_model_classes(tmp_path):
    root = imagenet.make(tmp_path / "imagenet")
    got = zero_shot_classes([f"imagenet-r:{root}"])
    assert got.classes == list(WNIDS) and got.prompts == list(IMAGENET_CLASSNAMES)
    assert got.templates == list(IMAGENET_TEMPLATES)
    (ev,) = resolve_eval_sets([f"imagenet-r:{root}"], classes=got.classes)
    assert ev.logit_pool is not None and len(ev.logit_pool) == 200
