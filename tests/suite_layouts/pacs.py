"""PACS as its authors ship it: kfold/<domain>/<class>/*.jpg and <domain>_{train,crossval,test}_kfold.txt beside
kfold/ (lines 'art_painting/dog/pic_001.jpg 1', labels from 1); 3 images per class and domain: one per split."""

from __future__ import annotations

from pathlib import Path

from data.suites.pacs import CLASSES, DOMAINS
from tests.suite_layouts.images import tiny_image

SPLITS = ("train", "crossval", "test")


def make(root: Path) -> Path:
    for d, domain in enumerate(DOMAINS):
        lines: dict[str, list[str]] = {s: [] for s in SPLITS}
        for c, name in enumerate(CLASSES):
            for i, split in enumerate(SPLITS):
                rel = f"{domain}/{name}/pic_{i:03d}.jpg"
                tiny_image(root / "kfold" / rel, seed=100 * d + 10 * c + i)
                lines[split].append(f"{rel} {c + 1}")
        for split in SPLITS:
            (root / f"{domain}_{split}_kfold.txt").write_text("\n".join(lines[split]) + "\n")
    return root
