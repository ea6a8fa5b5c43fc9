"""Office-Home as its authors ship it: OfficeHomeDataset_10072016/{Art,Clipart,Product,Real World}/<class>/*.jpg
(file names 00001.jpg, ...); three of the 65 classes (Alarm_Clock, TV, Webcam), two images per class and domain.
Returns the folder that holds OfficeHomeDataset_10072016/."""

from __future__ import annotations

from pathlib import Path

from data.suites.officehome import DOMAINS, ZIP_FOLDER
from tests.suite_layouts.images import tiny_image

CLASSES = ("Alarm_Clock", "TV", "Webcam")
PER_CLASS = 2


def make(root: Path) -> Path:
    for d, folder in enumerate(DOMAINS.values()):
        for c, name in enumerate(CLASSES):
            for i in range(1, PER_CLASS + 1):
                tiny_image(root / ZIP_FOLDER / folder / name / f"{i:05d}.jpg", seed=100 * d + 10 * c + i)
    return root
