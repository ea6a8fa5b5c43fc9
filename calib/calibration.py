"""Calibration images: a deterministic, class-stratified sample, preprocessed as the artifact's metadata says.

The preprocessed tensor is cached on disk (keyed by the images, the preprocessing, the size and the seed), so
repeated exports do not decode the same images again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from pathlib import Path

import numpy as np
import torch

from common.artifact import ClassifierMeta
from common.errors import NoSpaceError
from common.files import cache_root, staged_file
from data.images import stored_file
from data.labeled import DataError, LabeledImages, Sample
from data.loading import read_batch
from data.samples import indices_by_class
from data.transforms import eval_transform, train_transform

log = logging.getLogger(__name__)
MIN_IMAGES = 16  # fewer images give activation ranges that depend on which ones were drawn


def stratified_sample(data: LabeledImages, n: int, seed: int) -> list[Sample]:
    """`n` samples spread evenly over the classes (round robin over per-class shuffles), the same for a seed."""
    rng = random.Random(seed)
    per_class = indices_by_class(data.samples, len(data.classes))
    missing = [data.classes[c] for c, members in enumerate(per_class) if not members]
    if missing:
        raise DataError(f"calibration set {data.name!r} has no images of class(es): {', '.join(missing)}")
    for members in per_class:
        rng.shuffle(members)
    picked: list[int] = []
    depth = 0
    while len(picked) < n and any(depth < len(m) for m in per_class):
        picked += [m[depth] for m in per_class if depth < len(m)][: n - len(picked)]
        depth += 1
    return [data.samples[i] for i in picked]


def _cache_key(samples: list[Sample], meta: ClassifierMeta, seed: int, augment: bool) -> str:
    files = [stored_file(s.path) for s in samples]  # a CIFAR record's batch file
    stamp = [(str(s.path), f.stat().st_mtime_ns if f.exists() else 0) for s, f in zip(samples, files, strict=True)]
    key = {"images": stamp, "preprocess": meta.preprocess, "seed": seed, "augment": augment}
    blob = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def calibration_images(
    data: LabeledImages, meta: ClassifierMeta, n: int = 300, seed: int = 0, augment: bool = False
) -> np.ndarray:
    """[n, 3, H, W] float32 calibration batch from `data`, cached under the cache root."""
    samples = stratified_sample(data, n, seed)
    if len(samples) < MIN_IMAGES:
        raise DataError(f"calibration set {data.name!r} has {len(samples)} images; at least {MIN_IMAGES} are needed")
    path = cache_root() / "calibration" / f"{_cache_key(samples, meta, seed, augment)}.npy"
    if path.exists():
        return np.load(path)
    transform = train_transform(meta.preprocess, "randaugment") if augment else eval_transform(meta.preprocess)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # RandAugment draws from torch's generator
        batch = read_batch(LabeledImages(data.name, data.classes, samples), transform)
    if len(batch.labels) < MIN_IMAGES:
        raise DataError(f"calibration set {data.name!r}: only {len(batch.labels)} readable images")
    images = batch.images.numpy().astype(np.float32)
    try:
        with staged_file(path, ".npy") as tmp:
            np.save(tmp, images)
    except (OSError, NoSpaceError) as err:  # a read-only or full cache costs the next export a decode, nothing more
        log.warning(f"calibration images not cached in {path.parent}: {getattr(err, 'strerror', None) or err}")
    return images


def load_calibration_array(path: Path, meta: ClassifierMeta) -> np.ndarray:
    """A pre-made calibration tensor (.npy), checked against the model's input shape."""
    if not Path(path).is_file():
        raise DataError(f"no such calibration array: {path}")
    try:
        images = np.load(path)  # allow_pickle stays False: a .npy that holds objects is refused, never executed
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"cannot read calibration array {path}: {err}") from err
    if not isinstance(images, np.ndarray) or not np.issubdtype(images.dtype, np.floating):
        raise DataError(f"calibration array {path} must hold floating-point images [N, 3, H, W]")
    size = meta.image_size
    if images.ndim != 4 or images.shape[1:] != (3, size, size):
        shape = list(images.shape)
        raise DataError(f"calibration array {path} has shape {shape}; the model takes [N, 3, {size}, {size}]")
    if len(images) < MIN_IMAGES:
        raise DataError(f"calibration array {path} has {len(images)} images; at least {MIN_IMAGES} are needed")
    return images.astype(np.float32)
