"""BAR read from a miniature copy of alinlab/BAR (tests/suite_layouts/bar.py): train ID / test OOD, the class from
the file name ('pole vaulting_<n>.jpg' is vaulting), metadata.json, and what a missing or partial copy says."""

from __future__ import annotations

import json
import logging

import pytest

from common.run import DataSource
from data.labeled import DataError
from data.specs import resolve_eval_sets, resolve_train_data
from data.suites.bar import ACTIONS, CLASSES, INFO
from data.suites.base import MissingSuiteData
from tests.suite_layouts import bar


@pytest.fixture
def root(tmp_path):
    return bar.make(tmp_path / "BAR")


def _check_labels(samples):
    for s in samples:
        assert s.path.stem.rsplit("_", 1)[0] == ACTIONS[CLASSES[s.label]] and s.path.is_file()


def test_train_is_id_and_test_is_ood(root):
    data = resolve_train_data(DataSource(f"bar:{root}", val_fraction=0.5))
    assert data.classes == list(CLASSES)
    assert data.prompts == ["climbing", "diving", "fishing", "racing", "throwing", "pole vaulting"]
    assert len(data.train.samples) + len(data.val.samples) == bar.TRAIN * len(CLASSES)  # val held out of train/
    assert {s.path.parent.name for s in [*data.train.samples, *data.val.samples]} == {"train"}
    _check_labels(data.train.samples)
    (test,) = resolve_eval_sets([f"bar:{root}"], classes=data.classes)
    assert (test.data.name, test.role, len(test.data.samples)) == ("bar-test", "ood", bar.TEST * len(CLASSES))
    assert {s.path.parent.name for s in test.data.samples} == {"test"}
    _check_labels(test.data.samples)
    assert INFO.templates == ("the man is {}.",)


def test_without_metadata_the_images_found_are_read(root):
    (root / "metadata.json").unlink()
    (test,) = resolve_eval_sets([f"bar:{root}"])
    assert len(test.data.samples) == bar.TEST * len(CLASSES)
    _check_labels(test.data.samples)
    (root / "test" / "skating_9.jpg").write_bytes((root / "test" / "diving_2.jpg").read_bytes())
    with pytest.raises(MissingSuiteData, match=r"'skating' is not one of BAR's actions"):
        resolve_eval_sets([f"bar:{root}"])


def test_missing_and_partial_copies_are_named(root, tmp_path):
    with pytest.raises(DataError, match=r"bar takes no variant"):
        resolve_eval_sets([f"bar/x:{root}"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingSuiteData, match=r"the train/ folder not found .*get it from https://github.com/alinlab"):
        resolve_eval_sets([f"bar:{tmp_path / 'empty'}"])
    (root / "train" / "pole vaulting_0.jpg").unlink()
    with pytest.raises(MissingSuiteData, match=r"1 of 18 images listed in .*metadata.json are missing \(first: .*"
                       r"pole vaulting_0.jpg\)"):  # fmt: skip
        resolve_train_data(DataSource(f"bar:{root}"))
    (root / "metadata.json").write_text(json.dumps({"climbing_0": {"cls": "climbing", "train": True}})[:-10])
    with pytest.raises(MissingSuiteData, match=r"metadata.json is truncated or not JSON"):
        resolve_train_data(DataSource(f"bar:{root}"))


def test_fewer_images_than_published_are_reported_with_counts(root, caplog):
    with caplog.at_level(logging.WARNING):
        resolve_eval_sets([f"bar:{root}"])
    assert "partial copy: train climbing: 2 of 326 images" in caplog.text
    assert "partial copy: test vaulting: 1 of 131 images" in caplog.text
