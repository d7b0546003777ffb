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

Known costs past the memory goal (300 MB for 50 MP): a progressive JPEG keeps every DCT
coefficient in libjpeg whatever the output size (50 MP: 287 MB peak at 4:2:0 chroma, 433 MB at
4:4:4), and libavif decodes an AVIF whole (24 MP: 321 MB).

Files sent as they are keep every byte but their GPS position (:mod:`shared.image.gps`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from shared.image import gps
from shared.image.sniff import SAFE_KINDS
from shared.image.validate import MAX_PIXELS, BadImage, ImageInfo, orientation, short

DECODE_PIXELS = 4096 * 4096
"""The most pixels a still picture is decoded at for conversion."""

ANIMATION_PIXELS = 4096 * 4096
"""The most pixels of all frames together an animation is decoded at (a GIF keeps every frame)."""

_JPEG_QUALITIES = (90, 82, 74)
_VIPS_KINDS = frozenset({"jpeg", "png", "webp", "tiff", "gif"})
_SMALLEST_SIDE = 16


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
    _ready = True


def sendable_as_is(info: ImageInfo, max_bytes: int) -> bool:
    """True when :func:`prepare_upload` would send the file's own bytes (unchanged, or with only its
    GPS position cut out), not a converted copy. A URL serves it unchanged: see :func:`carries_gps`."""
    return info.kind in SAFE_KINDS and info.size <= max_bytes


def prepare_upload(path: str | os.PathLike[str], info: ImageInfo, max_bytes: int, keep_gps: bool = False) -> Upload:
    """The bytes to upload: the file itself when it is safe and fits, else a converted copy.

    Unless ``keep_gps``, the file's GPS position is cut out of its metadata in place (pixels and
    every other tag untouched, ``stripped="gps"``); when its EXIF is too damaged for that, the
    picture is converted instead, which drops all metadata. Converted copies never carry any.
    """
    path = Path(path)
    if sendable_as_is(info, max_bytes):
        with open(path, "rb") as fh:
            content = fh.read(max_bytes + 1)
        if len(content) <= max_bytes:  # it may have grown since inspect(); then convert
            try:
                stripped = None if keep_gps else gps.remove_gps(content, info.kind)
            except gps.Unremovable as exc:
                why = f"GPS not removable in place: {exc}"
                try:
                    upload = convert(path, info, max_bytes)
                except BadImage as problem:
                    raise BadImage(f"{problem}; {why}") from None
                return replace(upload, converted=f"{upload.converted} ({why})", stripped="metadata")
            if stripped is None:
                return Upload(content, info.content_type, path.name, info.width, info.height, None)
            if len(stripped) <= max_bytes:  # a PNG text chunk compressed again may grow a little
                return Upload(stripped, info.content_type, path.name, info.width, info.height, None, "gps")
        del content
    return convert(path, info, max_bytes)


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
    import pyvips

    preload()
    notes: list[str] = []
    try:
        if info.frames > 1 and info.kind in ("gif", "webp"):
            return _convert_animation(path, info, max_bytes)
        if info.frames > 1:
            notes.append(f"first {'page' if info.kind == 'tiff' else 'image'} of {info.frames}")
        im, turned = _decode(path, info)
        if turned:
            notes.append("turned upright")
        im = im.copy_memory()  # decoded once; every attempt below only encodes
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
    """The picture upright, at most DECODE_PIXELS, and whether it had to be turned."""
    import pyvips

    scale = min(1.0, math.sqrt(DECODE_PIXELS / (info.width * info.height)))
    width, height = max(1, round(info.width * scale)), max(1, round(info.height * scale))
    if info.kind in _VIPS_KINDS:
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
        return im, turned
    if info.kind in ("heic", "heif"):
        im = _heif_pixels(path)
        turned = False  # libheif applied the container's rotation and mirroring
    else:
        im, turned = _pillow_pixels(path, info.kind)
    if im.width * im.height > DECODE_PIXELS:
        im = im.thumbnail_image(width, height=height, size="down")
    return im, turned


def _heif_pixels(path: Path) -> Any:
    import pillow_heif
    import pyvips

    try:
        heif = pillow_heif.open_heif(path, convert_hdr_to_8bit=True)
        picture = heif[heif.primary_index]
        data, stride = picture.data, picture.stride
        bands = 4 if picture.has_alpha else 3
        width, height = picture.size
    except Exception as exc:  # libheif errors come as ValueError/RuntimeError with its message
        raise BadImage(f"truncated or corrupt heic ({short(exc)})") from None
    icc = picture.info.get("icc_profile")
    # libheif pads rows: view the buffer as a wider picture, then crop (no copy either way).
    im = pyvips.Image.new_from_memory(data, stride // bands, height, bands, "uchar").crop(0, 0, width, height)
    if icc:
        im = im.copy()
        im.set_type(pyvips.GValue.blob_type, "icc-profile-data", bytes(icc))
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
            raw = pil.tobytes()
            size = pil.size
    except BadImage:
        raise
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, EOFError... for bad data
        raise BadImage(f"truncated or corrupt {kind} ({short(exc)})") from None
    im = pyvips.Image.new_from_memory(raw, size[0], size[1], len(mode), "uchar")
    if icc:
        im = im.copy()
        im.set_type(pyvips.GValue.blob_type, "icc-profile-data", icc)
    if turn not in (0, 1):
        im = im.copy()
        im.set_type(pyvips.GValue.gint_type, "orientation", turn)
        im = im.autorot()
    return im, turn not in (0, 1)


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
        # thumbnail fits each frame (page) in the box; the height is left free for them.
        im = pyvips.Image.new_from_file(str(path), n=-1, access="sequential", fail_on="error")
        im = im.thumbnail_image(width, height=10_000_000, size="down")
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
