"""CIFAR-10 and CIFAR-100 (Krizhevsky, 2009) as their author distributes them, in the setting of TeS (Wang et al.,
"Improved Visual Fine-tuning with Natural Language Supervision", ICCV 2023, arXiv 2304.01489), which fine-tunes on
the training set and reports top-1 on the test set: both ID. There is no OOD set in these suites.

The layouts (https://www.cs.toronto.edu/~kriz/cifar.html), either version, ROOT being the extracted folder or its
parent; the binary version is read when both are there:
- binary: cifar-10-batches-bin/data_batch_{1..5}.bin and test_batch.bin, 10000 records each of 1 label byte and
  3072 pixel bytes, and batches.meta.txt (the class names, one a line); cifar-100-binary/train.bin (50000 records)
  and test.bin (10000), records of a coarse and a fine label byte and 3072 pixel bytes, fine_label_names.txt and
  coarse_label_names.txt.
- python: cifar-10-batches-py/data_batch_{1..5}, test_batch, batches.meta; cifar-100-python/train, test, meta.
  Python 2 pickles (protocol 2) of dicts: b'data' a uint8 array [N, 3072], b'labels' (CIFAR-100: b'fine_labels'
  and b'coarse_labels'), b'filenames', b'batch_label'; the meta file holds b'label_names' (b'fine_label_names').
The pixels of an image are its red, green and blue 32 x 32 planes, rows in order.

The images are records, not files: a sample's path is a record path (data.images), `<batch file>/<format>#<index>`,
e.g. `.../cifar-10-batches-bin/data_batch_1.bin/cifar10-bin#42`, which data.images.load_rgb reads through the
readers this module registers: a binary record by seeking to it (nothing else is read), a pickled one from its
batch's pixel array, unpickled once per process. Pickles are never loaded with pickle.load: a restricted unpickler
admits only the three globals the real files name (numpy.core.multiarray._reconstruct, numpy.ndarray and
numpy.dtype, the last for uint8 only) and refuses any other (os.system, builtins.eval, ...) before it could run.
"""

from __future__ import annotations

import functools
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from data.images import UnreadableImage, is_regular_file, record_name, register_record_reader
from data.labeled import DataError, LabeledImages
from data.samples import SampleTable
from data.suites.base import Suite, SuiteData, SuiteInfo, SuiteSet, missing_counts, missing_data, require

PIXELS = 3 * 32 * 32  # bytes of one image: three 32 x 32 planes
PUBLISHED = {"train": 50000, "test": 10000}  # images per split, both datasets
PUBLISHED_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
ROLES = (
    "ID only, as TeS (arXiv 2304.01489) evaluates CIFAR: the training batches are the ID training data (validation "
    "held out from them), the test batch the ID test; there is no OOD set"
)
TEMPLATES = ("a photo of a {}.",)  # open_clip ships no CIFAR templates (its zero-shot metadata is ImageNet's)


@dataclass(frozen=True)
class Layout:
    """One distributed version of a dataset: its folder, its batch files and how a record is stored."""

    folder: str  # the folder the archive extracts to
    train: tuple[str, ...]  # the training batch files
    test: str  # the test batch file
    meta: str  # the class-names file
    record_format: str  # the record paths' format (data.images.RECORD_FORMATS)
    label_bytes: int = 0  # binary: bytes before a record's pixels, the last one the class label; 0: a pickle


@dataclass(frozen=True)
class Cifar:
    info: SuiteInfo
    layouts: tuple[Layout, ...]  # in order of preference
    label_key: str  # a pickled batch's class labels
    names_key: str  # the pickled meta file's class names


