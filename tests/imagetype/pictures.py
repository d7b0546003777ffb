"""Pictures for the imagetype tests, made with Pillow."""

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
