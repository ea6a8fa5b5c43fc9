"""A small procedural world of captioned images: shapes with a color, a background and a style.

Everything is drawn from a seed, so the pretraining corpus and the benchmark are reproducible bit for bit.
Images are rendered at twice the target size and downsampled, which gives anti-aliased edges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SHAPES = ("circle", "square", "triangle", "star", "cross", "hexagon")
COLORS = {
    "red": (215, 40, 40),
    "green": (40, 170, 60),
    "blue": (45, 85, 215),
    "yellow": (235, 205, 40),
    "purple": (140, 55, 180),
    "orange": (240, 130, 30),
}
# Each background is a base color and a texture; the names are what captions say.
BACKGROUNDS = {
    "grass": ((70, 120, 50), "blades"),
    "sand": ((210, 185, 135), "dots"),
    "water": ((60, 110, 160), "waves"),
    "brick": ((150, 70, 55), "bricks"),
    "snow": ((225, 230, 235), "speckle"),
    "night": ((25, 30, 60), "stars"),
}
STYLES = ("photo", "sketch")


@dataclass(frozen=True)
class Scene:
    """What one image shows; `corrupt` marks the corrupted-image test set."""

    shape: str
    color: str
    background: str
    style: str = "photo"
    corrupt: bool = False


def _shape_points(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    def ring(n: int, radius_of) -> list[tuple[float, float]]:
        return [
            (
                cx + radius_of(i) * math.cos(angle + 2 * math.pi * i / n),
                cy + radius_of(i) * math.sin(angle + 2 * math.pi * i / n),
            )
            for i in range(n)
        ]

    if shape == "square":
        return ring(4, lambda i: r)
    if shape == "triangle":
        return ring(3, lambda i: r * 1.1)
    if shape == "hexagon":
        return ring(6, lambda i: r)
    if shape == "star":
        return ring(10, lambda i: r * (1.15 if i % 2 == 0 else 0.45))
    if shape == "cross":
        a, b = r, r * 0.36
        base = [
            (-b, -a),
            (b, -a),
            (b, -b),
            (a, -b),
            (a, b),
            (b, b),
            (b, a),
            (-b, a),
            (-b, b),
            (-a, b),
            (-a, -b),
            (-b, -b),
        ]
        c, s = math.cos(angle), math.sin(angle)
        return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in base]
    raise ValueError(f"unknown shape {shape!r}")


def _texture(
    draw: ImageDraw.ImageDraw, kind: str, base: tuple[int, int, int], size: int, rng: np.random.Generator
) -> None:
    def shade(delta: int) -> tuple[int, int, int]:
        return tuple(int(np.clip(c + delta, 0, 255)) for c in base)  # type: ignore[return-value]

    if kind == "blades":
        for _ in range(size // 2):
            x, y = rng.uniform(0, size, 2)
            draw.line(
                [(x, y), (x + rng.uniform(-3, 3), y - rng.uniform(6, 14))],
                fill=shade(int(rng.integers(-30, 40))),
                width=2,
            )
    elif kind == "dots":
        for _ in range(size // 2):
            x, y = rng.uniform(0, size, 2)
            draw.ellipse([x, y, x + 3, y + 3], fill=shade(int(rng.integers(-45, -10))))
    elif kind == "waves":
        phase = rng.uniform(0, 2 * math.pi)
        for y0 in range(0, size, 10):
            pts = [(x, y0 + 3 * math.sin(x / 7 + phase + y0)) for x in range(0, size + 4, 4)]
            draw.line(pts, fill=shade(45), width=2)
    elif kind == "bricks":
        for row, y0 in enumerate(range(0, size, 16)):
            draw.line([(0, y0), (size, y0)], fill=shade(60), width=2)
            for x0 in range(-16 + 12 * (row % 2), size, 24):
                draw.line([(x0, y0), (x0, y0 + 16)], fill=shade(60), width=2)
    elif kind == "speckle":
        for _ in range(size):
            x, y = rng.uniform(0, size, 2)
            draw.point((x, y), fill=shade(int(rng.integers(-40, -10))))
    elif kind == "stars":
        for _ in range(size // 6):
            x, y = rng.uniform(0, size, 2)
            draw.ellipse([x, y, x + 2, y + 2], fill=(230, 230, 200))


def _corrupt(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """One of the ImageNet-C style corruptions: noise, blur or low contrast, at a fixed middling severity."""
    kind = int(rng.integers(3))
    arr: np.ndarray = np.asarray(img).astype(np.float32)
    if kind == 0:
        arr = arr + rng.normal(0, 40, arr.shape)
    elif kind == 1:
        arr = np.asarray(img.filter(ImageFilter.GaussianBlur(radius=1.6))).astype(np.float32)
    else:
        arr = (arr - arr.mean()) * 0.35 + arr.mean()
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def render(scene: Scene, size: int, rng: np.random.Generator) -> Image.Image:
    """Draws one scene as an RGB image of `size` x `size` pixels."""
    big = size * 2
    base, texture = BACKGROUNDS[scene.background]
    img = Image.new("RGB", (big, big), base)
    draw = ImageDraw.Draw(img)
    _texture(draw, texture, base, big, rng)
    r = big * rng.uniform(0.18, 0.32)
    cx, cy = rng.uniform(r + 4, big - r - 4, 2)
    angle = rng.uniform(0, 2 * math.pi)
    fill = tuple(int(np.clip(c + rng.integers(-25, 26), 0, 255)) for c in COLORS[scene.color])
    if scene.style == "sketch":
        # A pencil drawing: the scene in gray on paper, the shape as a dark outline.
        img = Image.fromarray((255 - 0.35 * (255 - np.asarray(img.convert("L")))).astype(np.uint8)).convert("RGB")
        draw = ImageDraw.Draw(img)
        outline, width = (40, 40, 40), 3
        if scene.shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=outline, width=width)
        else:
            pts = _shape_points(scene.shape, cx, cy, r, angle)
            draw.line(pts + [pts[0]], fill=outline, width=width, joint="curve")
    elif scene.shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)  # type: ignore[arg-type]
    else:
        draw.polygon(_shape_points(scene.shape, cx, cy, r, angle), fill=fill)  # type: ignore[arg-type]
    img = img.resize((size, size), Image.Resampling.BILINEAR)
    return _corrupt(img, rng) if scene.corrupt else img


def caption(scene: Scene, rng: np.random.Generator) -> str:
    """A caption for pretraining. Many name only style and shape, so shape words get a strong signal of their own."""
    noun = "sketch" if scene.style == "sketch" else "photo"
    form = rng.random()
    if form < 0.4:
        return f"a {noun} of a {scene.shape}"
    if scene.style == "sketch":
        return f"a {noun} of a {scene.shape} on {scene.background}"
    if form < 0.55:
        return f"a {noun} of a {scene.color} {scene.shape}"
    if form < 0.7:
        return f"a {noun} of a {scene.shape} on {scene.background}"
    return f"a {noun} of a {scene.color} {scene.shape} on {scene.background}"


def random_scene(rng: np.random.Generator, sketch_fraction: float = 0.3, corrupt_fraction: float = 0.0) -> Scene:
    """A scene with every attribute drawn independently: the unbiased world the pretrained model sees.

    Like web images, some are noisy, blurred or washed out (`corrupt_fraction`); their captions do not say so.
    """
    return Scene(
        shape=SHAPES[rng.integers(len(SHAPES))],
        color=list(COLORS)[rng.integers(len(COLORS))],
        background=list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))],
        style="sketch" if rng.random() < sketch_fraction else "photo",
        corrupt=bool(rng.random() < corrupt_fraction),
    )
