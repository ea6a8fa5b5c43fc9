"""A dataset's samples: one `Sample`, and `SampleTable`, samples stored by column for ImageNet's size (1.3 M images).

A list of `Sample`s holds three Python objects per image (the Sample, its Path and the Path's string): about 0.5 KB
each, 0.7 GB and seconds of allocation for ImageNet's training manifest. `SampleTable` holds no Python object per
image: the paths are one string with an offset array, labels and groups are integer arrays. It is a read-only
Sequence[Sample]: indexing builds the one Sample asked for, a slice or `take` gives another table sharing the same
path string. Datasets built from a list (an image folder, a test) keep their list; every consumer goes through the
Sequence interface and the column helpers below (`labels_of`, `take`), which are fast on a table.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload

import numpy as np


@dataclass(frozen=True)
class Sample:
    """One image file, its class index and an optional group (e.g. a domain or a corruption kind)."""

    path: Path
    label: int
    group: str | None = None


class SampleTable(Sequence[Sample]):
    """Samples as columns: path i is `base` joined with `text[offsets[i]:offsets[i + 1]]` (absolute ones stand
    alone), `labels[i]` its class index, `groups[i]` an index into `group_names` (-1: none)."""

    def __init__(
        self,
        base: str,
        text: str,
        offsets: np.ndarray,
        labels: np.ndarray,
        groups: np.ndarray,
        group_names: list[str],
        rows: np.ndarray | None = None,
    ):
        self.base, self.text, self.offsets = base, text, offsets
        self.labels, self.group_codes, self.group_names = labels, groups, group_names
        self.rows = rows  # which rows of the path text this table holds, in order; None: all of them

    @classmethod
    def from_columns(
        cls, base: str, paths: list[str], labels: np.ndarray, groups: np.ndarray, group_names: list[str]
    ) -> SampleTable:
        """A table from relative (or absolute) path strings; the list can be dropped afterwards."""
        offsets = np.zeros(len(paths) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, paths), dtype=np.int64, count=len(paths)), out=offsets[1:])
        return cls(base, "".join(paths), offsets, labels.astype(np.int32), groups.astype(np.int32), group_names)

    def __len__(self) -> int:
        return len(self.labels)

    def _row(self, i: int) -> int:
        return int(self.rows[i]) if self.rows is not None else i

    def path_text(self, i: int) -> str:
        """Path i as a string (joined with the base), without making a Path."""
        r = self._row(i)
        return os.path.join(self.base, self.text[self.offsets[r] : self.offsets[r + 1]])

    @overload
    def __getitem__(self, i: int) -> Sample: ...
    @overload
    def __getitem__(self, i: slice) -> SampleTable: ...
    def __getitem__(self, i: int | slice) -> Sample | SampleTable:
        if isinstance(i, slice):
            return self.take(np.arange(len(self))[i])
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"sample {i} of {len(self)}")
        code = int(self.group_codes[i])
        return Sample(Path(self.path_text(i)), int(self.labels[i]), self.group_names[code] if code >= 0 else None)

    def __iter__(self) -> Iterator[Sample]:
        return (self[i] for i in range(len(self)))

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same samples in the same order (a list of them included)."""
        if not isinstance(other, Sequence) or isinstance(other, str) or len(other) != len(self):
            return NotImplemented if not isinstance(other, Sequence) else False
        return all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]  # mutable columns, like a list

    def take(self, indices: np.ndarray | Sequence[int]) -> SampleTable:
        """The samples at `indices`, in that order, sharing this table's path text."""
        idx = np.asarray(indices, dtype=np.int64)
        rows = self.rows[idx] if self.rows is not None else idx
        return SampleTable(
            self.base, self.text, self.offsets, self.labels[idx], self.group_codes[idx], self.group_names, rows
        )

    def relabel(self, remap: np.ndarray) -> SampleTable:
        """The same samples with label l replaced by remap[l]."""
        out = self.take(np.arange(len(self)))
        out.labels = remap[self.labels].astype(np.int32)
        return out

    def present_groups(self) -> list[str]:
        """Sorted names of the groups some sample has."""
        codes = np.unique(self.group_codes[self.group_codes >= 0])
        return sorted(self.group_names[c] for c in codes)


def labels_of(samples: Sequence[Sample]) -> np.ndarray:
    """Every sample's label, as an int array (a table's column; read from each Sample otherwise)."""
    if isinstance(samples, SampleTable):
        return samples.labels
    return np.fromiter((s.label for s in samples), dtype=np.int64, count=len(samples))


def take(samples: Sequence[Sample], indices: np.ndarray | Sequence[int]) -> Sequence[Sample]:
    """The samples at `indices`, in that order: a table stays a table."""
    if isinstance(samples, SampleTable):
        return samples.take(indices)
    return [samples[int(i)] for i in indices]


def path_texts(samples: Sequence[Sample]) -> Iterator[str]:
    """Every sample's path as a string, without making Path objects for a table."""
    if isinstance(samples, SampleTable):
        return (samples.path_text(i) for i in range(len(samples)))
    return (str(s.path) for s in samples)


def indices_by_class(samples: Sequence[Sample], n_classes: int) -> list[list[int]]:
    """For each class, the indices of its samples in dataset order (one stable sort of the labels, not a scan of
    every sample per class)."""
    labels = labels_of(samples)
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(n_classes + 1))
    return [order[bounds[c] : bounds[c + 1]].tolist() for c in range(n_classes)]
