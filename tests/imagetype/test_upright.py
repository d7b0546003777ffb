"""A JPEG stored turned (EXIF orientation other than 1) leaves upright with orientation 1.

The camera picture as a user met it: 2000x1500 stored, orientation 6 (shown 1500x2000), a red
corner where the sensor's top-left was, which a viewer shows top-right.
"""

from __future__ import annotations

import io
import os
import shutil

import pytest
from PIL import Image, ImageChops

from shared.image import upright
from shared.imagetype import inspect, prepare_upload
from tests.imagetype.test_gps import assert_no_gps, gps_exif

RED = (255, 0, 0)
GREY = (128, 128, 128)
MAX = 6 << 20


def camera_jpeg(width: int = 2000, height: int = 1500, exif: Image.Exif | None = None) -> bytes:
    """Stored ``width`` x ``height``, orientation 6, red in the stored top-left corner."""
    im = Image.new("RGB", (width, height), GREY)
    im.paste(RED, (0, 0, 200, 200))
    exif = exif if exif is not None else Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "Camera maker"
    out = io.BytesIO()
    im.save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


def assert_upright_raw(data: bytes, width: int, height: int) -> None:
    """Decoded WITHOUT EXIF handling: portrait pixels, red top-right, orientation 1 or none."""
    with Image.open(io.BytesIO(data)) as im:
        assert im.size == (width, height)
        assert im.getexif().get(0x0112, 1) == 1
        rgb = im.convert("RGB")
        near = lambda xy, colour: all(abs(a - b) <= 8 for a, b in zip(rgb.getpixel(xy), colour))  # noqa: E731
        assert near((width - 50, 50), RED) and near((50, 50), GREY) and near((50, height - 50), GREY)


def drop(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


needs_jpegtran = pytest.mark.skipif(shutil.which("jpegtran") is None, reason="jpegtran (libjpeg-turbo-progs) not installed")


@needs_jpegtran
def test_whole_mcus_turn_losslessly_keeping_metadata_but_gps(tmp_path):
    exif = gps_exif()
    path = drop(tmp_path, "cam.jpg", camera_jpeg(2048, 1536, exif))
    info = inspect(path)
    assert (info.width, info.height, info.orientation) == (1536, 2048, 6)

    up = prepare_upload(path, info, MAX)

    assert up.converted == "turned upright (lossless)" and up.stripped == "gps"
    assert (up.width, up.height) == (1536, 2048)
    assert_upright_raw(up.content, 1536, 2048)
    assert_no_gps(up.content)
    with Image.open(io.BytesIO(up.content)) as im:
        assert im.getexif()[0x0112] == 1 and im.getexif()[0x010F] == "Camera maker"
        # Lossless: the quantisation tables are the file's own, transposed with the blocks (a
        # re-encode writes libvips' q90 ones), and the pixels are the original's turned, to rounding.
        with Image.open(path) as original:
            assert {k: sorted(v) for k, v in im.quantization.items()} == {k: sorted(v) for k, v in original.quantization.items()}
            turned = original.convert("RGB").transpose(Image.Transpose.ROTATE_270)
            # within the rounding of the IDCT and chroma upsampling, which are not symmetric
            assert max(high for _, high in ImageChops.difference(im.convert("RGB"), turned).getextrema()) <= 2


def test_partial_mcus_are_reencoded_upright(tmp_path):
    # 1500 rows is not a whole number of 16-row MCUs: jpegtran -perfect refuses, the converter turns it.
    path = drop(tmp_path, "cam.jpg", camera_jpeg())
    info = inspect(path)

    up = prepare_upload(path, info, MAX)

    assert up.converted is not None and "turned upright" in up.converted and "lossless" not in up.converted
    assert (up.width, up.height) == (1500, 2000)
    assert_upright_raw(up.content, 1500, 2000)


def test_without_jpegtran_it_is_reencoded_upright(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", os.fspath(tmp_path))  # no jpegtran there
    path = drop(tmp_path, "cam.jpg", camera_jpeg(2048, 1536))

    up = prepare_upload(path, inspect(path), MAX)

    assert up.converted is not None and "lossless" not in up.converted
    assert_upright_raw(up.content, 1536, 2048)


def test_upright_jpeg_still_goes_as_it_is(tmp_path):
    im = Image.new("RGB", (64, 48), GREY)
    out = io.BytesIO()
    im.save(out, "JPEG", quality=90)
    path = drop(tmp_path, "plain.jpg", out.getvalue())

    up = prepare_upload(path, inspect(path), MAX)

    assert up.converted is None and up.content == out.getvalue()


def test_orientation_set_to_1_in_either_byte_order():
    for order in ("<", ">"):
        tiff = (b"II*\x00" if order == "<" else b"MM\x00*") + (8).to_bytes(4, "little" if order == "<" else "big")
        entry = (0x0112).to_bytes(2, "little" if order == "<" else "big") + (3).to_bytes(2, "little" if order == "<" else "big")
        entry += (1).to_bytes(4, "little" if order == "<" else "big") + (8).to_bytes(2, "little" if order == "<" else "big") + b"\0\0"
        count = (1).to_bytes(2, "little" if order == "<" else "big")
        body = b"Exif\x00\x00" + tiff + count + entry + bytes(4)
        jpeg = b"\xff\xd8\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body + b"\xff\xda"
        fixed = upright.set_orientation_1(jpeg)
        assert fixed is not None and len(fixed) == len(jpeg)
        assert fixed.replace(entry[:8] + entry[8:10], entry[:8] + (1).to_bytes(2, "little" if order == "<" else "big")) == fixed
        assert entry not in fixed
