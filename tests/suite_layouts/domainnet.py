"""DomainNet as its authors ship it: <domain>/<class>/*.jpg and <domain>_{train,test}.txt in ROOT (lines
'clipart/aircraft_carrier/clipart_001_000018.jpg 0', labels from 0 in the split files' class order); all six domains,
four classes spread over the label range (0, 308, 327, 344), per class and domain two train images and one test."""

from __future__ import annotations

from pathlib import Path

from data.suites.domainnet import CLASSES, DOMAINS
from tests.suite_layouts.images import tiny_image

LABELS = (0, 308, 327, 344)  # aircraft_carrier, The_Eiffel_Tower, t-shirt, zigzag
PER_SPLIT = {"train": 2, "test": 1}


def make(root: Path) -> Path:
    for d, domain in enumerate(DOMAINS):
        lines: dict[str, list[str]] = {split: [] for split in PER_SPLIT}
        for label in LABELS:
            index = 0
            for split, n in PER_SPLIT.items():
                for _ in range(n):
                    index += 1
                    rel = f"{domain}/{CLASSES[label]}/{domain}_{label + 1:03d}_{index:06d}.jpg"
                    tiny_image(root / rel, seed=1000 * d + 3 * label + index)
                    lines[split].append(f"{rel} {label}")
        for split in PER_SPLIT:
            (root / f"{domain}_{split}.txt").write_text("\n".join(lines[split]) + "\n")
    return root
