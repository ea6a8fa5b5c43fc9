"""Office-Home (Venkateswara et al., CVPR 2017, "Deep Hashing Network for Unsupervised Domain Adaptation"): 65
classes of office and home objects in 4 domains, read leave-one-domain-out.

As its authors distribute it (https://www.hemanthdv.org/officeHomeDataset.html, the zip OfficeHomeDataset_10072016):
<domain>/<class>/*.jpg with the domains Art, Clipart, Product and "Real World" (a space; copies that renamed it
Real_World are read too). ROOT is that folder or the one holding it. There are no official split files, so the suite
follows DomainBed's leave-one-domain-out protocol, as pacs does without split files: `officehome/<domain>:ROOT` holds
out that domain as the OOD target (all its images); the other three are ID and trained on (a fraction held out for
validation). Variants are the lower-case domain names art, clipart, product, real_world. The default is clipart: a
drawn domain held out from source domains that include the photographic Product and Real World, as pacs holds out
sketch by default. ProReg's paper does not use Office-Home.

The class order is the sorted class folder names (DomainBed's ImageFolder order), `CLASSES`: the 65 folder names, the
same as the authors' list of categories. A class folder not among them is an error (another dataset); a class without
images in the three ID domains is left out of the model's classes and of the OOD set, with a note, and fewer images
than published is a note per domain.
"""

from __future__ import annotations

from pathlib import Path

from data.labeled import DataError, LabeledImages, Sample
from data.suites.base import Suite, SuiteData, SuiteInfo, SuiteSet, keep_labels, missing_counts, missing_data

DOMAINS = {"art": "Art", "clipart": "Clipart", "product": "Product", "real_world": "Real World"}  # variant -> folder
ZIP_FOLDER = "OfficeHomeDataset_10072016"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
# The class folders, sorted (label i is CLASSES[i]); no spaces in them.
CLASSES = tuple(
    """
Alarm_Clock Backpack Batteries Bed Bike Bottle Bucket Calculator Calendar Candles Chair Clipboards Computer Couch
Curtains Desk_Lamp Drill Eraser Exit_Sign Fan File_Cabinet Flipflops Flowers Folder Fork Glasses Hammer Helmet
Kettle Keyboard Knives Lamp_Shade Laptop Marker Monitor Mop Mouse Mug Notebook Oven Pan Paper_Clip Pen Pencil
Postit_Notes Printer Push_Pin Radio Refrigerator Ruler Scissors Screwdriver Shelf Sink Sneakers Soda Speaker Spoon
TV Table Telephone ToothBrush Toys Trash_Can Webcam
""".split()
)
IMAGES = {"Art": 2427, "Clipart": 4365, "Product": 4439, "Real World": 4357}  # per domain
INFO = SuiteInfo(
    name="officehome",
    title="Office-Home (Venkateswara et al., CVPR 2017)",
    published="https://www.hemanthdv.org/officeHomeDataset.html",
    layout=f"ROOT/{{Art,Clipart,Product,Real World}}/<class>/*.jpg, ROOT being {ZIP_FOLDER} or the folder holding it "
    "(Real_World is read too); 65 class folders",
    roles="VARIANT (art, clipart, product, real_world) is the held-out target domain (OOD, all its images); the other "
    "three domains are ID (trained on, a fraction held out for validation)",
    classes=len(CLASSES),
    variants=tuple(DOMAINS),
    default_variant="clipart",
    templates=("a photo of a {}.",),
)


def _domain_folder(images: Path, domain: str) -> Path | None:
    folder = DOMAINS[domain]
    for name in (folder, folder.replace(" ", "_")):
        if (images / name).is_dir():
            return images / name
    return None


def _image_root(root: Path) -> Path:
    for images in (root, root / ZIP_FOLDER):
        if any(_domain_folder(images, d) for d in DOMAINS):
            return images
    raise missing_data(
        INFO,
        f"the domain folders not found (looked in {root} and {root / ZIP_FOLDER} for Art/, Clipart/, Product/, "
        "Real World/)",
    )


def _domain(images: Path, domain: str) -> LabeledImages:
    """One domain's images, labelled in `CLASSES` order; a folder that is not a class is an error."""
    folder = _domain_folder(images, domain)
    if folder is None:
        raise missing_data(INFO, f"domain folder {DOMAINS[domain]}/ not found (looked in {images})")
    unknown = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name not in CLASSES)
    if unknown:
        raise DataError(
            f"{folder}: {len(unknown)} folder(s) that are not Office-Home classes (first: {unknown[0]}/); is this "
            "Office-Home?"
        )
    samples = [
        Sample(path, label, domain)
        for label, name in enumerate(CLASSES)
        for path in sorted((folder / name).glob("*"))
        if path.suffix.lower() in IMAGE_SUFFIXES
    ]
    return LabeledImages(domain, list(CLASSES), samples)


def read(root: Path, target: str | None) -> SuiteData:
    assert target is not None  # Office-Home has a default variant
    images = _image_root(root)
    domains = {d: _domain(images, d) for d in DOMAINS}
    sources = [domains[d] for d in DOMAINS if d != target]
    notes = missing_counts(IMAGES, {DOMAINS[d]: len(data.samples) for d, data in domains.items()})
    labels = sorted({s.label for part in sources for s in part.samples})
    if len(labels) < len(CLASSES):
        notes.append(f"classes: {len(labels)} of {len(CLASSES)} with images in the ID domains (the model gets those)")
    return SuiteData(
        train=keep_labels("officehome-train", sources, labels, notes),
        val=None,
        eval_sets=[SuiteSet(keep_labels(f"officehome-{target}", [domains[target]], labels, notes), "ood")],
        classnames={CLASSES[label]: CLASSES[label].replace("_", " ").lower() for label in labels},
        notes=notes,
    )


SUITES = [Suite(INFO, read)]
