"""What kind of image a file is, whether it decodes, and the bytes to send to Miro.

* :func:`sniff` names the type from the first bytes (never from the extension): the watcher's
  cheap check, no Pillow.
* :func:`inspect` validates a file with memory kept low: a JPEG by its structure
  (:mod:`shared.jpegcheck`: every segment and scan walked to the end-of-image marker, no pixel
  decoded; Pillow reads only its header, for the EXIF orientation), a PNG by streaming its
  chunks (CRC of each, zlib stream complete, exactly the number of bytes its header promises,
  IEND present) without building the picture; other kinds by decoding them.
* :func:`prepare_upload` gives the bytes for Miro's multipart upload, without the GPS position
  unless asked to keep it (:mod:`shared.exifgps`; :func:`carries_gps` tells the worker which
  files may not go by URL, since the image server sends a file as it is).

Formats. Miro's accepted formats are unconfirmed (research/miro-api.md §1d); a downloaded
``imageUrl`` comes back as PNG, SVG or JPEG. So PNG, JPEG and GIF go as they are (when they fit
``max_bytes``), and WebP, BMP, TIFF, AVIF, HEIC/HEIF are converted: JPEG for opaque pictures,
PNG when there is transparency. Converted files lose their metadata (EXIF, GPS) and are turned
upright first (EXIF orientation), since the tag goes with the metadata.

HEIC/HEIF needs the optional ``pillow-heif`` package (``pip install 'miro-sync[heic]'``):
libheif cannot decode at reduced scale, so a 12-megapixel iPhone photo costs about 90-100 MB on
top of the worker's baseline (measured peak 147 MB), which breaks the worker's 100 MB budget.
Without it, HEIC files are refused with a reason that says how to enable them.

Progressive JPEGs are the other exception: libjpeg keeps all their coefficients in memory at any
scale. Above ~17 MP they are sent as they are when they fit; they cannot be converted within the
budget and are refused when too big.

Pillow is imported on first use: the watcher only sniffs and must stay small.
"""

from __future__ import annotations

import importlib.util
import io
import math
import os
import struct
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from shared import exifgps, jpegcheck

SNIFF_BYTES = 32
"""How many leading bytes :func:`sniff` needs."""

MAX_PIXELS = 100_000_000
"""Decompression-bomb guard: larger pictures are refused whatever their format."""

DECODE_BUDGET_BYTES = 50 * 2**20
"""Memory one full decode (conversion, downscaling) may take. The worker's budget is 100 MB peak
RSS and its baseline (Python, Pillow, RQ, requests) about 48 MB."""

_PROGRESSIVE_BYTES_PER_PIXEL = 3
_BYTES_PER_PIXEL = {"webp": 16, "avif": 13}
"""Measured peak cost of a full decode with Pillow 13 (libwebp and libavif hold extra frame
buffers); other formats cost Pillow's 4 bytes a pixel. HEIC is counted at 4 although libheif
takes about twice that: enabling it (an extra) accepts that cost for 12-megapixel phone photos."""


def decode_limit(kind: str) -> int:
    """The largest picture (pixels) of this kind decoded in full; JPEGs are decoded at a reduced
    scale to stay under it, other kinds above it are refused for conversion."""
    return DECODE_BUDGET_BYTES // _BYTES_PER_PIXEL.get(kind, 4)


SAFE_KINDS = frozenset({"png", "jpeg", "gif"})
"""Sent as they are when they fit."""

CONVERTED_KINDS = frozenset({"webp", "bmp", "tiff", "avif", "heic", "heif"})
"""Decoded and re-encoded as JPEG or PNG before upload."""

CONTENT_TYPES = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
    "avif": "image/avif",
    "heic": "image/heic",
    "heif": "image/heif",
}

_JPEG_QUALITIES = (90, 82, 74, 66)
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}
_HEIF_BRANDS = {b"mif1", b"msf1", b"mif2"}
_AVIF_BRANDS = {b"avif", b"avis"}
_BMP_HEADER_SIZES = {12, 40, 52, 56, 64, 108, 124}


