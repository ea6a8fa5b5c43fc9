"""Waterbirds read from a miniature copy of group_DRO's release (tests/suite_layouts/waterbirds.py): the split
roles, labels and (class, place) groups from metadata.csv, and what a missing or partial copy says."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from common.run import DataSource
from data.labeled import DataError
from data.specs import resolve_eval_sets, resolve_train_data
from data.suites.base import MissingSuiteData
from data.suites.waterbirds import CLASSES, FOLDER
from serve.metrics import group_accuracies
from tests.suite_layouts import waterbirds

GROUPS = ["landbird_on_land", "landbird_on_water", "waterbird_on_land", "waterbird_on_water"]
PER_SPLIT = 4 * waterbirds.PER_GROUP


@pytest.fixture
def root(tmp_path):
    return waterbirds.make(tmp_path / "wb")


def _metadata(root):
    lines = (root / FOLDER / "metadata.csv").read_text().splitlines()
    return lines[0], [line.split(",") for line in lines[1:]]


def test_train_val_and_an_ood_test_with_four_groups(root):
    data = resolve_train_data(DataSource(f"waterbirds:{root}"))
    assert data.classes == list(CLASSES) and data.prompts == ["landbird", "waterbird"]
    assert len(data.train.samples) == PER_SPLIT and len(data.val.samples) == PER_SPLIT  # splits 0 and 1, not a holdout
    (test,) = resolve_eval_sets([f"waterbirds:{root}"], classes=data.classes)
    assert (test.data.name, test.role, len(test.data.samples)) == ("waterbirds-test", "ood", PER_SPLIT)
    assert test.data.groups == GROUPS
    _, rows = _metadata(root)
    by_file = {row[1]: row for row in rows}
    for split, samples in ((0, data.train.samples), (1, data.val.samples), (2, test.data.samples)):
        for s in samples:
            row = by_file[f"{s.path.parent.name}/{s.path.name}"]
            assert int(row[3]) == split and int(row[2]) == s.label
            assert s.path.parent.name == waterbirds.SPECIES[s.label]  # the species folder agrees with y
            assert s.group == f"{CLASSES[s.label]}_on_{'water' if row[5].startswith('/o/') else 'land'}"


def test_the_groups_give_a_worst_group_accuracy(root):
    (test,) = resolve_eval_sets([f"waterbirds:{root}"])
    labels = np.array([s.label for s in test.data.samples])
    groups = np.array([test.data.groups.index(s.group) for s in test.data.samples])
    always_landbird = np.tile([1.0, 0.0], (len(labels), 1))
    per_group = group_accuracies(always_landbird, labels, groups, test.data.groups)
    assert per_group == {"landbird_on_land": 1.0, "landbird_on_water": 1.0, "waterbird_on_land": 0.0,
                         "waterbird_on_water": 0.0}  # fmt: skip


def test_root_may_be_the_dataset_folder_or_its_parent(root):
    assert len(resolve_train_data(DataSource(f"waterbirds:{root / FOLDER}")).train.samples) == PER_SPLIT


def test_missing_and_partial_copies_are_named(root, tmp_path):
    with pytest.raises(DataError, match=r"waterbirds takes no variant"):
        resolve_eval_sets([f"waterbirds/test:{root}"])
    with pytest.raises(
        MissingSuiteData, match=r"metadata.csv not found .*get it from https://nlp.stanford.edu/data/dro"
    ):
        resolve_eval_sets([f"waterbirds:{tmp_path}"])
    header, rows = _metadata(root)
    (root / FOLDER / rows[0][1]).unlink()
    (root / FOLDER / rows[5][1]).unlink()
    with pytest.raises(MissingSuiteData, match=rf"2 of {3 * PER_SPLIT} images listed in .*metadata.csv are missing"):
        resolve_train_data(DataSource(f"waterbirds:{root}"))


def test_a_truncated_metadata_file_names_its_line(root):
    header, rows = _metadata(root)
    text = "\n".join([header, *[",".join(r) for r in rows[:3]], ",".join(rows[3][:3])])  # cut inside row 4
    (root / FOLDER / "metadata.csv").write_text(text)
    with pytest.raises(MissingSuiteData, match=r"metadata.csv line 5 is truncated or malformed"):
        resolve_train_data(DataSource(f"waterbirds:{root}"))
    (root / FOLDER / "metadata.csv").write_text("img_id,img_filename,y,split\n1,a.jpg,0,0\n")
    with pytest.raises(MissingSuiteData, match=r"lacks the column\(s\) place, place_filename"):
        resolve_train_data(DataSource(f"waterbirds:{root}"))


def test_fewer_rows_than_published_are_reported_with_counts(root, caplog):
    with caplog.at_level(logging.WARNING):
        resolve_eval_sets([f"waterbirds:{root}"])
    assert f"partial copy: train: {PER_SPLIT} of 4795 images" in caplog.text
    assert f"test: {PER_SPLIT} of 5794 images" in caplog.text
