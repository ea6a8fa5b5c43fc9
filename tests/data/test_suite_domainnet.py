"""DomainNet read from a miniature copy of its authors' layout (tests/suite_layouts/domainnet.py): ProReg's roles by
default (sketch ID; clipart, painting, real OOD), other ID domains, the split files' class order, and what a missing
or partial copy says."""

from __future__ import annotations

import logging

import pytest
from typer.testing import CliRunner

from cli import app
from common.run import DataSource
from data.labeled import DataError
from data.specs import resolve_eval_sets, resolve_train_data
from data.suites.base import MissingSuiteData
from data.suites.domainnet import CLASSES, DOMAINS, SUBSET
from tests.suite_layouts import domainnet

NAMES = [CLASSES[label] for label in domainnet.LABELS]


@pytest.fixture
def root(tmp_path):
    return domainnet.make(tmp_path / "domainnet")


def _class_of(sample, classes):
    return classes[sample.label] == sample.path.parent.name


def test_the_split_files_label_order():
    assert len(CLASSES) == len(set(CLASSES)) == 345
    assert (CLASSES[0], CLASSES[308], CLASSES[327], CLASSES[344]) == (
        "aircraft_carrier",
        "The_Eiffel_Tower",
        "t-shirt",
        "zigzag",
    )


def test_proreg_roles_by_default(root):
    data = resolve_train_data(DataSource(f"domainnet:{root}", val_fraction=0.5))
    assert data.classes == NAMES  # label order, only the classes the sketch train split has
    assert data.prompts == ["aircraft carrier", "The Eiffel Tower", "t-shirt", "zigzag"]
    both = [*data.train.samples, *data.val.samples]
    assert len(both) == 2 * len(NAMES) and len(data.val.samples) == len(NAMES)  # the sketch train split, held out
    assert {s.group for s in both} == {"sketch"} and all(s.path.stem.endswith(("1", "2")) for s in both)
    assert all(_class_of(s, data.classes) and s.path.is_file() for s in both)
    sets = resolve_eval_sets([f"domainnet:{root}"], classes=data.classes)
    assert [(ev.data.name, ev.role, len(ev.data.samples)) for ev in sets] == [
        ("domainnet-sketch-test", "id", len(NAMES)),
        ("domainnet-clipart-test", "ood", len(NAMES)),
        ("domainnet-painting-test", "ood", len(NAMES)),
        ("domainnet-real-test", "ood", len(NAMES)),
    ]
    for ev in sets:
        domain = ev.data.name.split("-")[1]
        assert {s.group for s in ev.data.samples} == {domain}
        assert all(_class_of(s, data.classes) and s.path.name.endswith("000003.jpg") for s in ev.data.samples)


def test_the_variant_names_the_id_domain(root):
    data = resolve_train_data(DataSource(f"domainnet/real:{root}"))
    assert {s.group for s in [*data.train.samples, *data.val.samples]} == {"real"}
    sets = resolve_eval_sets([f"domainnet/real:{root}"], classes=data.classes)
    assert [(ev.data.name, ev.role) for ev in sets] == [
        ("domainnet-real-test", "id"),
        ("domainnet-clipart-test", "ood"),
        ("domainnet-painting-test", "ood"),
        ("domainnet-sketch-test", "ood"),
    ]
    outside = resolve_eval_sets([f"domainnet/quickdraw:{root}"])
    assert [ev.data.name for ev in outside if ev.role == "ood"] == [f"domainnet-{d}-test" for d in SUBSET]


def test_the_model_class_order_wins(root):
    model = list(reversed(NAMES))
    sets = resolve_eval_sets([f"domainnet:{root}"], classes=model)
    assert all(_class_of(s, model) for ev in sets for s in ev.data.samples)


def test_split_files_in_image_list_and_only_the_subset_domains(root):
    (root / "image_list").mkdir()
    for path in root.glob("*.txt"):
        path.rename(root / "image_list" / path.name)
    for domain in ("infograph", "quickdraw"):  # not read for a subset domain as ID
        (root / "image_list" / f"{domain}_train.txt").unlink()
    sets = resolve_eval_sets([f"domainnet:{root}"])
    assert len(sets) == 4 and sum(len(ev.data.samples) for ev in sets) == 4 * len(NAMES)


def test_a_partial_copy_is_reported_with_counts(root, caplog):
    with caplog.at_level(logging.WARNING):
        resolve_train_data(DataSource(f"domainnet:{root}"))
    assert "partial copy: sketch-train: 8 of 48212 images" in caplog.text
    assert "partial copy: real-test: 4 of 52041 images" in caplog.text
    assert "partial copy: classes: 4 of 345 in sketch_train.txt" in caplog.text


def test_classes_without_training_images_leave_the_eval_sets(root, caplog):
    path = root / "sketch_train.txt"
    path.write_text("".join(line for line in path.open() if not line.rstrip().endswith(" 344")))
    data = resolve_train_data(DataSource(f"domainnet:{root}"))
    assert data.classes == NAMES[:3]
    with caplog.at_level(logging.WARNING):
        sets = resolve_eval_sets([f"domainnet:{root}"], classes=data.classes)
    assert [len(ev.data.samples) for ev in sets] == [3, 3, 3, 3]
    assert not any(s.path.parent.name == "zigzag" for ev in sets for s in ev.data.samples)
    assert "partial copy: domainnet-clipart-test: 1 image(s) of classes without training images left out" in caplog.text


def test_missing_and_wrong_copies_are_named(root):
    with pytest.raises(DataError, match=r"domainnet: unknown variant 'photo'; one of clipart, infograph, painting"):
        resolve_train_data(DataSource(f"domainnet/photo:{root}"))
    with pytest.raises(DataError, match=r"no such folder: .*nope.*get it from http://ai.bu.edu/M3SDA/"):
        resolve_eval_sets([f"domainnet:{root / 'nope'}"])
    image = root / "clipart" / "zigzag" / "clipart_345_000003.jpg"
    image.rename(image.with_suffix(".png"))
    with pytest.raises(MissingSuiteData, match=r"1 of 4 images listed in .*clipart_test.txt are missing \(first: "):
        resolve_eval_sets([f"domainnet:{root}"])
    image.with_suffix(".png").rename(image)
    (root / "real_test.txt").unlink()
    with pytest.raises(MissingSuiteData, match=r"split file real_test.txt not found \(looked in .*\); expected layout"):
        resolve_train_data(DataSource(f"domainnet/clipart:{root}"))
    (root / "painting").rename(root / "paintings")
    with pytest.raises(MissingSuiteData, match=r"domain folder painting/ not found \(looked for .*painting\)"):
        resolve_train_data(DataSource(f"domainnet/sketch:{root}"))


def test_a_label_that_disagrees_with_its_folder_is_refused(root):
    path = root / "sketch_test.txt"
    path.write_text(path.read_text().replace("000003.jpg 0\n", "000003.jpg 1\n"))
    with pytest.raises(DataError, match=r"sketch_test.txt: label 1 is airplane, but .* is in the folder aircraft_c"):
        resolve_train_data(DataSource(f"domainnet:{root}"))
    path.write_text(path.read_text().replace("000003.jpg 1\n", "000003.jpg 345\n"))
    with pytest.raises(DataError, match=r"label 345 outside 0\.\.344"):
        resolve_train_data(DataSource(f"domainnet:{root}"))


def test_datasets_lists_the_suite_with_its_layout():
    result = CliRunner().invoke(app, ["datasets"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "domainnet" in text and "ai.bu.edu/M3SDA" in text and all(d in text for d in DOMAINS)