class BadImage(ValueError):
    """The file is not an image we can send; ``str()`` is a short reason for a person."""


@dataclass(frozen=True)
class ImageInfo:
    kind: str  # a key of CONTENT_TYPES
    content_type: str
    width: int  # as displayed: EXIF orientation applied
    height: int
    size: int  # bytes on disk


@dataclass(frozen=True)
class Upload:
    content: bytes
    content_type: str
    filename: str
    width: int
    height: int
    converted: str | None  # what was done, for the log; None when the file goes as it is
    stripped: str | None = None  # metadata cut out of a file otherwise sent as it is ("gps"), for the log


# --- sniffing (pure) ---------------------------------------------------------------------------


def sniff(head: bytes) -> str | None:
    """The image type named by the leading bytes, or None when they are not an image we know."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head[:2] == b"BM" and len(head) >= 18 and struct.unpack_from("<I", head, 14)[0] in _BMP_HEADER_SIZES:
        return "bmp"
    if head[4:8] == b"ftyp" and len(head) >= 12:
        return _iso_brand(head)
    return None


def _iso_brand(head: bytes) -> str | None:
    """HEIF family by ``ftyp`` brands: the major brand, then the compatible ones we can see."""
    box_size = struct.unpack_from(">I", head, 0)[0]
    end = min(len(head), box_size if box_size >= 16 else 16)
    brands = [head[8:12]] + [head[i : i + 4] for i in range(16, end - 3, 4)]
    for brand in brands:
        if brand in _AVIF_BRANDS:
            return "avif"
        if brand in _HEIC_BRANDS:
            return "heic"
    if any(b in _HEIF_BRANDS for b in brands):
        return "heif"
    return None


def describe_non_image(head: bytes) -> str:
    """A short reason for bytes :func:`sniff` refused, naming what they look like when obvious."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "not an image (HTML)"
    if text.startswith((b"<svg", b"<?xml")):
        return "not an image we can send (SVG/XML)"
    if head.startswith(b"%PDF"):
        return "not an image (PDF)"
    return "not an image"


def unsupported_reason(kind: str) -> str | None:
    """Why a sniffed kind cannot be handled here, or None when it can."""
    if kind in ("heic", "heif") and importlib.util.find_spec("pillow_heif") is None:
        return f"{kind.upper()} is not enabled (install miro-sync[heic]) or save the picture as JPEG"
    return None


def sendable_as_is(info: ImageInfo, max_bytes: int) -> bool:
    """True when :func:`prepare_upload` would send the file's own bytes (unchanged, or with only its
    GPS position cut out), not a converted copy. A URL serves it unchanged: see :func:`carries_gps`."""
    return info.kind in SAFE_KINDS and info.size <= max_bytes


# --- Pillow, loaded on first use ---------------------------------------------------------------

_pil_ready = False


def preload() -> None:
    """Import Pillow and its plugins now (the worker calls this at start so the first job is fast)."""
    global _pil_ready
    if _pil_ready:
        return
    from PIL import Image

    Image.init()
    if importlib.util.find_spec("pillow_heif") is not None:
        import pillow_heif

        pillow_heif.register_heif_opener(thumbnails=False)
    # Our own guard (MAX_PIXELS) runs first and explains itself; Pillow's is a backstop.
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    _pil_ready = True


# --- inspect ----------------------------------------------------------------------------------


def inspect(path: str | os.PathLike) -> ImageInfo:
    """Validate ``path`` (cheaply, see the module's docstring); raise :class:`BadImage` with the reason."""
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
            width, height = _check_png(fh)
        elif kind == "jpeg":
            width, height = _check_jpeg(fh, size)
        else:
            width, height = _decode_check(fh, kind)
    return ImageInfo(kind, CONTENT_TYPES[kind], width, height, size)


