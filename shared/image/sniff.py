"""What kind of picture a file is, named from its first bytes (never from its extension).

The watcher's cheap check: pure, no imaging library loaded, so the watcher stays small.
"""

from __future__ import annotations

import functools
import importlib.util
import struct

SNIFF_BYTES = 32
"""How many leading bytes :func:`sniff` needs."""

SAFE_KINDS = frozenset({"png", "jpeg", "gif"})
"""Kinds Miro surely shows as they are (a downloaded ``imageUrl`` comes back as PNG or JPEG, and
GIFs play): sent as their own bytes when they fit."""

CONVERTED_KINDS = frozenset({"webp", "bmp", "tiff", "avif", "heic", "heif"})
"""Decoded and re-encoded (JPEG, PNG with transparency, GIF when animated) before upload."""

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

_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}
_HEIF_BRANDS = {b"mif1", b"msf1", b"mif2"}
_AVIF_BRANDS = {b"avif", b"avis"}
_BMP_HEADER_SIZES = {12, 40, 52, 56, 64, 108, 124}


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


@functools.cache
def _installed(package: str) -> bool:
    """Looked up once per process: the watcher asks for every file it sees."""
    return importlib.util.find_spec(package) is not None


def unsupported_reason(kind: str) -> str | None:
    """Why a sniffed kind cannot be handled by this installation, or None when it can.

    Every kind is handled by the default install; only a broken one (a decoder package missing)
    refuses, and says which package to reinstall.
    """
    needed = {"heic": "pillow_heif", "heif": "pillow_heif"}.get(kind, "pyvips")
    if not _installed(needed):
        return f"{kind.upper()} cannot be read: the {needed.replace('_', '-')} package is missing (reinstall miro-sync)"
    return None
