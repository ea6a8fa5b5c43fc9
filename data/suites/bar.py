"""BAR, Biased Action Recognition (Nam et al., "Learning from Failure", NeurIPS 2020): six actions, each tied to a
place in training (climbing / rock wall, diving / underwater, fishing / water surface, racing / paved track,
throwing / playing field, pole vaulting / sky).

The release (github.com/alinlab/BAR) holds train/ (1941 images) and test/ (654) with flat file names
'<action>_<n>.jpg' ('pole vaulting_<n>.jpg' for vaulting; test numbers continue the train ones), and metadata.json
keyed by the file stem ('climbing_0': {"cls": .., "train": true, ...}). ROOT is that folder. With metadata.json the
samples are its entries (a listed file that is absent is an error with counts); without it, the images found.
Roles as in LfF and ProReg: train/ is ID (each action in its usual place); test/ is OOD (the same actions in places
the training images do not show). BAR has no validation split: a fraction of train is held out.
"""

from __future__ import annotations

import json
from pathlib import Path

from data.labeled import IMAGE_EXTENSIONS, LabeledImages, Sample
from data.suites.base import (
    MissingSuiteData,
    Suite,
    SuiteData,
    SuiteInfo,
    SuiteSet,
    missing_counts,
    refuse_absent,
    require,
)

# class name -> the action as the file names and metadata spell it (and as the prompts say it)
ACTIONS = {
    "climbing": "climbing",
    "diving": "diving",
    "fishing": "fishing",
    "racing": "racing",
    "throwing": "throwing",
    "vaulting": "pole vaulting",
}
CLASSES = tuple(ACTIONS)
IMAGES = {  # the release's stats_train.json / stats_test.json
    "train": {"climbing": 326, "diving": 520, "fishing": 163, "racing": 336, "throwing": 317, "vaulting": 279},
    "test": {"climbing": 105, "diving": 159, "fishing": 42, "racing": 132, "throwing": 85, "vaulting": 131},
}
INFO = SuiteInfo(
    name="bar",
    title="BAR, Biased Action Recognition (Nam et al., NeurIPS 2020)",
    published="https://github.com/alinlab/BAR",
    layout="ROOT/train/<action>_<n>.jpg and ROOT/test/<action>_<n>.jpg (actions climbing, diving, fishing, racing, "
    "throwing, 'pole vaulting'), ROOT/metadata.json (optional)",
    roles="train/ is ID (actions in their biased places), test/ is OOD (unseen places); no validation split",
    classes=len(CLASSES),
    templates=("the man is {}.",),  # ProReg's released BAR config: prompt_template "the man is" + class + "."
)
_CLASS_OF = {action: name for name, action in ACTIONS.items()}


def _class_of(stem: str, where: Path) -> int:
    action = stem.rsplit("_", 1)[0]
    if action not in _CLASS_OF:
        raise MissingSuiteData(f"{INFO.title}: {where}: {action!r} is not one of BAR's actions ({', '.join(ACTIONS)})")
    return CLASSES.index(_CLASS_OF[action])


def _from_metadata(root: Path, path: Path) -> dict[str, list[Sample]]:
    with open(path, encoding="utf-8") as f:
        try:
            entries = json.load(f)
        except json.JSONDecodeError as e:
            raise MissingSuiteData(
                f"{INFO.title}: {path} is truncated or not JSON ({e.msg} at line {e.lineno})"
            ) from None
    splits: dict[str, list[Sample]] = {"train": [], "test": []}
    absent: list[Path] = []
    for stem, entry in entries.items():
        split = "train" if entry.get("train") else "test"
        label = _class_of(stem, path)
        if entry.get("cls") not in (None, ACTIONS[CLASSES[label]]):
            raise MissingSuiteData(f"{INFO.title}: {path}: {stem} is listed as {entry['cls']!r}")
        file = next((c for c in (root / split / f"{stem}{s}" for s in (".jpg", ".png")) if c.is_file()), None)
        if file is None:
            absent.append(root / split / f"{stem}.jpg")
            continue
        splits[split].append(Sample(file, label))
    refuse_absent(INFO, path, len(entries), absent)
    return splits


def _from_folders(root: Path) -> dict[str, list[Sample]]:
    splits: dict[str, list[Sample]] = {}
    for split in ("train", "test"):
        folder = require(root / split, f"the {split}/ folder", INFO)
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        splits[split] = [Sample(p, _class_of(p.stem, p)) for p in files]
    return splits


def _notes(splits: dict[str, list[Sample]]) -> list[str]:
    notes = []
    for split, expected in IMAGES.items():
        found = {c: 0 for c in CLASSES}
        for s in splits[split]:
            found[CLASSES[s.label]] += 1
        notes += [f"{split} {note}" for note in missing_counts(expected, found)]
    return notes


def read(root: Path, variant: str | None) -> SuiteData:
    for split in ("train", "test"):
        require(root / split, f"the {split}/ folder", INFO)
    metadata = root / "metadata.json"
    splits = _from_metadata(root, metadata) if metadata.is_file() else _from_folders(root)
    return SuiteData(
        train=LabeledImages("bar-train", list(CLASSES), splits["train"]),
        val=None,
        eval_sets=[SuiteSet(LabeledImages("bar-test", list(CLASSES), splits["test"]), "ood")],
        classnames=dict(ACTIONS),
        notes=_notes(splits),
    )


SUITES = [Suite(INFO, read)]
