"""Reading labeled images for training and evaluation: datasets, batches that skip unreadable images, loaders."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from data.images import UnreadableImage, load_rgb
from data.labeled import DataError, LabeledImages
from data.samples import Sample

log = logging.getLogger(__name__)


def check_some_readable(data: LabeledImages, tries: int = 16) -> None:
    """Fails at once when none of up to `tries` images spread over the set can be read, naming the first error: a
    set of only unreadable files would otherwise train forever without a step, or evaluate to nothing."""
    n = len(data.samples)
    picks = sorted({round(i * (n - 1) / max(1, tries - 1)) for i in range(min(tries, n))})
    first_error = None
    for i in picks:
        try:
            load_rgb(data.samples[i].path)
            return
        except UnreadableImage as err:
            first_error = first_error or f"{data.samples[i].path}: {err}"
    if picks:
        raise DataError(f"none of {len(picks)} images tried in {data.name!r} could be read ({first_error})")


class ImageDataset(Dataset):
    """Samples as `(image tensor, label, group index, sample index)`; an unreadable image gives None unless strict."""

    def __init__(self, data: LabeledImages, transform: Callable[[Image.Image], torch.Tensor], strict: bool = False):
        self.data = data
        self.transform = transform
        self.strict = strict
        # Computed once: `data.groups` scans every sample.
        self.group_index = {g: i for i, g in enumerate(data.groups)}

    def __len__(self) -> int:
        return len(self.data.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int, int] | None:
        sample = self.data.samples[i]
        try:
            rgb = load_rgb(sample.path)
        except UnreadableImage as e:
            message = f"image not readable: {sample.path} ({e})"
            if self.strict:
                raise DataError(message) from e
            log.warning(message)
            return None
        # The transform stays outside the try: an error there is a bug, not a bad file.
        return self.transform(rgb), sample.label, self.group_of(sample), i

    def group_of(self, sample: Sample) -> int:
        """The sample's group index, -1 for none."""
        return self.group_index[sample.group] if sample.group is not None else -1


class DecodedImages:
    """Images decoded once and held in memory by file path, as an ImageDataset's transform made them (uint8
    pixels for evaluation), for evaluating many models of one preprocessing on the same images: filled from the
    batches of a first evaluation (serve.evaluate: hold_decoded, keep_decoded). Files are taken to stay unchanged
    while the process lives (one found unreadable stays skipped)."""

    def __init__(self) -> None:
        self.images: dict[Path, torch.Tensor] = {}
        self.unreadable: set[Path] = set()

    def holds(self, path: Path) -> bool:
        """Whether `path` needs no reading: its image is held, or it was found unreadable."""
        return path in self.images or path in self.unreadable

    def keep(self, data: LabeledImages, indices: torch.Tensor, images: torch.Tensor) -> None:
        """Holds a batch's images (`images[k]` is sample `indices[k]` of `data`), copied out of the batch."""
        images = images.clone()  # not a view into a worker's shared-memory batch
        for k, i in enumerate(indices.tolist()):
            self.images[data.samples[i].path] = images[k]

    def keep_unreadable(self, data: LabeledImages, read: list[int]) -> None:
        """After a pass that kept every batch: the samples of `read` whose images were not kept were unreadable."""
        self.unreadable.update(data.samples[i].path for i in read if data.samples[i].path not in self.images)

    def over(self, dataset: ImageDataset) -> Dataset:
        """`dataset` with the held images in place of reading their files."""
        return _HeldImages(self, dataset)


class _HeldImages(Dataset):
    def __init__(self, held: DecodedImages, dataset: ImageDataset):
        self.held, self.dataset = held, dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int, int] | None:
        sample = self.dataset.data.samples[i]
        image = self.held.images.get(sample.path)
        if image is None:
            return None if sample.path in self.held.unreadable else self.dataset[i]
        return image, sample.label, self.dataset.group_of(sample), i


@dataclass
class Batch:
    """A collated batch; `skipped` counts the unreadable images left out of it."""

    images: torch.Tensor
    labels: torch.Tensor
    groups: torch.Tensor
    indices: torch.Tensor
    skipped: int
    pixels: torch.Tensor | None = None  # the stacked items before a batch-wise step (NormalizingCollate), if kept

    def pin_memory(self) -> Batch:
        """Pinned copy; DataLoader(pin_memory=True) calls this on custom batch types."""
        return Batch(
            self.images.pin_memory(),
            self.labels.pin_memory(),
            self.groups.pin_memory(),
            self.indices.pin_memory(),
            self.skipped,
            self.pixels,
        )


def collate_skipping(batch: list) -> Batch:
    """Stack the readable items of `batch`; the None ones are dropped and counted."""
    items = [item for item in batch if item is not None]
    skipped = len(batch) - len(items)
    if not items:
        empty = torch.empty(0, dtype=torch.long)
        return Batch(torch.empty(0), empty, empty.clone(), empty.clone(), skipped)
    images, labels, groups, indices = zip(*items, strict=True)
    return Batch(
        torch.stack(images),
        torch.tensor(labels, dtype=torch.long),
        torch.tensor(groups, dtype=torch.long),
        torch.tensor(indices, dtype=torch.long),
        skipped,
    )


class NormalizingCollate:
    """collate_skipping, then a batch-wise step on the stacked images (data.transforms.BatchedEvalTransform's
    uint8 -> normalized floats), in the worker that read them; `keep_pixels` keeps the stacked uint8 pixels too
    (Batch.pixels), for DecodedImages.keep."""

    def __init__(self, normalize: Callable[[torch.Tensor], torch.Tensor], keep_pixels: bool = False):
        self.normalize = normalize
        self.keep_pixels = keep_pixels

    def __call__(self, batch: list) -> Batch:
        collated = collate_skipping(batch)
        if len(collated.labels):
            if self.keep_pixels:
                collated.pixels = collated.images
            collated.images = self.normalize(collated.images)
        return collated


def make_loader(
    dataset: Dataset,
    batch_size: int,
    order: Sequence[int] | None = None,
    num_workers: int = 0,
    pin_memory: bool = False,
    batches: Sequence[Sequence[int]] | None = None,
    collate: Callable[[list], Batch] = collate_skipping,
) -> DataLoader:
    """A DataLoader yielding `Batch`es made by `collate`, over the indices in `order` (default: all, in order) in
    batches of `batch_size`, or over the given `batches` of indices (which may be empty: an empty Batch comes out)."""
    if batches is not None:
        return DataLoader(
            dataset,
            batch_sampler=[list(b) for b in batches],
            num_workers=num_workers,
            collate_fn=collate,
            pin_memory=pin_memory,
            worker_init_fn=_ignore_ctrl_c,
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=list(order) if order is not None else range(len(dataset)),  # type: ignore[arg-type]
        num_workers=num_workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        persistent_workers=False,
        worker_init_fn=_ignore_ctrl_c,
    )


def _ignore_ctrl_c(worker_id: int) -> None:
    # Ctrl-C reaches the whole process group; the main process saves and stops, so workers must not die first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def read_batch(data: LabeledImages, transform: Callable[[Image.Image], torch.Tensor]) -> Batch:
    """Every image of a (small) dataset as one in-memory Batch; unreadable ones are skipped and counted."""
    check_some_readable(data)
    dataset = ImageDataset(data, transform)
    return collate_skipping([dataset[i] for i in range(len(dataset))])
