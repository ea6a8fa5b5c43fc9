"""NICO++'s domain-generalisation track as the challenge ships it: track_1/public_dg_0416/train/<domain>/<class>/
with the six common domains and 60 classes, class folders named with spaces ('hot air balloon'); 1 image per class
and domain (360 images)."""

from __future__ import annotations

from pathlib import Path

from data.suites.nico import PLUS_CLASSES, PLUS_DOMAINS
from tests.suite_layouts.images import tiny_image

TRAIN = Path("track_1/public_dg_0416/train")


def make(root: Path) -> Path:
    for d, domain in enumerate(PLUS_DOMAINS):
        for c, name in enumerate(PLUS_CLASSES):
            tiny_image(root / TRAIN / domain / name.replace("_", " ") / f"{domain}_{c:03d}.jpg", seed=100 * d + c)
    return root
