"""Is a file a picture we can send, and how big is it as a viewer shows it? :func:`inspect`.

Checked without decoding the picture where a structural check is cheaper and catches more:

* JPEG by its structure (:mod:`shared.image.jpeg`): every segment and scan walked to the
  end-of-image marker, nothing decoded. A 24 MP, 10.6 MB JPEG took 10 ms of CPU at 31 MB peak
  RSS, against 222 ms and 52 MB for a full libvips decode (``fail_on="warning"``), which also
  passed the same file with its second half zeros (unwritten tail): the structure refuses it.
* PNG by streaming its chunks (:func:`shared.image.png.check`: CRC of each, the zlib stream complete, exactly
  the bytes its header promises, IEND present), never building the picture. On a 24 MP, 74 MB
  PNG: 387 ms CPU at 29 MB, against 353 ms at 42 MB for a full libvips decode; but libvips
  (libpng) passed a PNG without IEND, a bad IEND or text-chunk CRC, and image data longer than
  the header promises (the inflate bomb), all of which this walk refuses.
* Other kinds by their header, read by the decoder that converts them (:mod:`shared.image.convert`):
  size, orientation, pages. Their pixels are decoded once, when they are converted; a truncated
  or corrupt one is refused then (:class:`BadImage`, the same ``file.rejected`` line). GIFs are
  sent as they are, so they are decoded here (libvips streams them, every frame).

Every kind is held to :data:`MAX_PIXELS` from its header, before anything is allocated for its
pixels: a file claiming 100,000 x 100,000 is refused in microseconds.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from shared.image import jpeg, memory, png
from shared.image.sniff import CONTENT_TYPES, SNIFF_BYTES, describe_non_image, sniff, unsupported_reason

MAX_PIXELS = 100_000_000
"""Decompression-bomb guard: a picture claiming more (any kind, any frame) is refused unread."""


class BadImage(ValueError):
    """The file is not an image we can send; ``str()`` is a short reason for a person."""


@dataclass(frozen=True)
class ImageInfo:
    kind: str  # a key of CONTENT_TYPES
    content_type: str
    width: int  # as displayed: orientation applied
    height: int
    size: int  # bytes on disk
    frames: int = 1  # pages of a TIFF, frames of an animated GIF or WebP
    convert_memory: int = 0  # bytes converting it takes at its peak, estimated from its header (shared.image.memory)
    too_big_to_convert: str | None = None
    """Why converting it would take more memory than :data:`shared.image.memory.BUDGET`, told from
    its header (None: it fits). Sent as it is, it needs no decoding and goes all the same."""
    orientation: int = 1  # a JPEG's EXIF orientation as libvips reads it (1: stored upright); others 1


class _Header(NamedTuple):
    width: int  # as displayed
    height: int
    frames: int = 1
    need: int = 0  # bytes converting it takes at its peak (shared.image.memory)
    what: str = ""  # the kind as the reason names it when that is too much ("progressive jpeg")
    orientation: int = 1


def inspect(path: str | os.PathLike[str], jpeg_turn: Callable[[Path], int] | None = None) -> ImageInfo:
    """Validate ``path`` (cheaply, see the module's docstring); raise :class:`BadImage` with the reason.

    ``jpeg_turn`` reads a JPEG's EXIF orientation (:func:`jpeg_orientation`, here by default): the
    one native call of a JPEG's check, which the worker's converter makes in its child.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            raise BadImage("empty file (0 bytes)")
        head = fh.read(SNIFF_BYTES)
        kind = sniff(head)
        if kind is None:
            raise BadImage(describe_non_image(head))
        problem = unsupported_reason(kind)
        if problem:
            raise BadImage(problem)
        fh.seek(0)
        if kind == "png":
            facts = _check_png(fh)
        elif kind == "jpeg":
            facts = _check_jpeg(fh, size, path, jpeg_turn or jpeg_orientation)
        else:
            facts = _header(path, kind)
    too_big = memory.refusal(facts.what or kind, facts.width, facts.height, facts.need) if facts.need > memory.BUDGET else None
    if kind == "gif":
        if too_big:  # checking it decodes every frame
            raise BadImage(too_big)
        _decode_gif(path)
    return ImageInfo(kind, CONTENT_TYPES[kind], facts.width, facts.height, size, facts.frames, facts.need, too_big, facts.orientation)


def guard_pixels(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise BadImage(f"invalid dimensions {width}x{height}")
    if width * height > MAX_PIXELS:
        raise BadImage(f"too many pixels ({width}x{height}, over {MAX_PIXELS // 1_000_000} MP)")


def short(exc: BaseException) -> str:
    """An exception as a reason for a person: libvips' multi-line errors on one short line."""
    text = " ".join((str(exc) or type(exc).__name__).split())
    return text if len(text) <= 100 else text[:97] + "..."


def _check_png(fh: BinaryIO) -> _Header:
    try:
        facts = png.check(fh, guard_pixels)
    except png.PngProblem as exc:
        raise BadImage(str(exc)) from None
    need = memory.png(facts.width * facts.height, facts.bands, facts.sample_bytes, facts.decoded_bytes if facts.interlaced else 0)
    return _Header(facts.width, facts.height, 1, need, "interlaced png" if facts.interlaced else "")


def _check_jpeg(fh: BinaryIO, size: int, path: Path, turn: Callable[[Path], int]) -> _Header:
    try:
        facts = jpeg.check(fh, size)
    except jpeg.JpegProblem as exc:
        raise BadImage(str(exc)) from None
    guard_pixels(facts.width, facts.height)
    exif_turn = turn(path)  # as libvips reads it (EXIF): what turns it upright when converted
    width, height = (facts.height, facts.width) if exif_turn in (5, 6, 7, 8) else (facts.width, facts.height)
    need = memory.jpeg(width * height, size, facts.coefficients)
    return _Header(width, height, 1, need, "progressive jpeg" if facts.coefficients else "", exif_turn)


def _header(path: Path, kind: str) -> _Header:
    """Displayed width, height, frame count and memory to convert from the header alone, held to :data:`MAX_PIXELS`."""
    if kind in ("heic", "heif"):
        facts = _heif_header(path, kind)
    elif kind in ("avif", "bmp"):
        facts = _pillow_header(path, kind)
    else:
        im = _vips_header(path, kind)
        width, height = im.width, im.get("page-height") if im.get_typeof("page-height") else im.height
        frames = im.get("n-pages") if im.get_typeof("n-pages") else 1
        if orientation(im) in (5, 6, 7, 8):
            width, height = height, width
        facts = _Header(width, height, frames, *_vips_memory(path, kind, width * height, frames))
    guard_pixels(facts.width, facts.height)
    return facts


def _vips_memory(path: Path, kind: str, pixels: int, frames: int) -> tuple[int, str]:
    """What converting it with libvips takes (:mod:`shared.image.memory`) and how the reason names it."""
    if kind in ("gif", "webp") and frames > 1:
        return memory.animation(pixels, path.stat().st_size), f"animated {kind}"
    if kind == "gif":
        return memory.gif(pixels), ""
    if kind == "webp":
        lossless = _webp_lossless(path)
        return memory.webp(pixels, path.stat().st_size, lossless), "lossless webp" if lossless else ""
    return memory.tiff(pixels), ""


def _webp_lossless(path: Path) -> bool:
    """True when the picture's bitstream is VP8L: the RIFF chunks after the header, up to the first VP8/VP8L."""
    with open(path, "rb") as fh:
        fh.seek(12)
        while len(chunk := fh.read(8)) == 8:
            fourcc, length = chunk[:4], int.from_bytes(chunk[4:], "little")
            if fourcc in (b"VP8 ", b"VP8L"):
                return fourcc == b"VP8L"
            fh.seek(length + (length & 1), os.SEEK_CUR)
    return False


def jpeg_orientation(path: Path) -> int:
    """A JPEG's EXIF orientation as libvips reads it, which is what turns it upright when converted."""
    return orientation(_vips_header(path, "jpeg"))


def orientation(im: Any) -> int:
    """The EXIF orientation libvips read (1, upright, when there is none)."""
    return int(im.get("orientation")) if im.get_typeof("orientation") else 1


def _vips_header(path: Path, kind: str) -> Any:
    import pyvips

    try:
        return pyvips.Image.new_from_file(str(path), fail_on="error")
    except pyvips.Error as exc:
        raise BadImage(f"corrupt {kind} ({short(exc)})") from None


def _pillow_header(path: Path, kind: str) -> _Header:
    from PIL import Image, UnidentifiedImageError

    from shared.image.convert import preload

    preload()
    try:
        with Image.open(path) as im:
            width, height = im.size
            turned = im.getexif().get(0x0112, 1) in (5, 6, 7, 8) if kind == "bmp" else False
            frames = getattr(im, "n_frames", 1)
            mode = im.mode
    except UnidentifiedImageError:
        raise BadImage(f"corrupt {kind} (cannot read its header)") from None
    except Image.DecompressionBombError:
        raise BadImage(f"too many pixels (over {MAX_PIXELS // 1_000_000} MP)") from None
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, struct.error...
        raise BadImage(f"corrupt {kind} ({short(exc)})") from None
    pixels = width * height
    if kind == "bmp":
        need = memory.bmp(pixels, palette=mode in ("P", "L", "1"))
    else:
        depth, chroma = _av1_planes(path)
        need = memory.avif(pixels, path.stat().st_size, depth, chroma, alpha=mode == "RGBA")
    return _Header(*((height, width) if turned else (width, height)), frames, need)


def _av1_planes(path: Path) -> tuple[int, str]:
    """An AVIF's bit depth and chroma subsampling, which Pillow does not tell: libheif reads the
    container (pillow-heif has no AV1 decoder, and needs none for this). Unreadable: the worst case."""
    import pillow_heif

    try:
        heif = pillow_heif.open_heif(path)
        return int(heif.info["bit_depth"]), str(heif.info["chroma"])
    except Exception:  # an AVIF libheif cannot parse is still Pillow's to decode
        return 12, "444"


def _heif_header(path: Path, kind: str) -> _Header:
    import pillow_heif

    try:
        heif = pillow_heif.open_heif(path, convert_hdr_to_8bit=True)
        width, height = heif.size  # libheif applies the container's rotation (irot) to it
        depth, chroma = int(heif.info["bit_depth"]), str(heif.info["chroma"])
        need = memory.heif(width * height, path.stat().st_size, depth, chroma, heif.has_alpha)
        return _Header(width, height, len(heif), need)
    except Exception as exc:  # libheif errors come as ValueError/RuntimeError with its message
        raise BadImage(f"corrupt {kind} ({short(exc)})") from None


def _decode_gif(path: Path) -> None:
    import pyvips

    try:
        pyvips.Image.new_from_file(str(path), n=-1, access="sequential", fail_on="error").avg()
    except pyvips.Error as exc:
        raise BadImage(f"truncated or corrupt gif ({short(exc)})") from None
