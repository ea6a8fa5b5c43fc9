"""Image shifts of the held-out suite: changes to a rendered photo that no method in the project was tuned on.

Each shift takes the 64 px photo and the split's rng (drawing from it only if it needs randomness), so a split is
reproducible bit for bit. The shifts are applied after rendering and never reach the pretraining corpus.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageOps

PIXEL_BLOCK = 4  # 64 px -> 16 px -> 64 px
OCCLUDER_GREY = (128, 128, 128)
SHIFTS_VERSION = 2  # part of a shifted split's cache key: raise it whenever a shift changes
OCCLUDED_FRACTION = (0.15, 0.20)  # of the image, all occluders together (at 25-30% zero-shot was near chance)
OCCLUDERS = (2, 3)  # how many rectangles, inclusive
JPEG_QUALITY = 8


def pixelate(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Averages PIXEL_BLOCK x PIXEL_BLOCK blocks and scales back up with nearest neighbour: a mosaic."""
    small = img.resize((img.width // PIXEL_BLOCK, img.height // PIXEL_BLOCK), Image.Resampling.BOX)
    return small.resize(img.size, Image.Resampling.NEAREST)


def invert(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The colour negative."""
    return ImageOps.invert(img)


def jpeg(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Re-encoded as a JPEG at a very low quality: 8x8 block artefacts and colour bleeding."""
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def _occluder_boxes(width: int, height: int, rng: np.random.Generator) -> list[tuple[int, int, int, int]]:
    """2-3 rectangles (x0, y0, x1, y1) of random aspect whose areas add up to the target fraction."""
    count = int(rng.integers(OCCLUDERS[0], OCCLUDERS[1] + 1))
    total = rng.uniform(*OCCLUDED_FRACTION) * width * height
    shares = rng.dirichlet(np.full(count, 4.0))  # roughly equal parts, never a sliver
    boxes = []
    for share in shares:
        aspect = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))  # width / height
        box_w = int(np.clip(round(np.sqrt(share * total * aspect)), 1, width))
        box_h = int(np.clip(round(share * total / box_w), 1, height))
        x0, y0 = int(rng.integers(width - box_w + 1)), int(rng.integers(height - box_h + 1))
        boxes.append((x0, y0, x0 + box_w, y0 + box_h))
    return boxes


def occlusion_mask(width: int, height: int, rng: np.random.Generator, attempts: int = 1000) -> np.ndarray:
    """A [height, width] bool mask of 2-3 rectangles covering OCCLUDED_FRACTION of the image.

    Rectangles may overlap, which shrinks their union, and rounding may grow it: draws are repeated until the union is
    in range (a few draws at most, deterministic given the rng).
    """
    low, high = OCCLUDED_FRACTION
    for _ in range(attempts):
        mask = np.zeros((height, width), dtype=bool)
        for x0, y0, x1, y1 in _occluder_boxes(width, height, rng):
            mask[y0:y1, x0:x1] = True
        if low <= mask.mean() <= high:
            return mask
    raise RuntimeError(f"no occlusion covering {low:.0%}-{high:.0%} of a {width}x{height} image in {attempts} draws")


def occlude(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """2-3 mid-grey rectangles hiding 15-20% of the image (OCCLUDED_FRACTION), often part of the shape."""
    pixels = np.array(img.convert("RGB"))
    pixels[occlusion_mask(img.width, img.height, rng)] = OCCLUDER_GREY
    return Image.fromarray(pixels)


# Shift name (SplitSpec.shift) -> the function applying it.
SHIFTS: dict[str, Callable[[Image.Image, np.random.Generator], Image.Image]] = {
    "pixelate": pixelate,
    "invert": invert,
    "occlude": occlude,
    "jpeg": jpeg,
}


def apply_shift(img: Image.Image, shift: str, rng: np.random.Generator) -> Image.Image:
    """The image with the named shift applied."""
    if shift not in SHIFTS:
        raise ValueError(f"unknown image shift {shift!r} ({', '.join(SHIFTS)})")
    return SHIFTS[shift](img, rng)
