"""What converting a picture costs in memory, told from its header, and the most it may cost.

The goal: no conversion takes the process that converts past 300 MB of peak RSS. That is the
converter child (:mod:`shared.image.isolated`), which holds only the picture stack: it rests at 38 MB
when it starts and at up to 48 MB after a run of conversions (:mod:`shared.image.allocator`), which
leaves :data:`BUDGET` for one conversion. (In the worker, with RQ, redis and requests beside it, the
rest was 59 MB, 66-81 MB after a run, and the budget 220 MB: a 24 MP AVIF, 237 MB, was refused.) A
picture whose estimate is over it is refused with the reason, from its header, before a pixel is
decoded: better than a worker the kernel kills halfway through its queue.

Each estimate is what the decoder holds at once, plus what every conversion keeps (the picture at
:data:`DECODE_PIXELS`, read by every encoding attempt), plus a fixed part for libvips' threads and
buffers and the encoded result, fitted to ``python -m bench.kinds`` so that it is never below what
was measured (bench/RESULTS.md has the table; MB here are MiB, as RSS is counted there):

* libvips scales JPEG and lossy WebP while it loads them and streams PNG, TIFF and baseline JPEG:
  their cost hardly grows with the picture. It maps a JPEG file and reads a WebP whole: the file counts.
* a progressive JPEG: libjpeg keeps every DCT coefficient, 128 bytes per 8x8 block of each component
  (3 bytes a pixel at 4:2:0 chroma, 6 at 4:4:4), whatever the size it is decoded at;
* an interlaced PNG: libspng builds the whole picture; a lossless WebP: libwebp decodes it whole
  (4 bytes a pixel) before scaling; a GIF: its canvas and the frame libvips copies out of it;
* AVIF (libavif through Pillow): the YUV planes, the RGB copy Pillow is handed, Pillow's image (4
  bytes a pixel) and the packed copy made for libvips (:func:`shared.image.convert._packed`);
* HEIC/HEIF (libheif): the coded picture's YUV planes, the assembled YUV image and the RGB picture;
* BMP (Pillow): Pillow's image (4 bytes a pixel; a palette picture's own byte too) and the packed copy.
"""

from __future__ import annotations

MB = 1024 * 1024

BUDGET = 240 * MB
"""The most one conversion may add to the converter child's memory (:mod:`shared.image.isolated`): the
goal, 300 MB, less 60 MB for the child at rest (38 MB fresh, up to 48 MB after a run of conversions)."""

DECODE_PIXELS = 4096 * 4096
"""The most pixels a still picture is decoded at for conversion (see :mod:`shared.image.convert`)."""

ANIMATION_PIXELS = 4096 * 4096
"""The most pixels of all frames together an animation is decoded at (a GIF keeps every frame)."""

_CHROMA = {"400": 1.0, "420": 1.5, "422": 2.0, "444": 3.0}  # YUV samples a pixel


def _kept(pixels: int, bands: int, sample_bytes: int = 1) -> int:
    """The picture every encoding attempt reads: at most DECODE_PIXELS."""
    return min(pixels, DECODE_PIXELS) * bands * sample_bytes


def jpeg(pixels: int, file_size: int, coefficients: int) -> int:
    """``coefficients``: what libjpeg keeps of a progressive picture (0 when baseline)."""
    if coefficients:
        return coefficients + pixels // 2 + file_size + _kept(pixels, 3) + 40 * MB
    return file_size + _kept(pixels, 3) + 70 * MB


def png(pixels: int, bands: int, sample_bytes: int, interlaced_bytes: int) -> int:
    """``interlaced_bytes``: the whole picture, decoded, when it is interlaced (else 0)."""
    return interlaced_bytes + _kept(pixels, bands, sample_bytes) + 40 * MB


def animation(pixels: int, file_size: int) -> int:
    """A GIF or WebP animation, ``pixels`` a frame: the decoder's canvas and the one before, and the
    frames scaled to ANIMATION_PIXELS in all, twice (libvips' copy and the GIF saver's)."""
    return pixels * 8 + file_size + 2 * ANIMATION_PIXELS * 4 + 30 * MB


def webp(pixels: int, file_size: int, lossless: bool) -> int:
    """libvips' scaled decode and its copy, with the file (lossy) or the whole picture (lossless)."""
    if lossless:
        return pixels * 4 + 2 * _kept(pixels, 4) + 10 * MB
    return file_size + 2 * _kept(pixels, 4) + 50 * MB


def tiff(pixels: int) -> int:
    return _kept(pixels, 4) + 70 * MB


def gif(pixels: int) -> int:
    return pixels * 6 + _kept(pixels, 4) + 30 * MB


def yuv_bytes(pixels: int, depth: int, chroma: str, alpha: bool) -> int:
    """Decoded planes: 1 byte a sample up to 8 bits, else 2; chroma planes by subsampling."""
    samples = _CHROMA.get(chroma, 3.0) + (1 if alpha else 0)
    return round(pixels * samples * (1 if depth <= 8 else 2))


def avif(pixels: int, file_size: int, depth: int, chroma: str, alpha: bool) -> int:
    bands = 4 if alpha else 3
    return yuv_bytes(pixels, depth, chroma, alpha) + pixels * (bands + 4) + file_size + 40 * MB


def heif(pixels: int, file_size: int, depth: int, chroma: str, alpha: bool) -> int:
    bands = 4 if alpha else 3
    return 2 * yuv_bytes(pixels, depth, chroma, alpha) + pixels * bands + file_size + 20 * MB


def bmp(pixels: int, palette: bool) -> int:
    return pixels * (5 if palette else 4) + _kept(pixels, 4) + 40 * MB


def refusal(kind: str, width: int, height: int, need: int) -> str:
    """The reason a picture is not converted, for a person."""
    return (f"too big to convert within memory ({width}x{height} {kind} needs about {need // MB} MB, "
            f"over {BUDGET // MB} MB); send a smaller copy")
