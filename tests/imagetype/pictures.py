"""Pictures for the imagetype tests (and the fuzzer's seeds, bench.fuzz.seeds), made with Pillow."""

from __future__ import annotations

import io

from PIL import Image


def noisy(width: int, height: int, mode: str = "RGB") -> Image.Image:
    """Photo-like noise: compresses badly, so a small picture makes a big file."""
    bands = [Image.effect_noise((width, height), 40 + 10 * i) for i in range(len(mode))]
    return Image.merge(mode, bands)


def encoded(im: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **options)
    return out.getvalue()


WHEN = "2024:05:17"  # the GPS date stamp: its bytes must be gone, not only unreachable


def gps_exif(endian: str = ">", orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif.endian = endian
    exif[0x0112] = orientation
    exif[0x010F] = "PhoneMaker"
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (48.0, 51.0, 24.5), 3: "E", 4: (2.0, 17.0, 40.25), 0x1D: WHEN})
    return exif
