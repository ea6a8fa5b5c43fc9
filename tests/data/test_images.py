"""Every image mode decodes to the 8-bit RGB picture a viewer shows; files that are not regular are skipped."""

import os
import struct

import numpy as np
import pytest
from PIL import Image, ImageOps

from data.images import load_rgb
from data.labeled import DataError, LabeledImages, Sample, load_image_folder
from data.loading import ImageDataset, check_some_readable


def pixel(path, xy=(0, 0)):
    return load_rgb(path).getpixel(xy)


def test_16_bit_grayscale_is_scaled_not_saturated(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((4, 4), 32768, np.uint16)).save(path)  # mid-gray in 16 bits
    assert Image.open(path).mode.startswith("I")
    assert pixel(path) == (128, 128, 128)  # 32768 / 257 = 127.5: not the white that convert("RGB") gives


def test_32_bit_int_and_float_images(tmp_path):
    Image.fromarray(np.full((4, 4), 65535, np.int32), mode="I").save(tmp_path / "i.tif")
    assert pixel(tmp_path / "i.tif") == (255, 255, 255)
    Image.fromarray(np.full((4, 4), 0.25, np.float32), mode="F").save(tmp_path / "f.tif")
    assert pixel(tmp_path / "f.tif") == (64, 64, 64)  # floats in 0..1 scale by 255


def test_transparency_is_composited_onto_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200  # red under the transparent half
    rgba[:, :2, 3] = 0  # left half fully transparent
    rgba[:, 2:, 3] = 255  # right half opaque
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    assert pixel(tmp_path / "rgba.png", (0, 0)) == (255, 255, 255)
    assert pixel(tmp_path / "rgba.png", (3, 0)) == (200, 0, 0)
    la = Image.fromarray(np.dstack([np.full((4, 4), 10, np.uint8), np.zeros((4, 4), np.uint8)]), "LA")
    la.save(tmp_path / "la.png")
    assert pixel(tmp_path / "la.png") == (255, 255, 255)


def test_palette_with_a_transparent_color(tmp_path):
    im = Image.new("P", (4, 4), 1)
    im.putpalette([0, 0, 0, 0, 0, 0] + [0] * 762)  # entries 0 and 1 are black
    im.info["transparency"] = 1  # ... and entry 1 is transparent
    im.save(tmp_path / "p.png", transparency=1)
    assert pixel(tmp_path / "p.png") == (255, 255, 255)  # convert("RGB") would give black


def test_cmyk_and_exif_rotated_jpeg(tmp_path):
    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")  # red in CMYK
    r, g, b = pixel(tmp_path / "cmyk.jpg")
    assert r > 200 and g < 60 and b < 60
    wide = Image.new("RGB", (8, 4), (0, 0, 255))
    wide.paste((255, 0, 0), (0, 0, 4, 4))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
    wide.save(tmp_path / "rotated.jpg", exif=exif, quality=100)
    upright = load_rgb(tmp_path / "rotated.jpg")
    assert upright.size == (4, 8)  # turned upright as the camera meant
    r, _, b = upright.getpixel((2, 1))  # the red half is on top after the turn
    assert r > 200 and b < 60


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_fifo_is_skipped_and_counted_not_waited_on(tmp_path, tiny_folder):
    os.mkfifo(tiny_folder / "star" / "pipe.png")  # opening it for reading would block forever
    data = load_image_folder(tiny_folder)
    fifo = [i for i, s in enumerate(data.samples) if s.path.name == "pipe.png"]
    assert len(fifo) == 1  # listed, so that it is counted
    dataset = ImageDataset(data, lambda im: np.asarray(im))
    assert dataset[fifo[0]] is None  # unreadable: skipped (and logged), not opened


def test_a_set_of_only_unreadable_files_fails_at_once(tmp_path):
    for i in range(20):
        (tmp_path / f"{i}.png").write_bytes(b"not an image")
    data = LabeledImages("broken", ["a"], [Sample(tmp_path / f"{i}.png", 0) for i in range(20)])
    with pytest.raises(
        DataError, match=r"none of 16 images tried in 'broken' could be read \(.*0\.png: cannot identify"
    ):
        check_some_readable(data)
    Image.new("RGB", (4, 4)).save(tmp_path / "19.png")  # one good image is enough to go on (and count the rest)
    check_some_readable(data)


def test_a_damaged_exif_block_keeps_the_picture_as_stored(tmp_path, caplog):
    # Big-endian TIFF header, then an IFD of 2 entries: ImageWidth typed as text ("desc", which PIL cannot write
    # back when it rotates) and Orientation 6. Pillow decodes the pixels, but exif_transpose raises struct.error.
    exif = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x02"
    exif += b"\x01\x00\x00\x02\x00\x00\x00\x05\x00\x00\x00\x26"  # ImageWidth, ASCII, 5 bytes at offset 38
    exif += b"\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00"  # Orientation, SHORT, 6
    exif += b"\x00\x00\x00\x00desc\x00"
    Image.new("RGB", (8, 4), (255, 0, 0)).save(tmp_path / "photo.jpg", exif=exif)
    with pytest.raises(struct.error):
        ImageOps.exif_transpose(Image.open(tmp_path / "photo.jpg"))  # what a bare decode would crash on
    assert load_rgb(tmp_path / "photo.jpg").size == (8, 4)  # decoded as stored, not a crash
    assert "EXIF orientation of" in caplog.text


def test_a_transparent_color_in_an_rgb_png_is_composited_onto_white(tmp_path):
    im = Image.new("RGB", (4, 4), (0, 0, 0))
    im.save(tmp_path / "trns.png", transparency=(0, 0, 0))  # tRNS: black means transparent
    assert Image.open(tmp_path / "trns.png").info.get("transparency") == (0, 0, 0)
    assert pixel(tmp_path / "trns.png") == (255, 255, 255)
