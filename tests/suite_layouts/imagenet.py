"""The ImageNet family as released, in miniature, under one root: imagenet/{train,val}/<wnid>/*.JPEG,
imagenetv2-matched-frequency-format-val/<0..999>/*.jpeg, sketch/<wnid>/*.JPEG, imagenet-r/<wnid>/*.jpg,
imagenet-a/<wnid>/*.jpg (and its README.txt), objectnet-1.0/images/<folder>/*.png with objectnet-1.0/mappings/.

Every class folder is written (as the real copies have them); images only where a test needs them: one train image
per class (two for SAMPLED, so that a held-out fraction exists) and one image per SAMPLED class elsewhere. ObjectNet's
mappings name three overlapping classes (alarm clock, banana, bicycle, as the real objectnet_to_imagenet_1k.json maps
them) and two folders of classes outside ImageNet; its 2012 ids are a permutation of the class indices, as in the real
pytorch_to_imagenet_2012_id.json, so that a reader taking a 2012 id for a class index is caught."""

from __future__ import annotations

import json
from pathlib import Path

from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

from data.suites.imagenet import IMAGENET_A_INDICES, IMAGENET_R_INDICES, WNIDS
from tests.suite_layouts.images import tiny_image

SAMPLED = (0, 1, 6, 11, 409, 444, 530, 671, 954, 999)  # class indices with images in every set that has the class
# ObjectNet folder -> (label, the ImageNet class names it maps to, as in objectnet_to_imagenet_1k.json); None: a class
# outside ImageNet, whose images are not evaluated.
OBJECTNET = {
    "alarm_clock": ("Alarm clock", "analog clock; digital clock"),
    "banana": ("Banana", "banana"),
    "bicycle": (
        "Bicycle",
        "mountain bike, all-terrain bike, off-roader; bicycle-built-for-two, tandem bicycle, tandem",
    ),
    "squeegee": ("Squeegee", None),
    "scissors": ("Scissors", None),
}
# imagenet_to_label_2012_v2 spells classes with their WordNet synonyms; the ones OBJECTNET maps to:
LABEL_2012 = {
    409: "analog clock",
    530: "digital clock",
    954: "banana",
    671: "mountain bike, all-terrain bike, off-roader",
    444: "bicycle-built-for-two, tandem bicycle, tandem",
}


def _id_2012(index: int) -> int:
    return (7 * index + 3) % len(WNIDS)  # a permutation of 0..999 (7 is prime to 1000)


def _imagenet(root: Path) -> None:
    for index, wnid in enumerate(WNIDS):
        for i in range(2 if index in SAMPLED else 1):
            tiny_image(root / "imagenet" / "train" / wnid / f"{wnid}_{i}.JPEG", seed=index + i)
        (root / "imagenet" / "val" / wnid).mkdir(parents=True)
        (root / "sketch" / wnid).mkdir(parents=True)
        (root / "imagenetv2-matched-frequency-format-val" / str(index)).mkdir(parents=True)
    for index in SAMPLED:
        wnid = WNIDS[index]
        tiny_image(root / "imagenet" / "val" / wnid / f"ILSVRC2012_val_{index + 1:08d}.JPEG", seed=index)
        tiny_image(root / "sketch" / wnid / "sketch_0.JPEG", seed=index)
        tiny_image(root / "imagenetv2-matched-frequency-format-val" / str(index) / f"{index:040x}.jpeg", seed=index)


def _renditions(root: Path) -> None:
    for name, indices in (("imagenet-r", IMAGENET_R_INDICES), ("imagenet-a", IMAGENET_A_INDICES)):
        for index in indices:
            (root / name / WNIDS[index]).mkdir(parents=True)
            if index in SAMPLED:
                tiny_image(root / name / WNIDS[index] / f"{name}_{index}.jpg", seed=index)
    (root / "imagenet-a" / "README.txt").write_text("ImageNet-A (miniature)\n")


def _objectnet(root: Path) -> None:
    base = root / "objectnet-1.0"
    for f, folder in enumerate(OBJECTNET):
        for i in range(2):
            tiny_image(base / "images" / folder / f"{f}{i:03d}.png", seed=10 * f + i)
    mappings = base / "mappings"
    mappings.mkdir(parents=True)
    (mappings / "folder_to_objectnet_label.json").write_text(json.dumps({k: v[0] for k, v in OBJECTNET.items()}))
    overlap = {label: names for label, names in OBJECTNET.values() if names}
    (mappings / "objectnet_to_imagenet_1k.json").write_text(json.dumps(overlap, indent=2))
    by_id = {_id_2012(i): LABEL_2012.get(i, IMAGENET_CLASSNAMES[i]) for i in range(len(WNIDS))}
    (mappings / "imagenet_to_label_2012_v2").write_text("".join(f"{by_id[j]}\n" for j in range(len(WNIDS))))
    ids = {str(i): _id_2012(i) for i in range(len(WNIDS))}
    (mappings / "pytorch_to_imagenet_2012_id.json").write_text(json.dumps(ids, indent=2))


def make(root: Path) -> Path:
    _imagenet(root)
    _renditions(root)
    _objectnet(root)
    return root
