"""A corpus of pictures made the way cameras, phones, scanners and the web make them; nothing downloaded.

Every picture shows the same scene as a viewer displays it: blue, with a red mark in the top-left
corner (and, where the kind has transparency, a see-through bottom-left corner). A test decodes
what would reach Miro, turns it as a viewer does (EXIF orientation) and looks at both corners.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pillow_heif
import pyvips
from PIL import Image

WIDTH, HEIGHT = 96, 64
RED, BLUE, GREEN = (220, 20, 20), (30, 60, 200), (20, 200, 40)
MARK = (6, 4)  # inside the red top-left mark
FAR = (88, 8)  # blue, far from the mark
HOLE = (6, 58)  # bottom-left: transparent where the kind has transparency

# What a viewer applies for each EXIF orientation (Pillow's exif_transpose); the stored pixels are
# the displayed scene turned the other way.
_SHOWN_BY = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
             5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
             8: Image.Transpose.ROTATE_90}
_UNDO = {**_SHOWN_BY, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


@dataclass(frozen=True)
class Picture:
    name: str
    kind: str  # what sniff must say
    alpha: bool = False  # the HOLE corner must stay see-through
    frames: int = 1  # an animation must keep them
    note: str | None = None  # what the conversion must say it did


def scene(mode: str = "RGB", colour: tuple[int, int, int] = RED, width: int = WIDTH, height: int = HEIGHT) -> Image.Image:
    im = Image.new(mode, (width, height), BLUE if mode == "RGB" else (*BLUE, 255))
    im.paste(colour if mode == "RGB" else (*colour, 255), (0, 0, width // 4, height // 4))
    if mode == "RGBA":
        im.paste((0, 0, 0, 0), (0, height - height // 4, width // 4, height))
    return im


def _save(im: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **options)
    return out.getvalue()


def _vips_16bit(fmt: str) -> bytes:
    im = pyvips.Image.new_from_memory(scene().tobytes(), WIDTH, HEIGHT, 3, "uchar")
    im = (im.cast("ushort") * 257).cast("ushort").copy(interpretation="rgb16")
    return im.write_to_buffer(f".{fmt}")


def _heic() -> bytes:
    out = io.BytesIO()
    pillow_heif.from_pillow(scene()).save(out, quality=90)
    return out.getvalue()


def _animation(fmt: str) -> bytes:
    frames = [scene(colour=c) for c in (RED, GREEN, RED)]
    return _save(frames[0], fmt, save_all=True, append_images=frames[1:], duration=200, loop=0,
                 **({"lossless": True} if fmt == "WEBP" else {}))


def _oriented(orientation: int) -> bytes:
    stored = scene() if orientation == 1 else scene().transpose(_UNDO[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _save(stored, "JPEG", quality=92, exif=exif)


def _pages() -> bytes:
    return _save(scene(), "TIFF", save_all=True, append_images=[scene(colour=GREEN)])


def _cmyk() -> bytes:
    return _save(scene().convert("CMYK"), "JPEG", quality=92)


def small_corpus() -> dict[Picture, bytes]:
    """Every common kind, small: each one decodes in milliseconds."""
    pictures: dict[Picture, bytes] = {
        Picture("baseline.jpg", "jpeg"): _save(scene(), "JPEG", quality=92),
        Picture("progressive.jpg", "jpeg"): _save(scene(), "JPEG", quality=92, progressive=True),
        Picture("cmyk.jpg", "jpeg"): _cmyk(),
        Picture("rgb8.png", "png"): _save(scene(), "PNG"),
        Picture("rgb16.png", "png"): _vips_16bit("png"),
        Picture("palette.png", "png"): _save(scene().convert("P", palette=Image.Palette.ADAPTIVE, colors=8), "PNG"),
        Picture("alpha.png", "png", alpha=True): _save(scene("RGBA"), "PNG"),
        Picture("still.gif", "gif"): _save(scene(), "GIF"),
        Picture("animated.gif", "gif", frames=3): _animation("GIF"),
        Picture("lossy.webp", "webp"): _save(scene(), "WEBP", quality=90),
        Picture("lossless.webp", "webp"): _save(scene(), "WEBP", lossless=True),
        Picture("alpha.webp", "webp", alpha=True): _save(scene("RGBA"), "WEBP", lossless=True),
        Picture("animated.webp", "webp", frames=3): _animation("WEBP"),
        Picture("photo.avif", "avif"): _save(scene(), "AVIF", quality=90),
        Picture("phone.heic", "heic"): _heic(),
        Picture("scan8.tif", "tiff"): _save(scene(), "TIFF"),
        Picture("scan16.tif", "tiff"): _vips_16bit("tif"),
        Picture("pages.tif", "tiff", note="first page of 2"): _pages(),
        Picture("paint.bmp", "bmp"): _save(scene(), "BMP"),
    }
    for orientation in range(1, 9):
        pictures[Picture(f"orientation-{orientation}.jpg", "jpeg")] = _oriented(orientation)
    return pictures


BIG_WIDTH, BIG_HEIGHT = 8660, 5774  # 50 MP, a high-end camera's photo


def write_big_jpeg(path: Path) -> Path:
    """A 50 MP camera-like JPEG over 6 MB (noise does not compress), drawn by libvips in strips."""
    noise = pyvips.Image.gaussnoise(BIG_WIDTH, BIG_HEIGHT, sigma=30, mean=0)
    base = pyvips.Image.black(BIG_WIDTH, BIG_HEIGHT, bands=3) + list(BLUE)
    mark = pyvips.Image.black(BIG_WIDTH // 4, BIG_HEIGHT // 4, bands=3) + [RED[0] - BLUE[0], RED[1] - BLUE[1], RED[2] - BLUE[2]]
    base = base.insert(mark + list(BLUE), 0, 0)
    (base + noise).cast("uchar").jpegsave(str(path), Q=90)
    return path
