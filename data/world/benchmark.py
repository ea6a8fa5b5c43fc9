"""The built-in benchmark (a suite of splits): a shape-classification task whose training split is biased.

In the training, validation and ID test splits each shape sits on "its" background 90% of the time and every image
is a photo. The OOD splits break that: backgrounds independent of the class, pencil sketches, and corrupted photos.
Each image's group says whether its background is the one its class is tied to ("aligned") or not ("conflicting").

The held-out suite (HOLDOUT_SPLITS) is a second set of OOD splits, image shifts no method was compared or tuned on
(pixelated, inverted, occluded, JPEG-compressed photos), kept apart to confirm a recipe chosen on the main OOD splits.

The splits are written as CSV manifests plus PNG files, so the built-in data and users' data take the same code path.
They are generated on first use into a cache folder, keyed by the spec's hash, and written atomically.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from common.files import cache_root, no_space_named, share_like_umask, writable_dir
from data.world.scenes import BACKGROUNDS, COLORS, SHAPES, Scene, render
from data.world.shifts import SHIFTS, SHIFTS_VERSION, apply_shift

# Version 2: every evaluation split has 5,000 images (1,200 in version 1), so that a set's top-1 carries at most 0.5 pp
# of sampling error (at 85%: sqrt(0.85 x 0.15 / 5000) = 0.5 pp). A split's images are drawn in order from its own
# stream, so the first 1,200 are version 1's, and the training and validation splits are version 1's byte for byte.
BENCHMARK_VERSION = 2
DEFAULT_EVAL_IMAGES = 5000


def _eval_images() -> int:
    """Images per evaluation split: PROREG_CLIP_EVAL_IMAGES, else 5,000. Fewer make a quicker, noisier benchmark (the
    test suite takes 1,200, version 1's size); the count is part of the cache folder's hash, so sizes never mix."""
    text = os.environ.get("PROREG_CLIP_EVAL_IMAGES", "")
    if text.isdigit() and int(text) > 0:
        return int(text)
    if text:
        logging.getLogger(__name__).warning(f"PROREG_CLIP_EVAL_IMAGES={text!r} is not a positive count: using 5000")
    return DEFAULT_EVAL_IMAGES


EVAL_IMAGES = _eval_images()
PARALLEL_FROM = 5000  # images in a suite from which it is drawn in several processes
IMAGE_SIZE = 64
# Shape i is tied to background i in the biased splits.
SPURIOUS_BACKGROUND = dict(zip(SHAPES, BACKGROUNDS, strict=False))


@dataclass(frozen=True)
class SplitSpec:
    """How one split is drawn. `bias` is P(background == the class's background); None means independent."""

    name: str
    role: str  # "train", "val", "id" or "ood"
    n: int
    bias: float | None
    style: str = "photo"
    corrupt: bool = False
    shift: str | None = None  # an image shift from data.world.shifts, applied after rendering
    # The split is drawn from rng stream (seed, stream + its position in the suite): suites with different streams
    # never share images.
    stream: int = 0

    def __post_init__(self) -> None:
        if self.shift is not None and self.shift not in SHIFTS:
            raise ValueError(f"split {self.name}: unknown image shift {self.shift!r} ({', '.join(SHIFTS)})")


# Fields added after the first benchmark version. At their defaults they are left out of the hash and of
# benchmark.json, so the splits that predate them keep their cache folder and their images byte for byte.
_LATER_FIELD_DEFAULTS = {"shift": None, "stream": 0}

SPLITS = (
    SplitSpec("train", "train", 3000, 0.9),
    SplitSpec("val", "val", 600, 0.9),
    SplitSpec("id_test", "id", EVAL_IMAGES, 0.9),
    SplitSpec("ood_background", "ood", EVAL_IMAGES, None),
    SplitSpec("ood_sketch", "ood", EVAL_IMAGES, None, style="sketch"),
    SplitSpec("ood_corrupt", "ood", EVAL_IMAGES, 0.9, corrupt=True),
)

HOLDOUT_STREAM = 100
HOLDOUT_SPLITS = (
    SplitSpec("holdout_pixelate", "ood", EVAL_IMAGES, None, shift="pixelate", stream=HOLDOUT_STREAM),
    # At the training bias, like ood_corrupt: the negative is the only change from the ID test.
    SplitSpec("holdout_invert", "ood", EVAL_IMAGES, 0.9, shift="invert", stream=HOLDOUT_STREAM),
    SplitSpec("holdout_occlude", "ood", EVAL_IMAGES, None, shift="occlude", stream=HOLDOUT_STREAM),
    SplitSpec("holdout_jpeg", "ood", EVAL_IMAGES, None, shift="jpeg", stream=HOLDOUT_STREAM),
)


def draw_scene(spec: SplitSpec, rng: np.random.Generator) -> Scene:
    shape = SHAPES[rng.integers(len(SHAPES))]
    tied = SPURIOUS_BACKGROUND[shape]
    others = [b for b in BACKGROUNDS if b != tied]
    if spec.bias is None:
        background = list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))]
    else:
        background = tied if rng.random() < spec.bias else others[rng.integers(len(others))]
    color = list(COLORS)[rng.integers(len(COLORS))]
    return Scene(shape, color, background, spec.style, spec.corrupt)


