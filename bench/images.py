"""Test pictures: photo-like JPEGs of a chosen size, PNGs, and cheap distinct copies of either.

A distinct copy carries a comment (JPEG ``COM`` segment, PNG ``tEXt`` chunk) with its number: the
bytes and so the hash differ (the pipeline uploads identical bytes once), while decoding costs the
same as the original. That makes 600 distinct 200 KB photos, or 100,000 small PNGs, in moments.
"""

from __future__ import annotations

import io
import math
import os
import random
import struct
import time
import zlib
from pathlib import Path

from PIL import Image, ImageChops


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """Smooth colour fields plus sensor-like grain: compresses like a photograph, not like noise."""
    rnd = random.Random(seed)
    sw, sh = max(2, width // 40), max(2, height // 40)
    base = Image.frombytes("RGB", (sw, sh), rnd.randbytes(sw * sh * 3)).resize((width, height), Image.Resampling.BICUBIC)
    grain = Image.effect_noise((width, height), 18).convert("RGB")
    return ImageChops.add(base, grain, scale=1.0, offset=-128)


def encode(im: Image.Image, fmt: str, quality: int = 88) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **({"quality": quality} if fmt == "JPEG" else {"compress_level": 6}))
    return out.getvalue()


def photo_near(target_bytes: int, fmt: str = "JPEG", seed: int = 0, aspect: float = 4 / 3, limit: int | None = None) -> bytes:
    """A photo-like picture of about ``target_bytes`` (within 10 %, never above ``limit``)."""
    width = 800
    data = b""
    for _ in range(8):
        height = max(2, round(width / aspect))
        data = encode(photo(width, height, seed), fmt)
        fits = limit is None or len(data) <= limit
        if fits and abs(len(data) - target_bytes) <= target_bytes * 0.1:
            return data
        width = max(16, round(width * math.sqrt(target_bytes / len(data)) * (0.97 if limit else 1.0)))
    if limit is not None and len(data) > limit:
        raise ValueError(f"could not make a {fmt} under {limit} bytes")
    return data


def tiny_png(seed: int = 0, side: int = 24) -> bytes:
    return encode(photo(side, side, seed), "PNG")


def variant(base: bytes, number: int) -> bytes:
    """``base`` with its number in a comment: distinct bytes, the same picture."""
    tag = f"miro-sync bench copy {number}".encode()
    if base.startswith(b"\xff\xd8"):
        return base[:2] + b"\xff\xfe" + struct.pack(">H", len(tag) + 2) + tag + base[2:]
    if base.startswith(b"\x89PNG\r\n\x1a\n"):
        body = b"Comment\x00" + tag
        chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
        end_of_ihdr = 8 + 8 + 13 + 4
        return base[:end_of_ihdr] + chunk + base[end_of_ihdr:]
    raise ValueError("not a JPEG or PNG")


def write(path: Path, data: bytes) -> float:
    """Write in place (create, write, close: inotify's close-after-write); the time of the close.

    The clock is read just before ``close()``: were this process preempted between the two, a
    reading taken after could come later than the services' reaction to the close (negative
    latencies were seen on a loaded machine); read before, a delay only counts against us.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except BaseException:
        os.close(fd)
        raise
    closed_at = time.time()
    os.close(fd)
    return closed_at


def drop(folder: Path, bases: list[bytes], count: int, prefix: str, suffix: str, start: int = 0) -> list[tuple[str, float]]:
    """Write ``count`` distinct copies (cycling through ``bases``) as fast as possible: (name, closed at)."""
    out = []
    for i in range(count):
        name = f"{prefix}{start + i:05d}{suffix}"
        out.append((name, write(folder / name, variant(bases[i % len(bases)], start + i))))
    return out
