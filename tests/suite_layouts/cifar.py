"""CIFAR-10 and CIFAR-100 as distributed (https://www.cs.toronto.edu/~kriz/cifar.html), a few records per batch file:
the binary versions (cifar-10-batches-bin/, cifar-100-binary/: records of label byte(s) + 3072 pixel bytes, the class
names one a line) and the python versions (cifar-10-batches-py/, cifar-100-python/: Python 2 protocol-2 pickles of
dicts with bytes keys, the pixels a numpy uint8 array), written byte for byte in the real files' forms.

Every record's pixels are random and recomputable (`record_pixels`), its label `record_label`; the real class names.
"""

from __future__ import annotations

import io
import pickle
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR100_NAMES = tuple(
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can castle "
    "caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin elephant "
    "flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster man "
    "maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree "
    "plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper "
    "snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger tractor train "
    "trout tulip turtle wardrobe whale willow_tree wolf woman worm".split()
)
CIFAR100_COARSE = tuple(
    "aquatic_mammals fish flowers food_containers fruit_and_vegetables household_electrical_devices "
    "household_furniture insects large_carnivores large_man-made_outdoor_things large_natural_outdoor_scenes "
    "large_omnivores_and_herbivores medium_mammals non-insect_invertebrates people reptiles small_mammals trees "
    "vehicles_1 vehicles_2".split()
)
assert len(CIFAR100_NAMES) == 100 and len(CIFAR100_COARSE) == 20

CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
RECORDS = {"train": 3, "test": 4}  # records per batch file (CIFAR-100's single train file: 3 x 5)


def record_pixels(batch: str, index: int) -> np.ndarray:
    """The 3072 pixel bytes (R, G, B planes) of record `index` of batch file `batch` (its name without .bin)."""
    seed = zlib.crc32(f"{batch}/{index}".encode())
    return np.random.default_rng(seed).integers(0, 256, 3072, dtype=np.uint8)


def record_label(batch: str, index: int, classes: int) -> int:
    """Record `index`'s class: CIFAR-10's 15 training records cover the 10 classes, in no simple order."""
    n = _BATCH_RANK[batch] * RECORDS["train"] + index
    return (3 * n + 1) % classes


_BATCH_RANK = {**{b: i for i, b in enumerate(CIFAR10_TRAIN)}, "test_batch": 5, "train": 0, "test": 5}


class _Python2Pickler(pickle._Pickler):  # type: ignore[misc,name-defined]
    """Pickles as Python 2's cPickle did (protocol 2): every str and bytes as a BINSTRING, numpy's _reconstruct
    named numpy.core.multiarray."""

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def save_bytes(self, obj: bytes | str) -> None:
        data = obj.encode("latin-1") if isinstance(obj, str) else obj
        header = pickle.SHORT_BINSTRING + bytes([len(data)]) if len(data) < 256 else pickle.BINSTRING
        if len(data) >= 256:
            header += struct.pack("<i", len(data))
        self.write(header + data)
        self.memoize(obj)

    dispatch[bytes] = save_bytes
    dispatch[str] = save_bytes

    def save_global(self, obj: Any, name: str | None = None) -> None:
        module = "numpy.core.multiarray" if getattr(obj, "__name__", "") == "_reconstruct" else obj.__module__
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)


def python2_dumps(value: Any) -> bytes:
    """`value` pickled as Python 2 wrote the CIFAR files."""
    out = io.BytesIO()
    _Python2Pickler(out, protocol=2).dump(value)
    return out.getvalue()


def python2_pickle(path: Path, value: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(python2_dumps(value))
    return path


def _binary(folder: Path, batches: dict[str, str], classes: int, coarse: bool) -> None:
    for batch, split in batches.items():
        records = []
        for i in range(RECORDS[split]):
            fine = record_label(batch, i, classes)
            labels = bytes([fine % 20, fine]) if coarse else bytes([fine])
            records.append(labels + record_pixels(batch, i).tobytes())
        (folder / f"{batch}.bin").write_bytes(b"".join(records))


def make_cifar10_binary(root: Path) -> Path:
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True, exist_ok=True)
    _binary(folder, {**dict.fromkeys(CIFAR10_TRAIN, "train"), "test_batch": "test"}, 10, False)
    (folder / "batches.meta.txt").write_text("\n".join(CIFAR10_NAMES) + "\n\n")
    (folder / "readme.html").write_text("<html></html>\n")
    return folder


def make_cifar100_binary(root: Path) -> Path:
    folder = root / "cifar-100-binary"
    folder.mkdir(parents=True, exist_ok=True)
    _binary(folder, {"train": "train", "test": "test"}, 100, True)
    (folder / "fine_label_names.txt").write_text("\n".join(CIFAR100_NAMES) + "\n")
    (folder / "coarse_label_names.txt").write_text("\n".join(CIFAR100_COARSE) + "\n")
    return folder


def _pickled_batch(batch: str, split: str, classes: int) -> dict[bytes, Any]:
    indices = range(RECORDS[split])
    labels = [record_label(batch, i, classes) for i in indices]
    pixels = np.stack([record_pixels(batch, i) for i in indices])
    return {
        b"batch_label": f"{split}ing batch".encode(),
        (b"labels" if classes == 10 else b"fine_labels"): labels,
        b"data": pixels,
        b"filenames": [f"{batch}_{i:05d}.png".encode() for i in indices],
    } | ({b"coarse_labels": [label % 20 for label in labels]} if classes == 100 else {})


def make_cifar10_python(root: Path) -> Path:
    folder = root / "cifar-10-batches-py"
    for batch in (*CIFAR10_TRAIN, "test_batch"):
        split = "test" if batch == "test_batch" else "train"
        python2_pickle(folder / batch, _pickled_batch(batch, split, 10))
    names = [n.encode() for n in CIFAR10_NAMES]
    python2_pickle(folder / "batches.meta", {b"num_cases_per_batch": 10000, b"label_names": names, b"num_vis": 3072})
    return folder


def make_cifar100_python(root: Path) -> Path:
    folder = root / "cifar-100-python"
    for batch in ("train", "test"):
        python2_pickle(folder / batch, _pickled_batch(batch, batch, 100))
    meta = {
        b"fine_label_names": [n.encode() for n in CIFAR100_NAMES],
        b"coarse_label_names": [n.encode() for n in CIFAR100_COARSE],
    }
    python2_pickle(folder / "meta", meta)
    return folder


def make(root: Path) -> Path:
    """All four versions under `root` (a binary and a python folder side by side: the binary one is read)."""
    for maker in (make_cifar10_binary, make_cifar10_python, make_cifar100_binary, make_cifar100_python):
        maker(root)
    return root