def group_of(scene: Scene) -> str:
    return "aligned" if SPURIOUS_BACKGROUND[scene.shape] == scene.background else "conflicting"


def draw_split(spec: SplitSpec, seed: int, position: int) -> Iterator[tuple[Scene, Image.Image]]:
    """The split's scenes and images in order; `position` is the split's index in its suite."""
    rng = np.random.default_rng([seed, spec.stream + position])
    for _ in range(spec.n):
        scene = draw_scene(spec, rng)
        image = render(scene, IMAGE_SIZE, rng)
        yield scene, apply_shift(image, spec.shift, rng) if spec.shift else image


def _write_split(root: Path, spec: SplitSpec, seed: int, index: int) -> None:
    (root / spec.name).mkdir(parents=True)
    with open(root / f"{spec.name}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "group", "color", "background"])
        for i, (scene, image) in enumerate(draw_split(spec, seed, index)):
            rel = f"{spec.name}/{i:05d}.png"
            image.save(root / rel)
            writer.writerow([rel, scene.shape, group_of(scene), scene.color, scene.background])


def _write_splits(root: Path, splits: tuple[SplitSpec, ...], seed: int) -> None:
    """Every split, drawn in worker processes (one per core, up to one per split) when there are many images: each
    split has its own stream, so the images do not depend on which process drew them."""
    workers = min(len(splits), os.cpu_count() or 1)
    if workers < 2 or sum(spec.n for spec in splits) < PARALLEL_FROM:
        for index, spec in enumerate(splits):
            _write_split(root, spec, seed, index)
        return
    # spawn: a fresh interpreter per worker, whatever threads the caller runs (torch's, a progress bar's)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        done = [pool.submit(_write_split, root, spec, seed, index) for index, spec in enumerate(splits)]
        for future in done:
            future.result()


def _spec_dict(spec: SplitSpec) -> dict[str, object]:
    out = {k: v for k, v in asdict(spec).items() if k not in _LATER_FIELD_DEFAULTS or v != _LATER_FIELD_DEFAULTS[k]}
    if spec.shift is not None:  # a change to how a shift draws must not reuse images cached by the old one
        out["shift_version"] = SHIFTS_VERSION
    return out


def _spec_hash(seed: int, splits: tuple[SplitSpec, ...]) -> str:
    blob = json.dumps({"v": BENCHMARK_VERSION, "seed": seed, "splits": [_spec_dict(s) for s in splits]}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def ensure_benchmark(seed: int = 0, splits: tuple[SplitSpec, ...] = SPLITS, root: Path | None = None) -> Path:
    """Returns the benchmark folder, generating it first if needed (SPLITS: about 20 s on 2 cores)."""
    target = (root or cache_root()) / f"benchmark-v{BENCHMARK_VERSION}-{_spec_hash(seed, splits)}"
    if (target / "benchmark.json").exists():
        return target
    writable_dir(target.parent, "cache folder (set PROREG_CACHE to move it)")
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    share_like_umask(tmp, directory=True)
    try:
        with no_space_named(target):
            _write_splits(tmp, splits, seed)
        (tmp / "classnames.txt").write_text("".join(f"{s}\n" for s in SHAPES))
        meta = {
            "version": BENCHMARK_VERSION,
            "seed": seed,
            "classes": list(SHAPES),
            "splits": [_spec_dict(s) for s in splits],
        }
        (tmp / "benchmark.json").write_text(json.dumps(meta, indent=2))
        try:
            tmp.rename(target)
        except OSError:  # another process finished first; theirs is identical
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def split_roles(root: Path) -> dict[str, str]:
    """Split name -> role, read from a generated benchmark folder."""
    meta = json.loads((root / "benchmark.json").read_text())
    return {s["name"]: s["role"] for s in meta["splits"]}
