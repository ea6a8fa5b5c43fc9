"""NICO (He, Shen and Cui, "Towards Non-I.I.D. Image Classification", 2021) and NICO++ (Zhang et al., CVPR 2023):
images labelled with a class and the context it appears in; ID and OOD differ by context.

`nico/animal:ROOT`, `nico/vehicle:ROOT` (ProReg's NICO-animal and NICO-vehicle): the release's
ROOT/Animal/<class>/<context>/*.jpg and ROOT/Vehicle/<class>/<context>/*.jpg (10 animal and 9 vehicle classes,
folder names matched without regard to case, spaces or underscores). ProReg trains on part of each class's contexts
and tests on contexts unseen in training; its split is in unreleased arrow files, so the split here is the one its
NICO setting follows, CaaM's (Wang et al., ICCV 2021, github.com/Wangt-CN/CaaM): 7 training contexts per animal
class (`ANIMAL_TRAIN_CONTEXTS`), every other context of the class OOD. CaaM publishes no vehicle list; for vehicles
the documented rule here is: a class's contexts ranked by image count (ties by name), the first min(7, n - 1) ID,
the rest OOD. All images of the ID contexts train (CaaM's long-tailed subsampling of them is not applied; a fraction
is held out for validation); the OOD set is every image of the unseen contexts, grouped by context, so the report
has the worst-context accuracy.

`nico-plus/<domain>:ROOT`: NICO++'s domain-generalisation track, train/<domain>/<class>/*.jpg with the six common
domains autumn, dim, grass, outdoor, rock, water and 60 classes (class folders named with spaces, e.g. 'hot air
balloon'), under ROOT, ROOT/train, or the challenge's ROOT/track_1/public_dg_0416/train. VARIANT is the held-out
domain (OOD, all its images); the other five are ID (trained on, a fraction held out for validation). Groups are
the domain. The challenge's test images carry no labels and are not read.
"""

from __future__ import annotations

from pathlib import Path

from data.labeled import IMAGE_EXTENSIONS, LabeledImages, Sample
from data.suites.base import MissingSuiteData, Suite, SuiteData, SuiteInfo, SuiteSet, missing_data, require

# CaaM's training contexts per NICO animal class (its configs' `training_dist`), in CaaM's order.
ANIMAL_TRAIN_CONTEXTS = {
    "bear": ("in_forest", "black", "brown", "eating_grass", "in_water", "lying", "on_snow"),
    "bird": ("on_ground", "in_hand", "on_branch", "flying", "eating", "on_grass", "standing"),
    "cat": ("on_snow", "at_home", "in_street", "walking", "in_river", "in_cage", "eating"),
    "cow": ("in_river", "lying", "standing", "eating", "in_forest", "on_grass", "on_snow"),
    "dog": ("on_grass", "in_water", "in_cage", "eating", "on_beach", "lying", "running"),
    "elephant": ("in_zoo", "in_circus", "in_forest", "in_river", "eating", "standing", "on_grass"),
    "horse": ("on_beach", "aside_people", "running", "lying", "on_grass", "on_snow", "in_forest"),
    "monkey": ("sitting", "walking", "in_water", "on_snow", "in_forest", "eating", "on_grass"),
    "rat": ("at_home", "in_hole", "in_cage", "in_forest", "in_water", "on_grass", "eating"),
    "sheep": ("eating", "on_road", "walking", "on_snow", "on_grass", "lying", "in_forest"),
}
NICO_CLASSES = {
    "animal": tuple(ANIMAL_TRAIN_CONTEXTS),
    "vehicle": ("airplane", "bicycle", "boat", "bus", "car", "helicopter", "motorcycle", "train", "truck"),
}
VEHICLE_ID_CONTEXTS = 7  # as many ID contexts per class as CaaM gives each animal class
NICO_INFO = SuiteInfo(
    name="nico",
    title="NICO (He et al., 2021)",
    published="https://nico.thumedialab.com (NICO.zip)",
    layout="ROOT/Animal/<class>/<context>/*.jpg and ROOT/Vehicle/<class>/<context>/*.jpg",
    roles="VARIANT animal|vehicle; ID = each class's training contexts (CaaM's 7 for animals; the 7 largest, at most "
    "n-1, for vehicles), OOD = its other contexts; groups = context",
    classes=len(NICO_CLASSES["animal"]),  # 10 animal classes (vehicle: 9)
    variants=("animal", "vehicle"),
    templates=("this is a {}.",),  # ProReg's released NICO configs prompt "this is" + class name
)

PLUS_DOMAINS = ("autumn", "dim", "grass", "outdoor", "rock", "water")
# NICO++ DG track classes in the order of the challenge's dg_label_id_mapping.json
PLUS_CLASSES = (
    "car", "flower", "chair", "truck", "tiger", "wheat", "seal", "wolf", "lion", "dolphin", "lifeboat", "corn",
    "fishing_rod", "owl", "sunflower", "cow", "bird", "clock", "shrimp", "goose", "airplane", "rabbit",
    "hot_air_balloon", "lizard", "hat", "spider", "motorcycle", "tortoise", "dog", "crocodile", "elephant", "gun",
    "fox", "bus", "cat", "sailboat", "giraffe", "cactus", "pumpkin", "train", "ship", "helicopter", "bicycle",
    "racket", "squirrel", "bear", "scooter", "mailbox", "horse", "pineapple", "frog", "football", "ostrich", "tent",
    "kangaroo", "monkey", "crab", "sheep", "butterfly", "umbrella",
)  # fmt: skip
PLUS_INFO = SuiteInfo(
    name="nico-plus",
    title="NICO++ (Zhang et al., CVPR 2023)",
    published="https://github.com/xxgege/NICO-plus (DG track: track_1/public_dg_0416)",
    layout="ROOT[/track_1/public_dg_0416][/train]/<domain>/<class>/*.jpg; domains autumn, dim, grass, outdoor, rock, "
    "water; 60 classes",
    roles="VARIANT is the held-out domain (OOD, all its images); the other five domains are ID; groups = domain",
    classes=len(PLUS_CLASSES),
    variants=PLUS_DOMAINS,
    templates=("a photo of a {}.",),
)


