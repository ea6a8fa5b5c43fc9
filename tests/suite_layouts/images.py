"""Tiny images for the miniature suites: a flat colour per (class, index), so that each file is distinct."""

from __future__ import annotations

from pathlib import Path

from PIL import Image


def tiny_image(path: Path, seed: int, size: int = 8) -> Path:
    """An RGB image of `size` px at `path` (format from the suffix: .jpg, .png, ...), its colour from `seed`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = ((seed * 67) % 256, (seed * 131) % 256, (seed * 29) % 256)
    Image.new("RGB", (size, size), colour).save(path)
    return path
