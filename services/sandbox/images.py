"""What a stored picture is: does it decode, how big is it, what type. Pure (bytes in, facts out)."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image


@dataclass(frozen=True)
class Picture:
    size: tuple[int, int] | None  # pixels; None when the bytes are not a picture Pillow can decode
    content_type: str | None  # from the decoded format; None when it does not decode


def inspect(content: bytes) -> Picture:
    try:
        with Image.open(io.BytesIO(content)) as img:
            img.load()  # decode fully: a truncated file opens fine but shows broken in a browser
            return Picture(img.size, Image.MIME.get(img.format or ""))
    except Exception:  # Pillow raises many types (UnidentifiedImageError, OSError, DecompressionBombError, ...)
        return Picture(None, None)