CIFAR10 = Cifar(
    SuiteInfo(
        name="cifar10",
        title="CIFAR-10 (Krizhevsky, 2009)",
        published=PUBLISHED_URL,
        layout="ROOT/cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin and batches.meta.txt (binary version), or "
        "ROOT/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta} (python version); ROOT may be that "
        "folder itself",
        roles=ROLES,
        classes=10,
        templates=TEMPLATES,
    ),
    (
        Layout(
            "cifar-10-batches-bin",
            tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
            "test_batch.bin",
            "batches.meta.txt",
            "cifar10-bin",
            label_bytes=1,
        ),
        Layout(
            "cifar-10-batches-py",
            tuple(f"data_batch_{i}" for i in range(1, 6)),
            "test_batch",
            "batches.meta",
            "cifar-pickle",
        ),
    ),
    label_key="labels",
    names_key="label_names",
)
CIFAR100 = Cifar(
    SuiteInfo(
        name="cifar100",
        title="CIFAR-100 (Krizhevsky, 2009)",
        published=PUBLISHED_URL,
        layout="ROOT/cifar-100-binary/{train,test}.bin and fine_label_names.txt (binary version), or "
        "ROOT/cifar-100-python/{train,test,meta} (python version); ROOT may be that folder itself",
        roles=ROLES + "; the 100 fine labels are the classes",
        classes=100,
        templates=TEMPLATES,
    ),
    (
        Layout("cifar-100-binary", ("train.bin",), "test.bin", "fine_label_names.txt", "cifar100-bin", label_bytes=2),
        Layout("cifar-100-python", ("train",), "test", "meta", "cifar-pickle"),
    ),
    label_key="fine_labels",
    names_key="fine_label_names",
)


# The restricted unpickler.


class ForbiddenPickle(pickle.UnpicklingError):
    """A pickle that names something a CIFAR batch never does."""


_RECONSTRUCT: Any = np.ndarray((0,), np.uint8).__reduce__()[0]  # numpy's _reconstruct, wherever this numpy keeps it


class _ArrayType:
    """numpy.ndarray as a pickle names it: admitted as _reconstruct's first argument only, never called (called, it
    would make an array of any dtype, an object one included)."""

    def __call__(self, *args: Any) -> None:
        raise ForbiddenPickle("it calls numpy.ndarray directly")


_ARRAY_TYPE = _ArrayType()


