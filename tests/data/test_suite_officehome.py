"""Office-Home read from a miniature copy of its authors' zip layout (tests/suite_layouts/officehome.py):
leave-one-domain-out roles, the variant names, ROOT at either level, "Real World" or Real_World, and what a missing,
partial or foreign copy says."""

from __future__ import annotations

import logging

import pytest
from typer.testing import CliRunner

from cli import app
from common.run import DataSource
from data.labeled import DataError
from data.specs import resolve_eval_sets, resolve_train_data
from data.suites.base import MissingSuiteData
from data.suites.officehome import CLASSES, DOMAINS, ZIP_FOLDER
from tests.suite_layouts import officehome

PER_DOMAIN = officehome.PER_CLASS * len(officehome.CLASSES)


@pytest.fixture
def root(tmp_path):
    return officehome.make(tmp_path / "officehome")


def _class_of(sample, classes):
    return classes[sample.label] == sample.path.parent.name


def test_the_65_class_folders_in_sorted_order():
    assert len(CLASSES) == len(set(CLASSES)) == 65 and list(CLASSES) == sorted(CLASSES)
    assert CLASSES[0] == "Alarm_Clock" and CLASSES[-1] == "Webcam" and "Real World" in DOMAINS.values()


def test_clipart_is_held_out_by_default(root):
    data = resolve_train_data(DataSource(f"officehome:{root}", val_fraction=0.5))
    assert data.classes == list(officehome.CLASSES) and data.prompts == ["alarm clock", "tv", "webcam"]
    both = [*data.train.samples, *data.val.samples]
    assert len(both) == 3 * PER_DOMAIN and len(data.val.samples) == 3 * len(officehome.CLASSES)
    assert {s.group for s in both} == {"art", "product", "real_world"}
    assert all(_class_of(s, data.classes) and s.path.is_file() for s in both)
    (ood,) = resolve_eval_sets([f"officehome:{root}"], classes=data.classes)
    assert (ood.data.name, ood.role, len(ood.data.samples)) == ("officehome-clipart", "ood", PER_DOMAIN)
    assert {s.path.parent.parent.name for s in ood.data.samples} == {"Clipart"}
    assert all(_class_of(s, data.classes) for s in ood.data.samples)


def test_real_world_with_its_space_and_root_at_the_zip_folder(root):
    inside = root / ZIP_FOLDER
    data = resolve_train_data(DataSource(f"officehome/real_world:{inside}"))
    assert {s.group for s in [*data.train.samples, *data.val.samples]} == {"art", "clipart", "product"}
    (ood,) = resolve_eval_sets([f"officehome/real_world:{inside}"], classes=list(reversed(data.classes)))
    assert ood.data.name == "officehome-real_world" and len(ood.data.samples) == PER_DOMAIN
    assert {s.path.parent.parent.name for s in ood.data.samples} == {"Real World"}
    assert all(_class_of(s, list(reversed(data.classes))) for s in ood.data.samples)
    (inside / "Real World").rename(inside / "Real_World")
    (ood,) = resolve_eval_sets([f"officehome/real_world:{root}"])
    assert {s.path.parent.parent.name for s in ood.data.samples} == {"Real_World"}


def test_a_partial_copy_is_reported_with_counts(root, caplog):
    with caplog.at_level(logging.WARNING):
        resolve_eval_sets([f"officehome/art:{root}"])
    assert "partial copy: Art: 6 of 2427 images" in caplog.text
    assert "partial copy: Real World: 6 of 4357 images" in caplog.text
    assert "partial copy: classes: 3 of 65 with images in the ID domains" in caplog.text


def test_a_class_only_the_target_has_leaves_the_ood_set(root, caplog):
    for domain in ("Art", "Product", "Real World"):
        for path in (root / ZIP_FOLDER / domain / "TV").iterdir():
            path.unlink()
    data = resolve_train_data(DataSource(f"officehome:{root}"))
    assert data.classes == ["Alarm_Clock", "Webcam"]
    with caplog.at_level(logging.WARNING):
        (ood,) = resolve_eval_sets([f"officehome:{root}"], classes=data.classes)
    assert len(ood.data.samples) == PER_DOMAIN - officehome.PER_CLASS
    assert "officehome-clipart: 2 image(s) of classes without training images left out" in caplog.text


def test_missing_and_foreign_copies_are_named(root):
    with pytest.raises(DataError, match=r"officehome: unknown variant 'Clipart'; one of art, clipart, product, real_w"):
        resolve_train_data(DataSource(f"officehome/Clipart:{root}"))
    with pytest.raises(DataError, match=r"no such folder: .*nope.*get it from https://www.hemanthdv.org/officeHome"):
        resolve_eval_sets([f"officehome:{root / 'nope'}"])
    (root / ZIP_FOLDER / "Art" / "Sofa").mkdir()
    with pytest.raises(DataError, match=r"Art: 1 folder\(s\) that are not Office-Home classes \(first: Sofa/\)"):
        resolve_eval_sets([f"officehome:{root}"])
    (root / ZIP_FOLDER / "Art" / "Sofa").rmdir()
    (root / ZIP_FOLDER / "Product").rename(root / ZIP_FOLDER / "Products")
    with pytest.raises(MissingSuiteData, match=r"domain folder Product/ not found \(looked in .*\); expected layout"):
        resolve_train_data(DataSource(f"officehome:{root}"))
    (root / ZIP_FOLDER).rename(root / "elsewhere")
    with pytest.raises(MissingSuiteData, match=r"the domain folders not found \(looked in .*OfficeHomeDataset_1007"):
        resolve_train_data(DataSource(f"officehome:{root}"))


def test_datasets_lists_the_suite_with_its_layout():
    result = CliRunner().invoke(app, ["datasets"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "officehome" in text and "real_world" in text and "hemanthdv.org" in text
