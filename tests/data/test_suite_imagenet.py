"""The ImageNet family read from a miniature copy of its released layouts (tests/suite_layouts/imagenet.py): the class
list and prompts, ID training and evaluation, the shifts as evaluation-only OOD sets, ImageNet-R/-A scored on their
200 logits, ObjectNet pooled over its ImageNet classes, and what missing or partial copies say."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES
from typer.testing import CliRunner

from cli import app
from common.run import DataSource
from data.labeled import DataError
from data.specs import resolve_eval_sets, resolve_train_data
from data.suites.base import MissingSuiteData
from data.suites.imagenet import IMAGENET_A_INDICES, IMAGENET_R_INDICES, TEMPLATES, WNIDS
from serve.evaluate import pooled_logits
from tests.suite_layouts import imagenet

SHIFTS = ("imagenet-v2", "imagenet-sketch", "imagenet-r", "imagenet-a", "objectnet")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return imagenet.make(tmp_path_factory.mktemp("imagenet-family"))


@pytest.fixture
def own_root(tmp_path):
    """A copy to break."""
    return imagenet.make(tmp_path / "data")


def test_the_class_list_names_and_templates():
    assert len(WNIDS) == len(set(WNIDS)) == len(IMAGENET_CLASSNAMES) == 1000
    assert list(WNIDS) == sorted(WNIDS)
    assert (WNIDS[0], WNIDS[409], WNIDS[954], WNIDS[999]) == ("n01440764", "n02708093", "n07753592", "n15075141")
    assert (IMAGENET_CLASSNAMES[0], IMAGENET_CLASSNAMES[409], IMAGENET_CLASSNAMES[954]) == (
        "tench",
        "analog clock",
        "banana",
    )
    for indices, first in ((IMAGENET_R_INDICES, "n01443537"), (IMAGENET_A_INDICES, "n01498041")):
        assert len(set(indices)) == 200 and list(indices) == sorted(indices) and WNIDS[indices[0]] == first
    assert len(TEMPLATES) == 80 and all(t.count("{}") == 1 for t in TEMPLATES)
    assert TEMPLATES[0] == "a bad photo of a {}." and TEMPLATES[-1] == "a tattoo of the {}."


def test_train_holds_out_validation_and_val_is_the_id_test(root):
    data = resolve_train_data(DataSource(f"imagenet:{root}", val_fraction=0.5))
    assert data.classes == list(WNIDS) and data.prompts == list(IMAGENET_CLASSNAMES)
    assert len(data.train.samples) == 1000 and len(data.val.samples) == len(imagenet.SAMPLED)
    for s in [*data.train.samples, *data.val.samples]:
        assert data.classes[s.label] == s.path.parent.name and s.path.parent.parent.name == "train"
    (ev,) = resolve_eval_sets([f"imagenet:{root}"], classes=data.classes)
    assert (ev.data.name, ev.role, len(ev.data.samples), ev.logit_pool) == ("imagenet-val", "id", 10, None)
    assert sorted(s.label for s in ev.data.samples) == list(imagenet.SAMPLED)
    assert all(WNIDS[s.label] == s.path.parent.name for s in ev.data.samples)


def test_v2_and_sketch_labels_follow_the_model_class_order(root):
    model = list(reversed(WNIDS))
    v2, sketch = resolve_eval_sets([f"imagenet-v2:{root}", f"imagenet-sketch:{root}"], classes=model)
    assert (v2.data.name, v2.role, sketch.data.name, sketch.role) == ("imagenet-v2", "ood", "imagenet-sketch", "ood")
    assert len(v2.data.samples) == len(sketch.data.samples) == len(imagenet.SAMPLED)
    # ImageNetV2's folders are class indices: folder 409 holds analog clocks (n02708093)
    assert all(model[s.label] == WNIDS[int(s.path.parent.name)] for s in v2.data.samples)
    assert all(model[s.label] == s.path.parent.name for s in sketch.data.samples)
    assert v2.logit_pool is None and sketch.logit_pool is None


@pytest.mark.parametrize("name, indices", [("imagenet-r", IMAGENET_R_INDICES), ("imagenet-a", IMAGENET_A_INDICES)])
def test_r_and_a_are_scored_on_their_200_logits(root, name, indices):
    model = list(reversed(WNIDS))
    (ev,) = resolve_eval_sets([f"{name}:{root}"], classes=model)
    assert ev.role == "ood" and ev.data.classes == [WNIDS[i] for i in indices]
    assert ev.logit_pool == [[999 - i] for i in indices]  # each class's own logit, wherever the model puts it
    expected = {i for i in imagenet.SAMPLED if i in indices}
    assert len(ev.data.samples) == len(expected) and expected
    labels = np.array([s.label for s in ev.data.samples])
    assert all(ev.data.classes[s.label] == s.path.parent.name for s in ev.data.samples)
    # A model sure of the right class, with a larger logit on a class outside the 200: the pool ignores the latter.
    logits = np.zeros((len(labels), 1000), dtype=np.float32)
    outside = model.index(WNIDS[next(i for i in range(1000) if i not in indices)])
    logits[:, outside] = 10.0
    for row, label in enumerate(labels):
        logits[row, model.index(ev.data.classes[label])] = 5.0
    assert (pooled_logits(logits, ev.logit_pool).argmax(axis=1) == labels).all()


def test_objectnet_pools_each_class_over_its_imagenet_classes(root):
    (ev,) = resolve_eval_sets([f"objectnet:{root}"], classes=list(WNIDS))
    assert ev.role == "ood" and ev.data.classes == ["alarm_clock", "banana", "bicycle"]
    # analog + digital clock; banana; mountain bike + tandem (through the 2012-id permutation of the mappings)
    assert ev.logit_pool == [[409, 530], [954], [671, 444]]
    assert [WNIDS[i] for i in (409, 530, 954, 671, 444)] == [
        "n02708093",
        "n03196217",
        "n07753592",
        "n03792782",
        "n02835271",
    ]
    assert len(ev.data.samples) == 6  # the squeegee and scissors folders are not evaluated
    assert all(ev.data.classes[s.label] == s.path.parent.name for s in ev.data.samples)
    logits = np.zeros((1, 1000), dtype=np.float32)
    logits[0, 530] = 3.0  # a digital clock is an alarm clock
    assert pooled_logits(logits, ev.logit_pool).argmax(axis=1).tolist() == [0]


@pytest.mark.parametrize("name", SHIFTS)
def test_the_shifts_are_for_evaluation_only(root, name):
    with pytest.raises(DataError, match=r"is for evaluation only; it has no training split"):
        resolve_train_data(DataSource(f"{name}:{root}"))


@pytest.mark.parametrize(
    "spec, folder",
    [
        ("imagenet", "imagenet"),
        ("imagenet-v2", "imagenetv2-matched-frequency-format-val"),
        ("imagenet-sketch", "sketch"),
        ("imagenet-r", "imagenet-r"),
        ("imagenet-a", "imagenet-a"),
        ("objectnet", "objectnet-1.0"),
    ],
)
def test_root_may_be_the_dataset_folder_itself(root, spec, folder):
    from_parent = resolve_eval_sets([f"{spec}:{root}"], classes=list(WNIDS))
    itself = resolve_eval_sets([f"{spec}:{root / folder}"], classes=list(WNIDS))
    assert [len(ev.data.samples) for ev in itself] == [len(ev.data.samples) for ev in from_parent]
    assert all(str(s.path).startswith(str(root / folder)) for ev in itself for s in ev.data.samples)


def test_a_model_without_imagenet_classes_is_refused(root):
    with pytest.raises(DataError, match=r"imagenet-r.*model classes the model lacks \(200, first: n01443537\)"):
        resolve_eval_sets([f"imagenet-r:{root}"], classes=["cat", "dog"])


def test_partial_copies_are_noted_with_counts(own_root, caplog):
    shutil.rmtree(own_root / "imagenet-r" / WNIDS[1])
    shutil.rmtree(own_root / "objectnet-1.0" / "images" / "banana")
    with caplog.at_level(logging.WARNING):
        sets = resolve_eval_sets([f"imagenet-r:{own_root}", f"objectnet:{own_root}"], classes=list(WNIDS))
    assert [len(ev.data.samples) for ev in sets] == [3, 4]
    assert f"partial copy: imagenet-r: 1 of 200 class folders missing (first: {WNIDS[1]})" in caplog.text
    assert "partial copy: imagenet-r: 3 of 30000 images" in caplog.text
    assert "partial copy: objectnet: 1 of 3 class folders missing (first: banana)" in caplog.text
    shutil.rmtree(own_root / "imagenet" / "train")
    with pytest.raises(MissingSuiteData, match=r"the training split train/ not found \(looked for .*imagenet/train\)"):
        resolve_train_data(DataSource(f"imagenet:{own_root}"))
    assert len(resolve_eval_sets([f"imagenet:{own_root}"])[0].data.samples) == 10  # val alone still evaluates


def test_evaluation_does_not_list_the_training_split(own_root, monkeypatch):
    import data.suites.imagenet as imagenet

    listed = []
    scan = imagenet._scan
    monkeypatch.setattr(imagenet, "_scan", lambda folder, *a: listed.append(folder.name) or scan(folder, *a))
    resolve_eval_sets([f"imagenet:{own_root}"])
    assert listed == ["val"]
    resolve_train_data(DataSource(f"imagenet:{own_root}"))
    assert listed == ["val", "val", "train"]


def test_missing_folders_are_named(own_root):
    val = own_root / "imagenet" / "val"
    for image in list(val.glob("*/*.JPEG")):
        image.rename(val / image.name)  # as ILSVRC2012_img_val.tar unpacks
    with pytest.raises(MissingSuiteData, match=r"no images in the wnid folders of .*val \(its images lie flat"):
        resolve_eval_sets([f"imagenet:{own_root}"])
    shutil.rmtree(val)
    with pytest.raises(MissingSuiteData, match=r"the ID test split val/ not found \(looked for .*imagenet/val\)"):
        resolve_eval_sets([f"imagenet:{own_root}"])
    (own_root / "objectnet-1.0" / "mappings" / "pytorch_to_imagenet_2012_id.json").unlink()
    with pytest.raises(MissingSuiteData, match=r"mappings/pytorch_to_imagenet_2012_id.json not found.*objectnet.dev"):
        resolve_eval_sets([f"objectnet:{own_root}"])
    shutil.rmtree(own_root / "imagenet-a")
    with pytest.raises(MissingSuiteData, match=r"ImageNet-A .*: the folder imagenet-a/ \(200 wnid folders\) not found"):
        resolve_eval_sets([f"imagenet-a:{own_root}"])
    with pytest.raises(MissingSuiteData, match=r"looked in .*, .*imagenet-a\).*natural-adv-examples"):
        resolve_eval_sets([f"imagenet-a:{own_root}"])


def test_a_mapping_naming_an_unknown_imagenet_class_is_refused(own_root):
    mapping = own_root / "objectnet-1.0" / "mappings" / "objectnet_to_imagenet_1k.json"
    mapping.write_text('{"Banana": "plantain"}')
    with pytest.raises(DataError, match=r"objectnet_to_imagenet_1k.json: 'Banana' maps to 'plantain', not in"):
        resolve_eval_sets([f"objectnet:{own_root}"])


def test_datasets_lists_the_family():
    result = CliRunner().invoke(app, ["datasets"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    for name in ("imagenet", *SHIFTS):
        assert name in text
    assert "ILSVRC2012" in text and "ImageNetV2 matched-frequency" in text and "ObjectNet (Barbu" in text
