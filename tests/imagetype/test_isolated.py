"""The converter child: a crash, a memory blow-up or a hang costs one picture, and the next converts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import pyvips
from PIL import Image

from shared.image import validate
from shared.image.isolated import Converter
from shared.image.memory import MB
from shared.image.validate import BadImage
from tests.imagetype import decoders
from tests.imagetype.pictures import encoded, noisy


@pytest.fixture
def bmp(tmp_path: Path) -> Path:
    path = tmp_path / "next.bmp"
    path.write_bytes(encoded(noisy(320, 240), "BMP"))
    return path


def _fails_then_next_converts(converter: Converter, path: Path, reason: str, decoder: Callable[..., object], *args: object) -> None:
    try:
        converter.start()
        failed = converter.pid
        with pytest.raises(BadImage) as raised:
            converter.call(decoder, str(path), *args, kind="avif")
        assert str(raised.value) == reason
        upload = converter.prepare(path, 6 << 20)
        assert upload.content_type == "image/jpeg" and (upload.width, upload.height) == (320, 240)
        assert converter.pid is not None and converter.pid != failed  # a fresh child
    finally:
        converter.stop()


def test_a_crash_in_the_decoder_is_that_pictures_reason(bmp: Path) -> None:
    _fails_then_next_converts(Converter(seconds=20), bmp, "the AVIF decoder crashed on this file (SIGSEGV)", decoders.segfault)


def test_memory_over_the_limit_fails_cleanly(bmp: Path) -> None:
    converter = Converter(seconds=20, memory=64 << 20)
    assert len(converter.call(decoders.allocate, str(bmp), 16, kind="heic")) == 16 << 20  # under the cap: fine
    _fails_then_next_converts(converter, bmp, "converting this file needed more than 64 MB", decoders.allocate, 200)


def test_a_hang_is_killed_at_the_time_limit(bmp: Path) -> None:
    _fails_then_next_converts(Converter(seconds=1), bmp, "converting this file took longer than 1 s", decoders.hang)


def test_a_png_is_checked_here_and_a_jpeg_sends_only_its_orientation_to_the_child(tmp_path: Path, monkeypatch) -> None:
    """Pictures sent as they are: their structure walks and bytes never cross to the child (a PNG
    starts none); a JPEG's EXIF orientation, read by libvips, does, and a crash there is the picture's."""
    png = tmp_path / "a.png"
    png.write_bytes(encoded(noisy(96, 64), "PNG"))
    turned = tmp_path / "turned.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    turned.write_bytes(encoded(noisy(96, 64), "JPEG", exif=exif.tobytes()))
    converter = Converter(seconds=20)
    try:
        upload = converter.prepare(png, 6 << 20)
        assert upload.converted is None and upload.content == png.read_bytes()
        assert converter.pid is None, "a PNG started the converter child"
        info = converter.inspect(turned)
        assert (info.width, info.height) == (64, 96) and converter.pid is not None
        monkeypatch.setattr(validate, "jpeg_orientation", decoders.segfault)  # the child imports it by name
        with pytest.raises(BadImage, match=r"^the JPEG decoder crashed on this file \(SIGSEGV\)$"):
            converter.inspect(turned)
    finally:
        converter.stop()


def test_a_real_allocation_past_the_limit_is_named_so(tmp_path: Path) -> None:
    """libjpeg and glib say it in words of their own ("Insufficient memory", "Error creating thread"):
    a progressive 9 MP JPEG without chroma subsampling under small limits is never "corrupt"."""
    path = tmp_path / "progressive.jpg"
    pyvips.Image.xyz(3000, 3000).cast("uchar").bandjoin(0).write_to_file(f"{path}[Q=90,interlace,subsample_mode=off]")
    for megabytes in (16, 32, 64):
        converter = Converter(seconds=20, memory=megabytes * MB)
        try:
            with pytest.raises(BadImage, match=rf"^(reading|converting) this file needed more than {megabytes} MB$"):
                converter.prepare(path, 64 << 10)  # over it: converted
        finally:
            converter.stop()
