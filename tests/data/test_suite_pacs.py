"""PACS read from a miniature copy of its authors' layout (tests/suite_layouts/pacs.py): leave-one-domain-out roles,
split files, the default variant, and what a missing or partial copy says."""

from __future__ import annotations

import logging

import pytest
from typer.testing import CliRunner

from cli import app
from common.run import DataSource
from data.labeled import DataError
from data.specs import resolve_eval_sets, resolve_train_data
from data.suites.base import MissingSuiteData
from data.suites.pacs import CLASSES, DOMAINS
from tests.suite_layouts import pacs


@pytest.fixture
def root(tmp_path):
    return pacs.make(tmp_path / "PACS")


def test_leave_one_domain_out(root):
    data = resolve_train_data(DataSource(f"pacs/photo:{root}"))
    assert data.classes == list(CLASSES) and data.prompts == list(CLASSES)
    train_domains = {s.group for s in data.train.samples}
    assert train_domains == set(DOMAINS) - {"photo"}
    assert len(data.train.samples) == 3 * len(CLASSES)  # one train image per class and source domain
    assert len(data.val.samples) == 3 * len(CLASSES)  # the crossval splits
    assert {s.path.name for s in data.val.samples} == {"pic_001.jpg"}
    for s in data.train.samples:
        assert s.path.parent.name == CLASSES[s.label] and s.path.is_file()
    sets = resolve_eval_sets([f"pacs/photo:{root}"], classes=data.classes)
    assert [(ev.data.name, ev.role, len(ev.data.samples)) for ev in sets] == [
        ("pacs-id-test", "id", 3 * len(CLASSES)),
        ("photo", "ood", 3 * len(CLASSES)),  # every image of the target domain
    ]
    assert {s.group for s in sets[1].data.samples} == {"photo"}


def test_the_default_target_is_sketch_and_classes_follow_the_model(root):
    model_classes = list(reversed(CLASSES))
    (ood,) = [ev for ev in resolve_eval_sets([f"pacs:{root}"], classes=model_classes) if ev.role == "ood"]
    assert ood.data.name == "sketch" and ood.data.classes == model_classes
    assert all(model_classes[s.label] == s.path.parent.name for s in ood.data.samples)


def test_domainbed_folders_without_split_files(tmp_path):
    root = pacs.make(tmp_path / "PACS")
    for path in root.glob("*.txt"):
        path.unlink()
    (root / "kfold").rename(tmp_path / "DB")
    data = resolve_train_data(DataSource(f"pacs/cartoon:{tmp_path / 'DB'}", val_fraction=0.34))
    assert len(data.train.samples) + len(data.val.samples) == 3 * 3 * len(CLASSES)
    (ood,) = resolve_eval_sets([f"pacs/cartoon:{tmp_path / 'DB'}"], classes=data.classes)
    assert ood.role == "ood" and len(ood.data.samples) == 3 * len(CLASSES)


def test_missing_and_partial_copies_are_named(root, caplog):
    with pytest.raises(DataError, match=r"pacs: unknown variant 'clipart'; one of art_painting, cartoon, photo"):
        resolve_train_data(DataSource(f"pacs/clipart:{root}"))
    with pytest.raises(DataError, match=r"no such folder: .*nope.*get it from https://domaingeneralization"):
        resolve_eval_sets([f"pacs:{root / 'nope'}"])
    (root / "cartoon_test_kfold.txt").rename(root / "moved.txt")  # the train split files alone
    with pytest.raises(MissingSuiteData, match=r"split file cartoon_test_kfold.txt not found \(looked for "):
        resolve_eval_sets([f"pacs:{root}"])
    (root / "moved.txt").rename(root / "cartoon_test_kfold.txt")
    (root / "kfold" / "cartoon" / "dog" / "pic_000.jpg").unlink()
    with pytest.raises(MissingSuiteData, match=r"1 of 7 images listed in .*cartoon_train_kfold.txt are missing"):
        resolve_train_data(DataSource(f"pacs:{root}"))
    (root / "kfold").rename(root / "elsewhere")
    with pytest.raises(MissingSuiteData, match=r"kfold/ not found \(looked in .*\); expected layout: ROOT/kfold/"):
        resolve_train_data(DataSource(f"pacs:{root}"))


def test_a_copy_with_fewer_images_than_published_is_reported_with_counts(root, caplog):
    with caplog.at_level(logging.WARNING):
        resolve_eval_sets([f"pacs:{root}"])
    assert "partial copy: art_painting: 21 of 2048 images" in caplog.text


def test_datasets_lists_the_suite_with_its_layout():
    result = CliRunner().invoke(app, ["datasets"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "pacs" in text and "art_painting" in text and "domaingeneralization" in text
