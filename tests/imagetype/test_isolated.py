"""The converter child: a crash, a memory blow-up or a hang costs one picture, and the next converts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from shared.image.isolated import Converter
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