def _key(name: str) -> str:
    """A folder name as the tables here spell it: 'On Grass' -> 'on_grass'."""
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def _subfolders(folder: Path) -> dict[str, Path]:
    return {_key(p.name): p for p in sorted(folder.iterdir()) if p.is_dir()}


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def _nico_superclass(root: Path, superclass: str) -> Path:
    """ROOT/Animal (or animals, any case); ROOT itself when it already holds the class folders."""
    found = _subfolders(root)
    for name in (superclass, f"{superclass}s"):
        if name in found:
            return found[name]
    if all(c in found for c in NICO_CLASSES[superclass]):
        return root
    return require(root / superclass.capitalize(), f"the {superclass.capitalize()}/ folder", NICO_INFO)


def _id_contexts(superclass: str, name: str, contexts: dict[str, list[Path]]) -> tuple[list[str], list[str]]:
    """(the ID contexts of a class that are present, the listed ones that are missing)."""
    if superclass == "animal":
        listed = ANIMAL_TRAIN_CONTEXTS[name]
        return [c for c in listed if c in contexts], [c for c in listed if c not in contexts]
    ranked = sorted(contexts, key=lambda c: (-len(contexts[c]), c))
    return ranked[: min(VEHICLE_ID_CONTEXTS, len(ranked) - 1)], []


def read_nico(root: Path, superclass: str | None) -> SuiteData:
    assert superclass is not None  # the registry names a variant (NICO has no default)
    folder = _nico_superclass(root, superclass)
    classes = NICO_CLASSES[superclass]
    class_dirs = _subfolders(folder)
    train: list[Sample] = []
    ood: list[Sample] = []
    notes: list[str] = []
    for label, name in enumerate(classes):
        class_dir = require(class_dirs.get(name, folder / name), f"class folder {name}/", NICO_INFO)
        contexts = {c: _images(d) for c, d in _subfolders(class_dir).items()}
        id_contexts, missing = _id_contexts(superclass, name, contexts)
        notes += [f"{name}/{c}: missing (a training context)" for c in missing]
        if not id_contexts or len(id_contexts) == len(contexts):
            raise MissingSuiteData(
                f"{NICO_INFO.title}: {class_dir} has {len(contexts)} context folder(s), {len(id_contexts)} of them "
                "training contexts; a class needs both training and unseen contexts"
            )
        for context, files in contexts.items():
            (train if context in id_contexts else ood).extend(Sample(f, label, context) for f in files)
    return SuiteData(
        train=LabeledImages(f"nico-{superclass}-train", list(classes), train),
        val=None,
        eval_sets=[SuiteSet(LabeledImages(f"nico-{superclass}-ood", list(classes), ood), "ood")],
        classnames={c: c for c in classes},
        notes=notes,
    )


def _plus_image_root(root: Path) -> Path:
    folders = [root, root / "train", root / "track_1" / "public_dg_0416" / "train", root / "public_dg_0416" / "train"]
    for folder in folders:
        if any((folder / d).is_dir() for d in PLUS_DOMAINS):
            return folder
    looked = ", ".join(map(str, folders))
    raise missing_data(PLUS_INFO, f"no domain folder ({', '.join(PLUS_DOMAINS)}) found in any of {looked}")


def _plus_domain(images: Path, domain: str) -> tuple[list[Sample], int]:
    """The domain's samples and how many of the 60 class folders it has."""
    class_dirs = _subfolders(require(images / domain, f"domain folder {domain}/", PLUS_INFO))
    samples = [
        Sample(f, label, domain)
        for label, name in enumerate(PLUS_CLASSES)
        if name in class_dirs
        for f in _images(class_dirs[name])
    ]
    return samples, sum(name in class_dirs for name in PLUS_CLASSES)


def read_nico_plus(root: Path, target: str | None) -> SuiteData:
    assert target is not None  # the registry names a variant (NICO++ has no default)
    images = _plus_image_root(root)
    domains = {d: _plus_domain(images, d) for d in PLUS_DOMAINS}
    train = [s for d in PLUS_DOMAINS if d != target for s in domains[d][0]]
    notes = [f"{d}: {n} of {len(PLUS_CLASSES)} classes" for d, (_, n) in domains.items() if n < len(PLUS_CLASSES)]
    return SuiteData(
        train=LabeledImages("nico-plus-train", list(PLUS_CLASSES), train),
        val=None,
        eval_sets=[SuiteSet(LabeledImages(target, list(PLUS_CLASSES), domains[target][0]), "ood")],
        classnames={c: c.replace("_", " ") for c in PLUS_CLASSES},
        notes=notes,
    )


SUITES = [Suite(NICO_INFO, read_nico), Suite(PLUS_INFO, read_nico_plus)]
