"""The bytes to send to Miro: the file itself when Miro takes it and it fits, else a converted copy.

Libraries, measured on this project's machine (24 MP pictures, 6000x4000; CPU is user + system of
all threads; peak RSS of the whole process; bench/RESULTS.md has the full table):

* **libvips** (``pyvips`` + ``pyvips-binary``) for JPEG, PNG, WebP, TIFF and GIF: it decodes at a
  reduced size while loading (JPEG DCT scaling, libwebp's scaled decode) and streams the rest
  (PNG, TIFF, baseline JPEG), so memory stays flat as pictures grow. A 24 MP WebP decoded to
  4096 px took 0.84 s at 122 MB, against 0.70 s at 395 MB for Pillow's full decode.
* **Pillow** for AVIF and BMP: Pillow's libavif decodes a 24 MP AVIF in 0.62 s at 238 MB, libvips'
  libheif in 1.43 s at 391 MB. libvips has no BMP loader in its binary build.
* **pillow-heif** for HEIC/HEIF: the libvips binary has no HEVC decoder. libheif cannot decode at
  a reduced size, so a 12 MP HEIC costs a full decode (about 1.1 s of CPU for a 7.5 MB file); its
  pixels are handed to libvips without a copy.

Conversion. A picture is decoded once, at most :data:`DECODE_PIXELS` (16.8 MP: a 6 MB JPEG at
quality 90 holds about that much photo; decoding more costs memory for pixels thrown away), and
kept in memory (at most 67 MB, RGBA). From there it is encoded until it fits ``max_bytes``: JPEG
at quality 90, then 82 and 74 when it is a little too big (every pixel kept), else scaled down by
the square root of the overshoot. Pictures with transparency become PNG, animations (GIF, WebP)
an animated GIF, everything else JPEG. Colours: CMYK is converted to sRGB (with the file's CMYK
profile, else libvips' built-in one; the copy has none), 16 bits to 8 (libvips' savers), and an
embedded ICC profile (Display P3 on phones) goes with the copy, which browsers apply, unless it is
over :data:`MAX_PROFILE` (dropped, noted); converting the pixels to sRGB instead cost 3 s of CPU at 24 MP. The picture is turned upright (EXIF
orientation, HEIF rotation), and no other metadata is kept: a converted copy carries no GPS position.

Memory (the goal: no conversion takes the worker past 300 MB). Some decoders hold the whole
picture whatever size it is decoded at: libjpeg a progressive JPEG's coefficients, libavif and
libheif their YUV planes and RGB picture, Pillow a BMP. :func:`~shared.image.validate.inspect`
estimates from the header what converting takes (:mod:`shared.image.memory`), and :func:`convert`
refuses a picture over the budget before decoding it (``BadImage``, "too big to convert within
memory (...)"); sent as it is, such a picture is never decoded and goes all the same. Pillow's
pixels reach libvips packed a strip at a time (:func:`_packed`), never as a second whole copy.

Files sent as they are keep every byte but their GPS position (:mod:`shared.image.gps`). A JPEG
stored turned (EXIF orientation other than 1) is not sent as it is: it goes upright with
orientation 1, turned losslessly by jpegtran when the picture allows (:mod:`shared.image.upright`,
metadata kept but GPS), else converted; a renderer that ignores the orientation then shows it as a
viewer does, in the box sized from the displayed picture.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from shared.image import allocator, gps, upright
from shared.image.memory import ANIMATION_PIXELS, DECODE_PIXELS
from shared.image.sniff import SAFE_KINDS
from shared.image.validate import MAX_PIXELS, BadImage, ImageInfo, orientation, short

_JPEG_QUALITIES = (90, 82, 74)
_VIPS_KINDS = frozenset({"jpeg", "png", "webp", "tiff", "gif"})
_SMALLEST_SIDE = 16
_STRIP_BYTES = 4 << 20  # Pillow's pixels are packed for libvips this much at a time


@dataclass(frozen=True)
class Upload:
    content: bytes
    content_type: str
    filename: str
    width: int
    height: int
    converted: str | None  # what was done, for the log; None when the file goes as it is
    stripped: str | None = None  # metadata cut out of a file otherwise sent as it is ("gps"), for the log


_ready = False


def preload() -> None:
    """Load the decoders now (the worker calls this at start so the first job is fast)."""
    global _ready
    if _ready:
        return
    import pillow_heif
    import pyvips
    from PIL import Image

    Image.init()
    pillow_heif.register_heif_opener(thumbnails=False)
    # Our guard (MAX_PIXELS, from the header) runs first and explains itself; Pillow's is a backstop.
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    # libvips' operation cache would keep decoded pictures alive between jobs.
    pyvips.cache_set_max(0)
    allocator.give_back_big_buffers()
    _ready = True


def sendable_as_is(info: ImageInfo, max_bytes: int) -> bool:
    """True when :func:`prepare_upload` would send the file's own bytes (unchanged, or with only its
    GPS position cut out), not a converted copy. A URL serves it unchanged: see :func:`carries_gps`;
    a JPEG stored turned is never sent as it is (:mod:`shared.image.upright`)."""
    return info.kind in SAFE_KINDS and info.size <= max_bytes and upright.upright(info.orientation)


def prepare_upload(path: str | os.PathLike[str], info: ImageInfo, max_bytes: int, keep_gps: bool = False,
                   converter: Callable[[Path, ImageInfo, int], Upload] | None = None) -> Upload:
    """The bytes to upload: the file itself when it is safe and fits, else a converted copy
    (made by ``converter``, :func:`convert` unless told: :mod:`shared.image.isolated` runs it in a child).

    Unless ``keep_gps``, the file's GPS position is cut out of its metadata in place (pixels and
    every other tag untouched, ``stripped="gps"``); when its EXIF is too damaged for that, the
    picture is converted instead, which drops all metadata. Converted copies never carry any.
    """
    path = Path(path)
    converter = converter or convert
    if info.kind == "jpeg" and not upright.upright(info.orientation) and info.size <= max_bytes:
        turned = _turned_lossless(path, info, max_bytes, keep_gps)
        if turned is not None:
            return turned
    if sendable_as_is(info, max_bytes):
        with open(path, "rb") as fh:
            content = fh.read(max_bytes + 1)
        if len(content) <= max_bytes:  # it may have grown since inspect(); then convert
            try:
                stripped = None if keep_gps else gps.remove_gps(content, info.kind)
            except gps.Unremovable as exc:
                why = f"GPS not removable in place: {exc}"
                try:
                    upload = converter(path, info, max_bytes)
                except BadImage as problem:
                    raise BadImage(f"{problem}; {why}") from None
                return replace(upload, converted=f"{upload.converted} ({why})", stripped="metadata")
            if stripped is None:
                return Upload(content, info.content_type, path.name, info.width, info.height, None)
            if len(stripped) <= max_bytes:  # a PNG text chunk compressed again may grow a little
                return Upload(stripped, info.content_type, path.name, info.width, info.height, None, "gps")
        del content
    return converter(path, info, max_bytes)


def _turned_lossless(path: Path, info: ImageInfo, max_bytes: int, keep_gps: bool) -> Upload | None:
    """A turned JPEG made upright by jpegtran, its metadata kept but GPS; None: convert it instead."""
    with open(path, "rb") as fh:
        content = upright.turn_lossless(fh.read(max_bytes + 1), info.orientation)
    if content is None:
        return None
    try:
        stripped = None if keep_gps else gps.remove_gps(content, "jpeg")
    except gps.Unremovable:
        return None  # converted: that drops all metadata
    content = stripped or content
    if len(content) > max_bytes:
        return None
    return Upload(content, info.content_type, path.name, info.width, info.height, "turned upright (lossless)",
                  "gps" if stripped else None)


def carries_gps(path: str | os.PathLike[str], kind: str) -> bool:
    """True when the file as it is would tell where it was taken (or its metadata is too damaged
    to tell): it may then not be served by URL. Reads its metadata only."""
    if kind not in gps.KINDS:
        return False
    with open(path, "rb", buffering=0) as fh:

        def read(offset: int, n: int) -> bytes:
            fh.seek(offset)
            return fh.read(n)

        return gps.has_gps(read, kind, os.fstat(fh.fileno()).st_size)


# --- conversion -----------------------------------------------------------------------------------


def convert(path: Path, info: ImageInfo, max_bytes: int) -> Upload:
    """A JPEG, PNG or animated GIF of the picture under ``max_bytes``, best quality first."""
    if info.too_big_to_convert:
        raise BadImage(info.too_big_to_convert)
    preload()
    try:
        return _convert(path, info, max_bytes)
    finally:
        allocator.trim()  # what the decoders freed goes back: the next conversion starts from the worker's rest


def _convert(path: Path, info: ImageInfo, max_bytes: int) -> Upload:
    import pyvips

    notes: list[str] = []
    try:
        if info.frames > 1 and info.kind in ("gif", "webp"):
            return _convert_animation(path, info, max_bytes)
        if info.frames > 1:
            notes.append(f"first {'page' if info.kind == 'tiff' else 'image'} of {info.frames}")
        im, turned = _decode(path, info)
        if turned:
            notes.append("turned upright")
        alpha = im.hasalpha() and im[im.bands - 1].min() < 255
        if im.hasalpha() and not alpha:
            im = im[: im.bands - 1]  # an alpha channel that hides nothing: a JPEG shows it the same
        im, dropped = _profile_within_bounds(im)
        notes += [dropped] if dropped else []
        content, fmt, quality, out = _fit(im, "png" if alpha else "jpeg", max_bytes)
    except pyvips.Error as exc:
        raise BadImage(f"truncated or corrupt {info.kind} ({short(exc)})") from None
    what = f"{info.kind}->{fmt}" + (f" q{quality}" if quality else "")
    if (out.width, out.height) != (info.width, info.height):
        what += f" {info.width}x{info.height}->{out.width}x{out.height}"
    suffix = ".jpg" if fmt == "jpeg" else f".{fmt}"
    return Upload(content, f"image/{fmt}", path.stem + suffix, out.width, out.height, " ".join([what, *notes]))


def _decode(path: Path, info: ImageInfo) -> tuple[Any, bool]:
    """The picture upright, at most DECODE_PIXELS, in memory (every encoding attempt reads it from
    there), and whether it had to be turned."""
    import pyvips

    if info.kind in _VIPS_KINDS:
        width, height = _decode_size(info.width, info.height)
        head = pyvips.Image.new_from_file(str(path))
        turned = orientation(head) not in (0, 1)
        # thumbnail: shrink-on-load, EXIF orientation applied, CMYK to sRGB. An embedded ICC
        # profile is kept with the pixels (a transform to sRGB cost 3 s of CPU at 24 MP).
        im = pyvips.Image.thumbnail(str(path), width, height=height, size="down", fail_on="error")
        if head.interpretation == "cmyk":
            # Now sRGB, converted with the file's CMYK profile or, when it has none libvips can use,
            # libvips' own, which it leaves on the picture unowned: freed with the pipeline, so a
            # saver read freed memory (SIGSEGV, libvips 8.18). A CMYK profile no saver writes for
            # sRGB: dropped while the pipeline holds it.
            im = _without_profile(im)
        return im.copy_memory(), turned  # a loader's pipeline, computed once into memory libvips owns
    if info.kind in ("heic", "heif"):
        return _heif_pixels(path), False  # libheif applied the container's rotation and mirroring
    return _pillow_pixels(path, info.kind)


def _decode_size(width: int, height: int) -> tuple[int, int]:
    scale = min(1.0, math.sqrt(DECODE_PIXELS / (width * height)))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _wrap(pixels: Any, width: int, height: int, bands: int) -> Any:
    """libvips reading ``pixels`` (bytes-like, packed RGB or RGBA rows) where they lie.

    pyvips keeps ``pixels`` alive for this image and every image an operation makes from it, but
    not for what ``copy_memory()`` returns: for a picture already in memory that is the same
    pixels, in a wrapper that has forgotten them, and once the first wrapper goes libvips reads
    freed memory (12 MP BMPs killed the worker with SIGSEGV). So no picture made here is ever
    given to ``copy_memory()``; one that must be computed once goes through an operation first.
    """
    import pyvips

    im = pyvips.Image.new_from_memory(pixels, width, height, bands, "uchar")
    # libvips calls a 4-band image "multiband", which has no alpha for hasalpha(): say what it is.
    return im.copy(interpretation="srgb")


def _heif_pixels(path: Path) -> Any:
    import pillow_heif

    try:
        heif = pillow_heif.open_heif(path, convert_hdr_to_8bit=True)
        picture = heif[heif.primary_index]
        data, stride = picture.data, picture.stride
        bands = 4 if picture.has_alpha else 3
        size = picture.size
    except Exception as exc:  # libheif errors come as ValueError/RuntimeError with its message
        raise BadImage(f"truncated or corrupt heic ({short(exc)})") from None
    icc = picture.info.get("icc_profile")
    del heif, picture  # the pixels stay as long as ``data`` (a view that holds them) is referenced
    im = _wrap(data, stride // bands, size[1], bands)
    if stride // bands != size[0]:
        im = im.crop(0, 0, size[0], size[1])  # libheif pads rows: a narrower view, no copy
    if icc:
        im = _with_icc(im, bytes(icc))
    width, height = _decode_size(*size)
    if (width, height) != size:
        # Computed once into memory libvips owns (DECODE_PIXELS at most); libheif's picture then goes.
        im = im.thumbnail_image(width, height=height, size="down").copy_memory()
    return im


def _pillow_pixels(path: Path, kind: str) -> tuple[Any, bool]:
    import pyvips
    from PIL import Image

    try:
        with Image.open(path) as opened:
            pil: Image.Image = opened
            turn = pil.getexif().get(0x0112, 1)
            pil.load()
            icc = pil.info.get("icc_profile")
            mode = "RGBA" if pil.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in pil.info else "RGB"
            if pil.mode != mode:
                pil = pil.convert(mode)
            width, height = _decode_size(*pil.size)
            pixels = _packed(pil, width, height)
    except BadImage:
        raise
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, EOFError... for bad data
        raise BadImage(f"truncated or corrupt {kind} ({short(exc)})") from None
    del pil, opened  # Pillow's image and AVIF's decoder: the packed copy is all that stays
    im = _wrap(pixels, width, height, len(mode))
    if icc:
        im = _with_icc(im, icc)
    if turn not in (0, 1):
        im = im.copy()
        im.set_type(pyvips.GValue.gint_type, "orientation", turn)
        im = im.autorot()  # on every encoding attempt: a rotation of at most DECODE_PIXELS, no second copy
    return im, turn not in (0, 1)


def _packed(pil: Any, width: int, height: int) -> bytearray:
    """Pillow's pixels as packed rows (3 or 4 bytes a pixel) at ``width`` x ``height``, made a strip
    at a time. Pillow keeps 4 bytes a pixel in blocks of its own, and its ``tobytes()`` of the whole
    picture holds the packed copy twice (pieces, then joined): 10 bytes a pixel at the peak, against
    7 here, and 4 plus at most DECODE_PIXELS when scaled (a resize from a box of the source is the
    same, row for row, as one of the whole picture)."""
    from PIL import Image

    bands = len(pil.mode)
    out = bytearray(width * height * bands)
    rows = max(1, _STRIP_BYTES // (width * bands))
    ratio = pil.height / height
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        if pil.size == (width, height):
            strip = pil.crop((0, top, width, bottom))
        else:
            strip = pil.resize((width, bottom - top), Image.Resampling.LANCZOS, box=(0, top * ratio, pil.width, bottom * ratio))
        out[top * width * bands : bottom * width * bands] = strip.tobytes()
    return out


def _with_icc(im: Any, icc: bytes) -> Any:
    import pyvips

    im = im.copy()
    im.set_type(pyvips.GValue.blob_type, "icc-profile-data", icc)
    return im


def _fit(im: Any, fmt: str, max_bytes: int) -> tuple[bytes, str, int | None, Any]:
    """Encode ``im`` under ``max_bytes``: every pixel at a lower quality when the overshoot is
    small, else fewer pixels. Returns the bytes, format, quality and the picture encoded."""
    scale, quality_at = 1.0, 0
    while True:
        candidate = im if scale == 1.0 else im.resize(scale)
        if fmt == "jpeg":
            quality = _JPEG_QUALITIES[quality_at]
            content = candidate.jpegsave_buffer(Q=quality, keep="icc")
        else:
            quality = None
            content = candidate.pngsave_buffer(compression=6, keep="icc")
        if len(content) <= max_bytes:
            return content, fmt, quality, candidate
        ratio = max_bytes / len(content)
        if fmt == "jpeg" and ratio > 0.6 and quality_at + 1 < len(_JPEG_QUALITIES):
            quality_at += 1
            continue
        # Bytes grow roughly with the pixel count: aim under the limit, at least a 10 % step.
        scale *= min(0.9, math.sqrt(ratio) * 0.95)
        quality_at = 0
        if im.width * scale < _SMALLEST_SIDE or im.height * scale < _SMALLEST_SIDE:
            raise BadImage(f"cannot fit under {max_bytes} bytes")


def _convert_animation(path: Path, info: ImageInfo, max_bytes: int) -> Upload:
    """Every frame kept, as an animated GIF (what Miro plays), frames scaled down until it fits."""
    import pyvips

    scale = min(1.0, math.sqrt(ANIMATION_PIXELS / (info.width * info.height * info.frames)))
    while True:
        width = max(1, round(info.width * scale))
        # thumbnail fits each frame (page) in the box, the height left free for them, and scales
        # WebP frames while they load: a 30-frame 1080p WebP took 170 MB, against 350 MB when every
        # frame was decoded whole first (thumbnail_image of the loaded animation).
        im = pyvips.Image.thumbnail(f"{path}[n=-1]", width, height=10_000_000, size="down", fail_on="error")
        content = im.gifsave_buffer(keep="icc", effort=4)
        page_height = im.get("page-height") if im.get_typeof("page-height") else im.height
        if len(content) <= max_bytes:
            break
        scale *= min(0.9, math.sqrt(max_bytes / len(content)) * 0.95)
        if width * scale < _SMALLEST_SIDE:
            raise BadImage(f"cannot fit {info.kind} under {max_bytes} bytes")
    what = f"{info.kind}->gif {info.frames} frames"
    if (im.width, page_height) != (info.width, info.height):
        what += f" {info.width}x{info.height}->{im.width}x{page_height}"
    return Upload(content, "image/gif", path.stem + ".gif", im.width, page_height, what)


# --- ICC profiles ---------------------------------------------------------------------------------

MAX_PROFILE = 1 << 20
"""An embedded ICC profile bigger than this is not carried into a converted copy (which then shows
as sRGB). Display profiles (sRGB, Display P3, Adobe RGB) take under 4 kB; a profile goes into every
encoding attempt, and a 16 MB one made every copy too big for Miro's 6 MB."""


def _profile_within_bounds(im: Any) -> tuple[Any, str | None]:
    """``im`` without an ICC profile over :data:`MAX_PROFILE`, and the note saying so."""
    if not im.get_typeof("icc-profile-data"):
        return im, None
    size = len(im.get("icc-profile-data"))
    if size <= MAX_PROFILE:
        return im, None
    return _without_profile(im), f"ICC profile dropped ({size / 2**20:.1f} MB)"


def _without_profile(im: Any) -> Any:
    im = im.copy()
    im.remove("icc-profile-data")
    return im
