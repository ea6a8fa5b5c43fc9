"""Waterbirds (Sagawa et al., "Distributionally Robust Neural Networks", ICLR 2020): landbird vs waterbird, with
the background (land or water) spuriously tied to the class in training.

The release waterbird_complete95_forest2water2/ holds <nnn>.<Species>/<image>.jpg and metadata.csv with the columns
img_id,img_filename,y,split,place,place_filename: y 0 landbird / 1 waterbird, place 0 land / 1 water, split 0 train
/ 1 val / 2 test. ROOT is that folder (or the folder holding it). Training is ERM on split 0 (95% of each class on its
own background); split 1 is the suite's validation set. Split 2 is the evaluation set and is OOD: there every class
is half on land and half on water, so the training correlation is broken. Its samples carry the four (class, place)
groups ("landbird_on_land", ..., "waterbird_on_water"), so a report gives the average accuracy and the worst-group
accuracy, the two numbers the field reports for Waterbirds (its "average" is sometimes re-weighted by the training
group sizes; ours is the plain mean over test images).
"""

from __future__ import annotations

import csv
from pathlib import Path

from data.labeled import LabeledImages, Sample
from data.suites.base import (
    MissingSuiteData,
    Suite,
    SuiteData,
    SuiteInfo,
    SuiteSet,
    missing_counts,
    missing_data,
    refuse_absent,
)

FOLDER = "waterbird_complete95_forest2water2"
CLASSES = ("landbird", "waterbird")  # y = 0, 1
PLACES = ("land", "water")  # place = 0, 1
SPLITS = ("train", "val", "test")  # split = 0, 1, 2
COLUMNS = ("img_id", "img_filename", "y", "split", "place", "place_filename")
IMAGES = {"train": 4795, "val": 1199, "test": 5794}  # rows of the released metadata.csv per split
INFO = SuiteInfo(
    name="waterbirds",
    title="Waterbirds (Sagawa et al., ICLR 2020)",
    published="https://nlp.stanford.edu/data/dro/waterbird_complete95_forest2water2.tar.gz "
    "(github.com/kohpangwei/group_DRO)",
    layout=f"ROOT (or ROOT/{FOLDER}) with metadata.csv (img_id,img_filename,y,split,place,place_filename) and the "
    "<nnn>.<Species>/*.jpg folders it names",
    roles="train = split 0 (ID, background tied to class), val = split 1, test = split 2 (OOD: class and background "
    "decorrelated), groups (class, place) for worst-group accuracy",
    classes=len(CLASSES),
    templates=("a photo of a {}.",),  # the CLIP zero-shot prompt with the class names landbird / waterbird
)


def group_name(label: int, place: int) -> str:
    return f"{CLASSES[label]}_on_{PLACES[place]}"


def _dataset_root(root: Path) -> Path:
    if (root / "metadata.csv").is_file():
        return root
    if (root / FOLDER / "metadata.csv").is_file():
        return root / FOLDER
    looked = f"{root / 'metadata.csv'} and {root / FOLDER / 'metadata.csv'}"
    raise missing_data(INFO, f"metadata.csv not found (looked for {looked})")


def _row_fields(row: dict[str, str], line: int, path: Path) -> tuple[str, int, int, int]:
    """(img_filename, y, split, place) of one metadata row; a short or malformed row is an error naming its line."""
    try:
        fields = row["img_filename"], int(row["y"]), int(row["split"]), int(row["place"])
    except (TypeError, ValueError, KeyError):
        raise MissingSuiteData(
            f"{INFO.title}: {path} line {line} is truncated or malformed (expected {','.join(COLUMNS)}): "
            f"{','.join(v for v in row.values() if isinstance(v, str))}"
        ) from None
    if fields[1] not in (0, 1) or fields[2] not in (0, 1, 2) or fields[3] not in (0, 1):
        raise MissingSuiteData(f"{INFO.title}: {path} line {line}: y, split or place out of range ({fields[0]})")
    return fields


def _read_metadata(folder: Path) -> dict[str, list[Sample]]:
    """The samples of each split, in metadata order; files listed but absent are an error with their count."""
    path = folder / "metadata.csv"
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing_columns = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing_columns:
            raise MissingSuiteData(f"{INFO.title}: {path} lacks the column(s) {', '.join(missing_columns)}")
        rows = [_row_fields(row, line, path) for line, row in enumerate(reader, start=2)]
    splits: dict[str, list[Sample]] = {s: [] for s in SPLITS}
    absent: list[Path] = []
    for filename, label, split, place in rows:
        file = folder / filename
        if not file.is_file():
            absent.append(file)
        splits[SPLITS[split]].append(Sample(file, label, group_name(label, place)))
    refuse_absent(INFO, path, len(rows), absent)
    return splits


def read(root: Path, variant: str | None) -> SuiteData:
    splits = _read_metadata(_dataset_root(root))
    sets = {s: LabeledImages(f"waterbirds-{s}", list(CLASSES), splits[s]) for s in SPLITS}
    return SuiteData(
        train=sets["train"],
        val=sets["val"],
        eval_sets=[SuiteSet(sets["test"], "ood")],
        classnames={c: c for c in CLASSES},
        notes=missing_counts(IMAGES, {s: len(splits[s]) for s in SPLITS}),
    )


SUITES = [Suite(INFO, read)]