def _new_array(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    if subtype is not _ARRAY_TYPE:
        raise ForbiddenPickle(f"an array of type {subtype!r}")
    return _RECONSTRUCT(np.ndarray, shape, dtype)


def _uint8_dtype(spec: Any, *args: Any) -> np.dtype:
    if spec not in ("u1", b"u1"):  # an object dtype would unpickle arbitrary elements
        shown = spec.decode("latin-1") if isinstance(spec, bytes) else spec  # Python 2's str arrives as bytes
        raise ForbiddenPickle(f"numpy.dtype({shown!r}) (only uint8 arrays are admitted)")
    return np.dtype("u1", *args)


_ADMITTED = {
    ("numpy.core.multiarray", "_reconstruct"): _new_array,
    ("numpy._core.multiarray", "_reconstruct"): _new_array,  # a copy re-saved by numpy 2
    ("numpy", "ndarray"): _ARRAY_TYPE,
    ("numpy", "dtype"): _uint8_dtype,
}
# What a corrupt pickle makes the unpickler raise.
_UNPICKLING_ERRORS = (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, OverflowError)


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        admitted = _ADMITTED.get((module, name))
        if admitted is None:
            raise ForbiddenPickle(f"it references {module}.{name}")
        return admitted


def unpickle(path: Path) -> dict[str, Any]:
    """A CIFAR pickle's dict (keys decoded to str), read with the restricted unpickler.

    Raises:
        DataError: one line naming the file: a forbidden global (nothing of it was run), or not a CIFAR pickle.
    """
    try:
        with open(path, "rb") as f:
            loaded = _BatchUnpickler(f, encoding="bytes").load()  # Python 2's str as bytes, as the files need
    except ForbiddenPickle as err:
        raise DataError(
            f"{path}: refused to unpickle: {err}; a CIFAR file holds only numpy uint8 arrays, lists, bytes, strings "
            "and ints (nothing was run)"
        ) from err
    except _UNPICKLING_ERRORS as err:
        raise DataError(f"{path}: not a readable CIFAR pickle (truncated?): {err}") from err
    if not isinstance(loaded, dict):
        raise DataError(f"{path}: not a CIFAR pickle (it holds a {type(loaded).__name__}, not a dict)")
    return {key.decode("latin-1") if isinstance(key, bytes) else str(key): value for key, value in loaded.items()}


@functools.lru_cache(maxsize=8)  # CIFAR-10's six batches; the pixels stay for the records read later
def pickled_batch(path: str) -> dict[str, Any]:
    """A pickled batch, its b'data' checked to be the uint8 [N, 3072] pixel array; read once per process."""
    batch = unpickle(Path(path))
    pixels = batch.get("data")
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim != 2 or pixels.shape[1] != PIXELS:
        raise DataError(f"{path}: not a CIFAR batch: no uint8 array [N, {PIXELS}] under b'data'")
    return batch


# Reading one record (registered with data.images).


def _image(pixels: bytes | np.ndarray) -> Image.Image:
    planes = np.frombuffer(pixels, dtype=np.uint8).reshape(3, 32, 32)
    return Image.fromarray(np.ascontiguousarray(planes.transpose(1, 2, 0)))


def read_binary_record(container: Path, index: int, label_bytes: int) -> Image.Image:
    """Record `index` of a binary batch file: a seek and a read of its 3072 pixel bytes."""
    if not is_regular_file(container):
        raise UnreadableImage(f"no such batch file: {container}")
    try:
        with open(container, "rb") as f:
            f.seek(index * (label_bytes + PIXELS) + label_bytes)
            pixels = f.read(PIXELS)
    except OSError as err:
        raise UnreadableImage(f"{container}: {err}") from err
    if len(pixels) != PIXELS:
        raise UnreadableImage(f"record {index} lies beyond the end of {container} (truncated?)")
    return _image(pixels)


def read_pickled_record(container: Path, index: int) -> Image.Image:
    """Record `index` of a pickled batch, from its pixel array (the batch unpickled once per process)."""
    if not is_regular_file(container):
        raise UnreadableImage(f"no such batch file: {container}")
    try:
        pixels = pickled_batch(str(container))["data"]
    except DataError as err:
        raise UnreadableImage(str(err)) from err
    if index >= len(pixels):
        raise UnreadableImage(f"record {index} lies beyond the end of {container} ({len(pixels)} records)")
    return _image(pixels[index])


register_record_reader("cifar10-bin", functools.partial(read_binary_record, label_bytes=1))
register_record_reader("cifar100-bin", functools.partial(read_binary_record, label_bytes=2))
register_record_reader("cifar-pickle", read_pickled_record)


# Reading a suite.


def _find_layout(root: Path, cifar: Cifar) -> tuple[Path, Layout]:
    """The folder holding a version's files (ROOT itself, or its folder under ROOT) and that version."""
    for layout in cifar.layouts:
        for folder in (root, root / layout.folder):
            if any((folder / name).is_file() for name in (layout.test, layout.meta, *layout.train)):
                return folder, layout
    looked = ", ".join(str(root / layout.folder) for layout in cifar.layouts)
    raise missing_data(cifar.info, f"no batch files found (looked in {root}, {looked})")


def _class_names(folder: Path, layout: Layout, cifar: Cifar) -> list[str]:
    path = require(folder / layout.meta, f"class-names file {layout.meta}", cifar.info)
    if layout.label_bytes:
        names = [line.strip() for line in path.read_text(encoding="ascii", errors="replace").splitlines()]
    else:
        found = unpickle(path).get(cifar.names_key)
        if not isinstance(found, list):
            raise DataError(f"{path}: not a CIFAR meta file: no list of class names under b'{cifar.names_key}'")
        names = [n.decode("ascii", "replace") if isinstance(n, bytes) else str(n) for n in found]
    names = [n for n in names if n]
    if len(names) != cifar.info.classes or len(set(names)) != len(names):
        raise DataError(
            f"{path}: {len(names)} class names ({len(set(names))} distinct), not the {cifar.info.classes} of "
            f"{cifar.info.title}"
        )
    return names


def _binary_labels(path: Path, label_bytes: int) -> np.ndarray:
    """The class label of every record of a binary batch file (its last label byte)."""
    size, record = path.stat().st_size, label_bytes + PIXELS
    if size % record:
        raise DataError(
            f"{path}: truncated or not a CIFAR batch: {size} bytes is not a whole number of {record}-byte records"
        )
    if not size:
        return np.zeros(0, dtype=np.int64)
    records = np.memmap(path, dtype=np.uint8, mode="r", shape=(size // record, record))
    labels = np.array(records[:, label_bytes - 1], dtype=np.int64)
    del records  # unmaps the file
    return labels


def _pickled_labels(path: Path, cifar: Cifar) -> np.ndarray:
    batch = pickled_batch(str(path))
    labels = batch.get(cifar.label_key)
    if not isinstance(labels, list | np.ndarray) or len(labels) != len(batch["data"]):
        raise DataError(f"{path}: not a CIFAR batch: b'{cifar.label_key}' is not one label per image")
    try:
        return np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as err:
        raise DataError(f"{path}: not a CIFAR batch: b'{cifar.label_key}' holds a non-integer label") from err


def _labels(path: Path, layout: Layout, cifar: Cifar) -> np.ndarray:
    labels = _binary_labels(path, layout.label_bytes) if layout.label_bytes else _pickled_labels(path, cifar)
    bad = np.flatnonzero((labels < 0) | (labels >= cifar.info.classes))
    if len(bad):
        raise DataError(
            f"{path}: record {bad[0]} has label {labels[bad[0]]}, outside 0..{cifar.info.classes - 1} (not a "
            f"{cifar.info.title} batch?)"
        )
    return labels


def _split(folder: Path, files: tuple[str, ...], layout: Layout, cifar: Cifar, classes: list[str]) -> LabeledImages:
    """The records of the batch files present, as a table of record paths; absent files are skipped."""
    paths: list[str] = []
    labels: list[np.ndarray] = []
    for file in files:
        if (folder / file).is_file():
            file_labels = _labels(folder / file, layout, cifar)
            # as record_path names them, without a Path per record (60,000 of them)
            paths += [f"{file}/{record_name(layout.record_format, i)}" for i in range(len(file_labels))]
            labels.append(file_labels)
    label_column = np.concatenate(labels) if labels else np.zeros(0, dtype=np.int64)
    no_groups = np.full(len(paths), -1, dtype=np.int32)
    samples = SampleTable.from_columns(str(folder), paths, label_column, no_groups, [])
    split = "test" if files == (layout.test,) else "train"
    return LabeledImages(f"{cifar.info.name}-{split}", classes, samples)


def read_cifar(cifar: Cifar, root: Path) -> SuiteData:
    """The training batches as ID training data and the test batch as the ID test set."""
    folder, layout = _find_layout(root, cifar)
    classes = _class_names(folder, layout, cifar)
    require(folder / layout.test, f"test batch {layout.test}", cifar.info)
    train = _split(folder, layout.train, layout, cifar, classes)
    test = _split(folder, (layout.test,), layout, cifar, classes)
    notes = missing_counts(PUBLISHED, {"train": len(train.samples), "test": len(test.samples)})
    absent = [file for file in layout.train if not (folder / file).is_file()]
    if absent:
        notes.append(f"training batch files missing: {', '.join(absent)}")
    return SuiteData(
        train=train,
        val=None,
        eval_sets=[SuiteSet(test, "id")],
        classnames={c: c.replace("_", " ") for c in classes},
        notes=notes,
    )


SUITES = [
    Suite(CIFAR10.info, lambda root, _variant: read_cifar(CIFAR10, root)),
    Suite(CIFAR100.info, lambda root, _variant: read_cifar(CIFAR100, root)),
]
