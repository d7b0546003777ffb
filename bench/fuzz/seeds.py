"""The pictures mutations start from, made when a run starts (a second or two; nothing is committed).

Every kind the project accepts, as cameras, phones and the web make them (the imagetype test
corpus), plus what that corpus lacks for a fuzzer: pictures carrying GPS in EXIF and XMP (so the
in-place GPS removal runs), EXIF, XMP and ICC in every kind that holds them, an APNG and an MPO.
``large=True`` adds pictures big enough that a use-after-free of their pixels reaches memory the
allocator has given back (BMP and AVIF decoded by Pillow): the long run's, too slow for the test.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass

from PIL import Image, ImageCms

from tests.imagetype.corpus import GREEN, scene, small_corpus
from tests.imagetype.pictures import encoded, gps_exif

LARGE_SIDE = 3000
"""Side of the large seeds: 27 MB of RGB pixels, beyond what glibc serves from its heap (32 MB at
most, less until it has freed a bigger block), so memory freed too early is unmapped."""


@dataclass(frozen=True)
class Seed:
    kind: str
    data: bytes


KINDS = ("avif", "bmp", "gif", "heic", "heif", "jpeg", "png", "tiff", "webp")
"""Every kind the project accepts (shared.image.sniff), each with seeds."""


def seeds(large: bool = False) -> dict[str, Seed]:
    """Seed name (a file name) -> seed."""
    out = {p.name: Seed(p.kind, data) for p, data in small_corpus().items() if p.name not in _SAME_PATH}
    extra = {
        "gps.jpg": ("jpeg", encoded(scene(), "JPEG", exif=gps_exif(), xmp=_XMP, icc_profile=_ICC)),
        "gps-ii.jpg": ("jpeg", encoded(scene(), "JPEG", exif=gps_exif("<"), progressive=True)),
        "gps.png": ("png", encoded(scene("RGBA"), "PNG", exif=gps_exif(), pnginfo=_png_xmp(), icc_profile=_ICC)),
        "mpo.jpg": ("jpeg", encoded(scene(), "MPO", save_all=True, append_images=[scene(colour=GREEN)], exif=gps_exif())),
        "animated.png": ("png", encoded(scene(), "PNG", save_all=True, append_images=[scene(colour=GREEN), scene()], duration=100)),
        "meta.webp": ("webp", encoded(scene(), "WEBP", exif=gps_exif(), xmp=_XMP, icc_profile=_ICC)),
        "meta.avif": ("avif", encoded(scene(), "AVIF", exif=gps_exif(), xmp=_XMP, icc_profile=_ICC)),
        "meta.heic": ("heic", _heif(scene())),
        "plain.heif": ("heif", _as_plain_heif(_heif(scene()))),
        "meta.tif": ("tiff", encoded(scene(), "TIFF", compression="tiff_deflate", exif=gps_exif(), icc_profile=_ICC,
                                   tiffinfo={700: _XMP})),
    }
    if large:
        photo = Image.frombytes("RGB", (LARGE_SIDE, LARGE_SIDE), random.Random(0).randbytes(3 * LARGE_SIDE**2))  # the same every run
        extra["large.bmp"] = ("bmp", encoded(photo, "BMP"))
        extra["large.avif"] = ("avif", encoded(photo, "AVIF", speed=10, quality=50))
        extra["large-rotated.avif"] = ("avif", encoded(photo, "AVIF", speed=10, quality=50, exif=gps_exif()))
    return out | {name: Seed(kind, data) for name, (kind, data) in extra.items()}


_SAME_PATH = {f"orientation-{n}.jpg" for n in (2, 3, 4, 5, 7, 8)}  # 1 and 6 stay: upright and turned
_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
_XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="48,51.4N">'
        b"<exif:GPSLongitude>2,17.6E</exif:GPSLongitude></rdf:Description></rdf:RDF></x:xmpmeta>")


def _png_xmp() -> object:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", _XMP.decode())
    info.add_text("Comment", "fuzz seed")
    return info


def _heif(im: Image.Image) -> bytes:
    import pillow_heif

    out = io.BytesIO()
    pillow_heif.from_pillow(im).save(out, quality=80, exif=gps_exif().tobytes(), xmp=_XMP, icc_profile=_ICC)
    return out.getvalue()


def _as_plain_heif(heic: bytes) -> bytes:
    """The same file branded HEIF only (``mif1``, ``miaf``): what some cameras write, sniffed as ``heif``."""
    return heic.replace(b"ftypheic\x00\x00\x00\x00mif1heicmiaf", b"ftypmif1\x00\x00\x00\x00mif1miafmiaf", 1)
