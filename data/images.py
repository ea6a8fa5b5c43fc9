"""Decoding an image file into the 8-bit RGB picture the preprocessing expects, whatever mode it was saved in.

`Image.convert("RGB")` alone gets several modes wrong: 16- and 32-bit grayscale (I;16, I) saturate to white, float
images (F) likewise, transparent pixels of RGBA/LA/PA and of palette images with a transparent color keep whatever
color lies under them (often black), and a phone photo's EXIF orientation is ignored. Transparent areas are put on
white, as a viewer shows them; high-bit-depth images are scaled to 8 bits by their format's range.

Record paths: a dataset shipped as a few container files (CIFAR's batch files) rather than image files names each
image `<container file>/<format>#<index>`, e.g. `cifar-10-batches-bin/data_batch_1.bin/cifar10-bin#42`. The
container is a regular file, and nothing can lie below a regular file, so no real image has such a path (a file
really named `cifar10-bin#42` sits in a folder and is read as an image file). load_rgb hands a record path to the
reader registered for its format, importing the module that registers it on first use: a DataLoader worker may have
imported only this module.
"""

from __future__ import annotations

import importlib
import logging
import os
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

log = logging.getLogger(__name__)


def _to_8bit(im: Image.Image) -> Image.Image:
    """I;16* (0..65535), I (32-bit ints: treated as 16-bit data, which is what PNG and TIFF store there) and F
    (floats in 0..1) as 8-bit grayscale."""
    values = np.asarray(im, dtype=np.float64)
    scale = 1.0 / 257.0 if im.mode != "F" else 255.0
    if im.mode == "F" and values.size and values.max() > 1.0:  # floats already in 0..255
        scale = 1.0
    return Image.fromarray(np.clip(np.rint(values * scale), 0, 255).astype(np.uint8), mode="L")


def _upright(im: Image.Image) -> Image.Image:
    """Applies the EXIF orientation; a damaged EXIF block (a corrupt phone photo) leaves the picture as stored."""
    try:
        return ImageOps.exif_transpose(im)
    except (SyntaxError, ValueError, TypeError, KeyError, struct.error) as err:  # PIL's EXIF parser raises these
        log.warning(f"EXIF orientation of {getattr(im, 'filename', 'an image') or 'an image'} unreadable ({err})")
        return im


def to_rgb(im: Image.Image) -> Image.Image:
    """An 8-bit RGB copy of `im`, upright, with transparency composited onto white."""
    im = _upright(im)
    if im.mode.startswith("I") or im.mode == "F":
        im = _to_8bit(im)
    if "transparency" in im.info:  # a transparent palette entry, or a tRNS color in an L or RGB PNG
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")


class UnreadableImage(OSError):
    """A file that does not decode as an image (truncated, not an image, not a regular file)."""


# What PIL raises for a file it cannot decode; anything else raised while converting is a bug of ours.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError)


def is_regular_file(path: Path) -> bool:
    """Whether `path` is a regular file: opening a FIFO or a device would block or read forever."""
    try:
        return os.stat(path).st_mode & 0o170000 == 0o100000
    except OSError:
        return False


# Record format -> the module that registers its reader (with register_record_reader) when imported.
RECORD_FORMATS = {
    "cifar10-bin": "data.suites.cifar",
    "cifar100-bin": "data.suites.cifar",
    "cifar-pickle": "data.suites.cifar",
}
RecordReader = Callable[[Path, int], Image.Image]  # (container file, record index) -> 8-bit RGB; UnreadableImage
_record_readers: dict[str, RecordReader] = {}


def register_record_reader(record_format: str, reader: RecordReader) -> None:
    """Makes load_rgb read `<container>/<record_format>#<index>` paths with `reader` (a format of RECORD_FORMATS)."""
    if record_format not in RECORD_FORMATS:
        raise ValueError(f"record format {record_format!r} is not in data.images.RECORD_FORMATS")
    _record_readers[record_format] = reader


def record_name(record_format: str, index: int) -> str:
    """The last part of a record path: `<format>#<index>` (see the module docstring)."""
    return f"{record_format}#{index}"


def record_path(container: Path, record_format: str, index: int) -> Path:
    """The path naming record `index` of `container` (see the module docstring)."""
    return Path(container) / record_name(record_format, index)


def parse_record_path(path: Path) -> tuple[Path, str, int] | None:
    """(container, format, index) of a record path; None for any other path (an image file)."""
    record_format, sep, index = Path(path).name.rpartition("#")
    if not sep or record_format not in RECORD_FORMATS or not (index.isascii() and index.isdigit()):
        return None
    container = Path(path).parent
    return None if container.is_dir() else (container, record_format, int(index))


def stored_file(path: Path) -> Path:
    """The file on disk that holds `path`'s image: the path itself, or a record path's container."""
    record = parse_record_path(path)
    return record[0] if record else Path(path)


def _read_record(container: Path, record_format: str, index: int) -> Image.Image:
    if record_format not in _record_readers:
        importlib.import_module(RECORD_FORMATS[record_format])  # registers the reader
    return _record_readers[record_format](container, index)


def load_rgb(path: Path) -> Image.Image:
    """Decodes the whole file (Image.open is lazy; decoding is what catches truncated files) into 8-bit RGB; a record
    path (see the module docstring) is read by its format's reader.

    Raises UnreadableImage for a file that cannot be decoded, including a non-regular one.
    """
    if "#" in os.fspath(path):  # a cheap test first: most paths are image files
        record = parse_record_path(path)
        if record is not None:
            return _read_record(*record)
    if not is_regular_file(path):
        raise UnreadableImage(f"not a regular file: {path}")
    try:
        im = Image.open(path)
        im.load()
    except _DECODE_ERRORS as err:
        raise UnreadableImage(str(err) or type(err).__name__) from err
    with im:
        return to_rgb(im)
