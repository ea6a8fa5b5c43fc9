"""PACS (Li et al., ICCV 2017): 7 classes in 4 domains, read leave-one-domain-out.

The authors' release: images under kfold/<domain>/<class>/ and the split files <domain>_{train,crossval,test}_kfold.txt
(lines 'art_painting/dog/pic_001.jpg 1', labels from 1) beside kfold/ or in splits/ (Dassl keeps the images in
images/ instead). `pacs/<domain>:ROOT`: that domain is the OOD target (all its images); the other three are ID,
trained on their train splits and validated on their crossval splits, as ProReg and DomainBed use PACS. A copy
without split files (DomainBed's <domain>/<class>/ folders) trains on all images of the three domains and holds out
a fraction for validation.
"""

from __future__ import annotations

from pathlib import Path

from data.labeled import IMAGE_EXTENSIONS, LabeledImages, Sample
from data.suites.base import (
    MissingSuiteData,
    Suite,
    SuiteData,
    SuiteInfo,
    SuiteSet,
    missing_counts,
    missing_data,
    read_split_lines,
    refuse_absent,
    require,
)

DOMAINS = ("art_painting", "cartoon", "photo", "sketch")
CLASSES = ("dog", "elephant", "giraffe", "guitar", "horse", "house", "person")
IMAGES = {"art_painting": 2048, "cartoon": 2344, "photo": 1670, "sketch": 3929}  # per domain, all splits together
INFO = SuiteInfo(
    name="pacs",
    title="PACS (Li et al., ICCV 2017)",
    published="https://domaingeneralization.github.io/#data",
    layout="ROOT/kfold/<domain>/<class>/*.jpg (or ROOT/images/, or ROOT/<domain>/) and <domain>_{train,crossval,"
    "test}_kfold.txt in ROOT or ROOT/splits; domains art_painting, cartoon, photo, sketch",
    roles="VARIANT is the held-out target domain (OOD); the other three domains are ID (train split; crossval split "
    "for validation; test split as the ID test)",
    classes=len(CLASSES),
    variants=DOMAINS,
    default_variant="sketch",
    templates=("a photo of a {}.",),  # ProReg's prompt
)


def _image_root(root: Path) -> Path:
    for sub in ("kfold", "images"):
        if (root / sub).is_dir():
            return root / sub
    if all((root / d).is_dir() for d in DOMAINS):
        return root
    raise missing_data(
        INFO, f"the image folder kfold/ not found (looked in {root} for kfold/, images/ and the four domain folders)"
    )


def _split_file(root: Path, domain: str, split: str) -> Path | None:
    for folder in (root, root / "splits", root / "image_list"):
        path = folder / f"{domain}_{split}_kfold.txt"
        if path.is_file():
            return path
    return None


def _split(images: Path, path: Path, name: str, domain: str) -> LabeledImages:
    samples: list[Sample] = []
    absent: list[Path] = []
    for fields in read_split_lines(path, INFO):
        label = int(fields[1]) - 1
        if not 0 <= label < len(CLASSES):
            raise MissingSuiteData(f"{path}: label {fields[1]} outside 1..{len(CLASSES)} ({fields[0]})")
        file = images / fields[0]
        if file.is_file():
            samples.append(Sample(file, label, domain))
        else:
            absent.append(file)
    refuse_absent(INFO, path, len(samples) + len(absent), absent)
    return LabeledImages(name, list(CLASSES), samples)


def _folder(images: Path, domain: str) -> LabeledImages:
    require(images / domain, f"domain folder {domain}/", INFO)
    samples = [
        Sample(path, label, domain)
        for label, name in enumerate(CLASSES)
        for path in sorted((images / domain / name).glob("*"))
        if path.suffix.lower() in IMAGE_EXTENSIONS
    ]
    return LabeledImages(domain, list(CLASSES), samples)


def _join(name: str, parts: list[LabeledImages]) -> LabeledImages:
    return LabeledImages(name, list(CLASSES), [s for part in parts for s in part.samples])


def read(root: Path, target: str | None) -> SuiteData:
    assert target is not None  # PACS has a default variant
    images = _image_root(root)
    sources = [d for d in DOMAINS if d != target]
    with_splits = all(_split_file(root, d, "train") for d in DOMAINS)
    if with_splits:
        split = {
            (d, s): _split(images, _split_file(root, d, s) or root / f"{d}_{s}_kfold.txt", f"{d}-{s}", d)
            for d in DOMAINS
            for s in ("train", "crossval", "test")
        }
        train = _join("pacs-train", [split[d, "train"] for d in sources])
        val = _join("pacs-val", [split[d, "crossval"] for d in sources])
        id_test = _join("pacs-id-test", [split[d, "test"] for d in sources])
        target_all = _join(target, [split[target, s] for s in ("train", "crossval", "test")])
        found = {d: sum(len(split[d, s].samples) for s in ("train", "crossval", "test")) for d in DOMAINS}
        eval_sets = [SuiteSet(id_test, "id"), SuiteSet(target_all, "ood")]
    else:
        folders = {d: _folder(images, d) for d in DOMAINS}
        train, val = _join("pacs-train", [folders[d] for d in sources]), None
        found = {d: len(folders[d].samples) for d in DOMAINS}
        eval_sets = [SuiteSet(folders[target], "ood")]
    return SuiteData(
        train=train,
        val=val,
        eval_sets=eval_sets,
        classnames={c: c for c in CLASSES},
        notes=missing_counts(IMAGES, found),
    )


SUITES = [Suite(INFO, read)]
