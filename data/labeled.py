"""The dataset layer every stage uses: labeled image folders and CSV manifests, a tolerant Dataset, a loader."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common.errors import UserError
from common.files import read_text_file
from data.samples import Sample, SampleTable, path_texts

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif"})


class DataError(UserError):
    """Bad dataset input; the message is one line naming the path and the problem."""


@dataclass
class LabeledImages:
    """A named sequence of samples; `classes[i]` is the label string of class index i. `samples` is a list, or a
    data.samples.SampleTable for a manifest (no Python object per image)."""

    name: str
    classes: list[str]
    samples: Sequence[Sample]

    def reorder(self, classes: list[str], allow_missing: bool = False) -> LabeledImages:
        """Return a copy whose label indices follow `classes`, matched by name.

        `allow_missing` accepts a dataset that covers only some of `classes` (an evaluation set such as ImageNet-R
        covers 200 of ImageNet's 1000 classes).

        Raises:
            DataError: if the dataset has a class not in `classes`, or (unless `allow_missing`) lacks one.
        """
        if len(set(classes)) != len(classes):
            raise DataError(f"dataset {self.name!r}: duplicate names in the requested classes: {', '.join(classes)}")
        missing = [] if allow_missing else sorted(set(classes) - set(self.classes))
        extra = sorted(set(self.classes) - set(classes))
        if missing or extra:
            raise DataError(
                f"dataset {self.name!r}: classes differ from the requested ones "
                f"(missing: {', '.join(missing) or '-'}; extra: {', '.join(extra) or '-'})"
            )
        new_index = {name: i for i, name in enumerate(classes)}
        remap = np.array([new_index[name] for name in self.classes], dtype=np.int64)
        if isinstance(self.samples, SampleTable):
            return LabeledImages(self.name, list(classes), self.samples.relabel(remap))
        samples = [Sample(s.path, int(remap[s.label]), s.group) for s in self.samples]
        return LabeledImages(self.name, list(classes), samples)

    @property
    def groups(self) -> list[str]:
        """Sorted distinct group names; [] when no sample has a group."""
        if isinstance(self.samples, SampleTable):
            return self.samples.present_groups()
        return sorted({s.group for s in self.samples if s.group is not None})


def read_classnames(path: Path) -> dict[str, str]:
    """Read a class-names file: one `label` or `label,display name` per line; `#` comments and blanks skipped.

    Returns:
        Ordered mapping label -> display name (default: the label with `_` replaced by a space).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such class-names file: {path}")
    names: dict[str, str] = {}
    for number, line in enumerate(read_text_file(path, "class-names file").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        label, _, display = (part.strip() for part in line.partition(","))
        if not label:
            raise DataError(f"class-names file {path} line {number}: empty label")
        if label in names:
            raise DataError(f"class-names file {path} line {number}: duplicate label {label!r}")
        names[label] = display or label.replace("_", " ")
    if not names:
        raise DataError(f"class-names file has no classes: {path}")
    return names


def _images_under(folder: Path) -> list[Path]:
    """All image files below `folder`, recursively, sorted; hidden files and folders are skipped."""
    found = []
    for p in folder.rglob("*"):
        hidden = any(part.startswith(".") for part in p.relative_to(folder).parts)
        # Not only regular files: a FIFO or device named like an image is listed, then skipped and counted as
        # unreadable when read, instead of silently vanishing (or blocking the loader, were it opened).
        if not hidden and p.suffix.lower() in IMAGE_EXTENSIONS and not p.is_dir():
            found.append(p)
    return sorted(found)


def load_image_folder(root: Path, name: str | None = None) -> LabeledImages:
    """Load `root/<class>/**/<image>`; classes are the sub-folder names, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"no such dataset: {root}")
    # Hidden folders (.ipynb_checkpoints, .cache) are tooling debris, never classes.
    class_dirs = sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")), key=lambda d: d.name)
    if not class_dirs:
        raise DataError(f"no class folders in dataset: {root}")
    samples: list[Sample] = []
    for label, class_dir in enumerate(class_dirs):
        images = _images_under(class_dir)
        if not images:
            raise DataError(f"class folder is empty: {class_dir}")
        samples.extend(Sample(p, label) for p in images)
    return LabeledImages(name or root.name, [d.name for d in class_dirs], samples)


def load_manifest(csv_path: Path, classes: list[str] | None = None, name: str | None = None) -> LabeledImages:
    """Load a CSV manifest with a `path,label[,group]` header; relative paths resolve against the CSV's folder. The
    samples are a SampleTable: an ImageNet-size manifest (1.3 M rows) holds no Python object per image.

    Args:
        csv_path: The manifest file.
        classes: The class order to use; every label must be one of them. None: the sorted distinct labels.
        name: Dataset name; defaults to the CSV file's stem.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DataError(f"no such dataset: {csv_path}")
    try:
        columns = _manifest_columns(csv_path)
    except (UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"manifest {csv_path} is not UTF-8 CSV text ({err})") from err
    if not columns.paths:
        raise DataError(f"manifest has no samples: {csv_path}")
    _refuse_repeats(csv_path, columns)
    names = list(columns.label_codes)  # in first-seen order; codes index this list
    if classes is None:
        classes = sorted(names)
    index = {c: i for i, c in enumerate(classes)}
    unknown = [label for label in names if label not in index]
    if unknown:
        line = columns.lines[columns.label_column.index(columns.label_codes[unknown[0]])]
        raise DataError(f"manifest {csv_path} line {line}: unknown label {unknown[0]!r} (known: {', '.join(classes)})")
    remap = np.array([index[label] for label in names], dtype=np.int32)
    labels = remap[np.array(columns.label_column, dtype=np.int64)]
    groups = np.array(columns.group_column, dtype=np.int32)
    table = SampleTable.from_columns(str(csv_path.parent), columns.paths, labels, groups, list(columns.group_codes))
    return LabeledImages(name or csv_path.stem, list(classes), table)


@dataclass
class _ManifestColumns:
    """A manifest's rows by column: each label and group as a code (first-seen order), the line of every row."""

    paths: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    label_column: list[int] = field(default_factory=list)
    group_column: list[int] = field(default_factory=list)  # -1: no group
    label_codes: dict[str, int] = field(default_factory=dict)
    group_codes: dict[str, int] = field(default_factory=dict)


def _manifest_columns(csv_path: Path) -> _ManifestColumns:
    """Every non-blank row of a manifest, by column, with the header checked."""
    out = _ManifestColumns()
    with csv_path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        if not header:
            raise DataError(f"manifest is empty: {csv_path}")
        absent = [c for c in ("path", "label") if c not in header]
        if absent:
            raise DataError(f"manifest {csv_path}: missing column(s) {', '.join(absent)} (header: {','.join(header)})")
        i_path, i_label = header.index("path"), header.index("label")
        i_group = header.index("group") if "group" in header else None
        labels, groups = out.label_codes, out.group_codes
        for row in reader:
            if len(row) < len(header):
                if not any(cell.strip() for cell in row):
                    continue
                raise DataError(
                    f"manifest {csv_path} line {reader.line_num}: expected {len(header)} columns, got {len(row)}"
                )
            path, label = row[i_path].strip(), row[i_label].strip()
            if not path or not label:
                if not any(cell.strip() for cell in row):
                    continue
                raise DataError(f"manifest {csv_path} line {reader.line_num}: empty path or label")
            group = row[i_group].strip() if i_group is not None else ""
            out.paths.append(path)
            out.lines.append(reader.line_num)
            out.label_column.append(labels.setdefault(label, len(labels)))
            out.group_column.append(groups.setdefault(group, len(groups)) if group else -1)
    return out


def _refuse_repeats(csv_path: Path, columns: _ManifestColumns) -> None:
    """A manifest that lists an image twice weighs it twice in training and in every accuracy: refuse it. Paths
    are compared normalised against the CSV's folder; plain relative paths (most rows) need no normalising."""
    first_line: dict[str, int] = {}
    repeats = []
    base = str(csv_path.parent)
    for line, path in zip(columns.lines, columns.paths, strict=True):
        key = path if _plain_relative(path) else os.path.relpath(os.path.normpath(os.path.join(base, path)), base)
        seen = first_line.setdefault(key, line)
        if seen != line:
            repeats.append((seen, line, path))
    if repeats:
        a, b, path = repeats[0]
        raise DataError(
            f"manifest {csv_path} lists {len(repeats)} image(s) more than once (first: {path} on lines {a} and {b}); "
            "remove the repeated rows"
        )


def _plain_relative(path: str) -> bool:
    """Whether normalising `path` against a folder would leave it as written: relative, no '.', '..' or empty
    parts, no trailing slash (checked by string search, far cheaper than normpath for every row)."""
    odd_start = path.startswith(("/", "./", "../", "~")) or path in (".", "..")
    return not (odd_start or path.endswith(("/", "/.", "/..")) or "//" in path or "/./" in path or "/../" in path)


def resolved_paths(data: LabeledImages) -> list[str]:
    """Every image file's path with its folder resolved (relative spellings and symlinked folders made one), in the
    dataset's order: an image's identity for overlap checks. Folders are resolved once each, not once per image."""
    folders: dict[str, str] = {}

    def real(path: str) -> str:
        folder, name = os.path.split(os.path.abspath(path))
        if folder not in folders:
            folders[folder] = os.path.realpath(folder)
        return os.path.join(folders[folder], name)

    return [real(path) for path in path_texts(data.samples)]


def images_among(known: set[str], data: LabeledImages) -> list[Path]:
    """The images of `data` whose resolved path (resolved_paths) is in `known`, in `data`'s order, as given."""
    return [
        Path(given) for given, real in zip(path_texts(data.samples), resolved_paths(data), strict=True) if real in known
    ]


def shared_images(a: LabeledImages, b: LabeledImages) -> list[Path]:
    """The image files that two datasets both hold, in `b`'s order (paths compared as resolved_paths makes them)."""
    return images_among(set(resolved_paths(a)), b)


def load_dataset(source: str | Path, classes: list[str] | None = None, name: str | None = None) -> LabeledImages:
    """Load an image folder or a `.csv` manifest; `classes`, if given, fixes the class order."""
    path = Path(source)
    if path.is_dir():
        data = load_image_folder(path, name or path.name)
        return data.reorder(classes) if classes is not None else data
    if path.suffix.lower() == ".csv":
        return load_manifest(path, classes, name or path.stem)
    if not path.exists():
        raise DataError(f"no such dataset: {path}")
    raise DataError(f"not a dataset (expected a folder or a .csv manifest): {path}")