def _guard_pixels(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise BadImage(f"invalid dimensions {width}x{height}")
    if width * height > MAX_PIXELS:
        raise BadImage(f"too many pixels ({width}x{height}, over {MAX_PIXELS // 1_000_000} MP)")


def _open(fh: BinaryIO, kind: str):
    preload()
    from PIL import Image, UnidentifiedImageError

    try:
        im = Image.open(fh)
    except UnidentifiedImageError:
        raise BadImage(f"corrupt {kind} (cannot read its header)") from None
    except Image.DecompressionBombError:
        raise BadImage(f"too many pixels (over {MAX_PIXELS // 1_000_000} MP)") from None
    except (OSError, SyntaxError, ValueError, struct.error) as exc:
        raise BadImage(f"corrupt {kind} ({_short(exc)})") from None
    _guard_pixels(*im.size)
    return im


def _check_jpeg(fh: BinaryIO, size: int) -> tuple[int, int]:
    """By structure, not by decoding: a decode (even at 1/8 scale, which still reads every
    coefficient) cost ~7.5 ms per MB and passed files whose unwritten tail is zeros, which the
    structure refuses. What it alone caught, a few wrong bits in the entropy-coded data (2 in 100
    in bench/RESULTS.md), a picture made of them still shows, damaged.

    Pillow then parses the header only (~0.02 ms, nothing decoded): the orientation exactly as
    Pillow reads it (EXIF, else XMP), and proof that Pillow, which converts oversized files in
    :func:`prepare_upload`, can open it.
    """
    try:
        facts = jpegcheck.check(fh, size)
    except jpegcheck.JpegProblem as exc:
        raise BadImage(str(exc)) from None
    _guard_pixels(facts.width, facts.height)
    fh.seek(0)
    im = _open(fh, "jpeg")
    try:
        turned = _orientation(im) in (5, 6, 7, 8)
    finally:
        im.close()
    return (facts.height, facts.width) if turned else (facts.width, facts.height)


def _decode_check(fh: BinaryIO, kind: str) -> tuple[int, int]:
    im = _open(fh, kind)
    width, height = im.size
    if _orientation(im) in (5, 6, 7, 8):
        width, height = height, width
    try:
        if width * height > decode_limit(kind):
            raise BadImage(_too_large_to_convert(kind, width, height))
        for frame in range(getattr(im, "n_frames", 1)):
            im.seek(frame)
            im.load()
    except BadImage:
        raise
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, EOFError... for bad data
        raise BadImage(f"truncated or corrupt {kind} ({_short(exc)})") from None
    finally:
        im.close()
    return width, height


def _progressive_too_big(im) -> bool:
    """libjpeg holds every DCT coefficient of a progressive JPEG (about 3 bytes a pixel for 4:2:0),
    whatever the output scale: past the budget it cannot be converted (it can still go as it is)."""
    return bool(im.info.get("progressive")) and im.width * im.height * _PROGRESSIVE_BYTES_PER_PIXEL > DECODE_BUDGET_BYTES


def _orientation(im) -> int:
    try:
        return int(im.getexif().get(0x0112, 1))
    except Exception:  # a broken EXIF block does not make a broken picture
        return 1


def _too_large_to_convert(kind: str, width: int, height: int) -> str:
    return f"too large to convert ({kind} {width}x{height}, limit {decode_limit(kind) / 1e6:.1f} MP)"


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 80 else text[:77] + "..."


# --- PNG: a streaming structural check ---------------------------------------------------------

_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
_PIECE = 1 << 16


def _png_raw_size(width: int, height: int, bit_depth: int, color_type: int, interlaced: bool) -> int:
    """Bytes the decompressed IDAT stream must hold: filter byte + packed samples per row."""
    bits = _PNG_CHANNELS[color_type] * bit_depth
    passes = _ADAM7 if interlaced else ((0, 0, 1, 1),)
    total = 0
    for x0, y0, dx, dy in passes:
        w = (width - x0 + dx - 1) // dx
        h = (height - y0 + dy - 1) // dy
        if w > 0 and h > 0:
            total += h * (1 + (w * bits + 7) // 8)
    return total


def _check_png(fh: BinaryIO) -> tuple[int, int]:
    """Walk every chunk (CRC), inflate IDAT into nothing and count: memory stays at one piece."""
    fh.read(8)
    inflater = zlib.decompressobj()
    produced = 0
    expected = None
    width = height = 0
    first = True
    while True:
        header = fh.read(8)
        if len(header) < 8:
            raise BadImage("truncated png (ends before IEND)")
        length, ctype = struct.unpack(">I4s", header)
        if length > 0x7FFFFFFF:
            raise BadImage("corrupt png (bad chunk length)")
        crc = zlib.crc32(ctype)
        if first:
            if ctype != b"IHDR" or length != 13:
                raise BadImage("corrupt png (no IHDR)")
            data = fh.read(13)
            if len(data) < 13:
                raise BadImage("truncated png (ends in IHDR)")
            crc = zlib.crc32(data, crc)
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", data)
            if color not in _PNG_CHANNELS:
                raise BadImage("corrupt png (bad colour type)")
            _guard_pixels(width, height)
            expected = _png_raw_size(width, height, depth, color, interlace == 1)
            first = False
        else:
            remaining = length
            while remaining:
                piece = fh.read(min(remaining, _PIECE))
                if not piece:
                    raise BadImage(f"truncated png (ends in {ctype.decode('latin-1')} chunk)")
                remaining -= len(piece)
                crc = zlib.crc32(piece, crc)
                if ctype == b"IDAT":
                    produced += _inflate_count(inflater, piece, expected or 0, produced)
        stored = fh.read(4)
        if len(stored) < 4:
            raise BadImage("truncated png (ends in a checksum)")
        if struct.unpack(">I", stored)[0] != crc:
            raise BadImage(f"corrupt png (bad checksum in {ctype.decode('latin-1')} chunk)")
        if ctype == b"IEND":
            break
    if not inflater.eof or produced != expected:
        raise BadImage(f"truncated png (image data {produced} of {expected} bytes)")
    return width, height


def _inflate_count(inflater, piece: bytes, expected: int, produced: int) -> int:
    count = 0
    try:
        out = inflater.decompress(piece, _PIECE)
        while True:
            count += len(out)
            if produced + count > expected:
                raise BadImage("corrupt png (more image data than its size)")
            if not inflater.unconsumed_tail:
                return count
            out = inflater.decompress(inflater.unconsumed_tail, _PIECE)
    except zlib.error as exc:
        raise BadImage(f"corrupt png ({_short(exc)})") from None


# --- prepare_upload ---------------------------------------------------------------------------


def prepare_upload(path: str | os.PathLike, info: ImageInfo, max_bytes: int, keep_gps: bool = False) -> Upload:
    """The bytes to upload: the file itself when it is safe and fits, else a converted copy.

    Unless ``keep_gps``, the file's GPS position is cut out of its metadata in place (pixels and
    every other tag untouched, ``stripped="gps"``); when its EXIF is too damaged for that, the
    picture is converted instead, which drops all metadata. Converted copies never carry any.

    Conversions keep the pixel size when they can; otherwise JPEG quality steps down, then the
    picture is scaled down until it fits ``max_bytes``.
    """
    path = Path(path)
    if sendable_as_is(info, max_bytes):
        with open(path, "rb") as fh:
            content = fh.read(max_bytes + 1)
        if len(content) <= max_bytes:  # it may have grown since inspect(); then convert
            try:
                stripped = None if keep_gps else exifgps.remove_gps(content, info.kind)
            except exifgps.Unremovable as exc:
                why = f"GPS not removable in place: {exc}"
                try:
                    upload = _convert(path, info, max_bytes)
                except BadImage as problem:
                    raise BadImage(f"{problem}; {why}") from None
                return replace(upload, converted=f"{upload.converted} ({why})", stripped="metadata")
            if stripped is None:
                return Upload(content, info.content_type, path.name, info.width, info.height, None)
            if len(stripped) <= max_bytes:  # a PNG text chunk compressed again may grow a little
                return Upload(stripped, info.content_type, path.name, info.width, info.height, None, "gps")
        del content
    return _convert(path, info, max_bytes)


def carries_gps(path: str | os.PathLike, kind: str) -> bool:
    """True when the file as it is would tell where it was taken (or its metadata is too damaged
    to tell): it may then not be served by URL. Reads its metadata only."""
    if kind not in exifgps.KINDS:
        return False
    with open(path, "rb", buffering=0) as fh:

        def read(offset: int, n: int) -> bytes:
            fh.seek(offset)
            return fh.read(n)

        return exifgps.has_gps(read, kind)


def _convert(path: Path, info: ImageInfo, max_bytes: int) -> Upload:
    from PIL import Image, ImageOps

    notes: list[str] = []
    with open(path, "rb") as fh:
        im = _open(fh, info.kind)
        source_size = im.size
        try:
            if info.kind == "jpeg" and _progressive_too_big(im):
                raise BadImage(f"too large to convert (progressive jpeg {im.width}x{im.height}, over {DECODE_BUDGET_BYTES >> 20} MB to decode)")
            if info.kind == "jpeg":
                scale = _draft_scale(*im.size, decode_limit("jpeg"))
                if scale > 1:
                    im.draft(im.mode, (math.ceil(im.width / scale), math.ceil(im.height / scale)))
            elif im.width * im.height > decode_limit(info.kind):
                raise BadImage(_too_large_to_convert(info.kind, *im.size))
            if getattr(im, "n_frames", 1) > 1:
                notes.append("first frame")
            im.load()
        except BadImage:
            raise
        except Exception as exc:
            raise BadImage(f"truncated or corrupt {info.kind} ({_short(exc)})") from None
    icc = im.info.get("icc_profile")
    if _orientation(im) != 1:
        im = ImageOps.exif_transpose(im)
        notes.append("turned upright")
    alpha = _has_alpha(im)
    im = _to_mode(im, "RGBA" if alpha else "RGB")
    fmt = "PNG" if alpha else "JPEG"

    scale = 1.0
    while True:
        candidate = im if scale == 1.0 else im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.Resampling.LANCZOS)
        for quality in _JPEG_QUALITIES if fmt == "JPEG" else (None,):
            content = _encode(candidate, fmt, quality, icc)
            if len(content) <= max_bytes:
                what = f"{info.kind}->{fmt.lower()}"
                if quality is not None:
                    what += f" q{quality}"
                if candidate.size != source_size:
                    what += f" {source_size[0]}x{source_size[1]}->{candidate.width}x{candidate.height}"
                suffix = ".jpg" if fmt == "JPEG" else ".png"
                return Upload(content, f"image/{fmt.lower()}", path.stem + suffix, candidate.width, candidate.height, " ".join([what, *notes]))
        # Bytes grow roughly with the pixel count: aim under the limit, at least a 20 % step.
        scale *= min(0.8, math.sqrt(max_bytes / len(content)) * 0.95)
        if im.width * scale < 16 or im.height * scale < 16:
            raise BadImage(f"cannot fit {info.kind} under {max_bytes} bytes")


def _draft_scale(width: int, height: int, limit: int) -> int:
    """The smallest JPEG DCT scale (1, 2, 4, 8) that keeps the decoded picture within ``limit``."""
    for scale in (1, 2, 4, 8):
        if (width / scale) * (height / scale) <= limit:
            return scale
    return 8


def _has_alpha(im) -> bool:
    return im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (im.mode == "P" and "transparency" in im.info)


def _to_mode(im, mode: str):
    if im.mode == mode:
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grey: scale down to 8 bits first
        im = im.point(lambda v: v / 256).convert("L")
    return im.convert(mode)


def _encode(im, fmt: str, quality: int | None, icc: bytes | None) -> bytes:
    out = io.BytesIO()
    options: dict = {"icc_profile": icc} if icc else {}
    if fmt == "JPEG":
        im.save(out, "JPEG", quality=quality, **options)
    else:
        im.save(out, "PNG", compress_level=6, **options)
    return out.getvalue()
