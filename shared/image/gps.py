"""Find and cut out where a picture was taken (its GPS position), leaving every other byte alone.

Phone and camera photos name their place in the EXIF block (the GPS IFD), often again in the XMP
packet (``exif:GPSLatitude``...). A Miro board is often shared widely, so the worker removes both
before a file leaves the machine (``KEEP_GPS=true`` keeps them). No pixel is re-encoded:

* EXIF (JPEG APP1 ``Exif``, PNG ``eXIf``): the GPS IFD's entries and the values they point to are
  zeroed, and its pointer (tag 0x8825) is taken out of the IFD holding it, whose other entries
  move up by one. No other byte moves, so every other tag keeps its value and its offsets;
  Orientation above all (Miro, like browsers, turns the picture by it).
* XMP (JPEG APP1, PNG ``iTXt``/``tEXt``/``zTXt`` ``XML:com.adobe.xmp``): every property whose name
  starts with GPS (``exif:GPSLatitude``, ``Iptc4xmpExt:GPSLatitude``, ``drone-dji:GpsLatitude``)
  is overwritten with spaces, which keeps the XML valid and the length. A packet that still
  names one after that (a form the patterns miss) is dropped whole; so is extended XMP (JPEG)
  that names one, and ImageMagick's hex ``Raw profile type exif|APP1|xmp`` text chunks (PNG).
* Pictures a JPEG's MPF index appends after the first (previews, HDR gain maps) likewise.

A JPEG keeps its length (an MPF index counts offsets across the file); a PNG's changed chunks are
written again with their CRC.

Cheap when there is nothing to remove: a JPEG's segments are found by the one JPEG walker
(:func:`shared.image.jpeg.check`, about 0.3 ms per MB, scans searched at C speed), a PNG's by the
one chunk walker (:func:`shared.image.png.chunks`, headers only, image data skipped), through a
``read(offset, n)`` callable, so a file on disk is never held whole; nothing is copied unless GPS
is found. A JPEG whose structure is broken is :class:`Unremovable`.

When there may be GPS but the EXIF is too damaged to edit safely (its first IFD runs past the
block, the GPS IFD cannot be read), :class:`Unremovable` is raised: the caller re-encodes the
picture (which drops all metadata) rather than send it.

Not looked at: GIF (no EXIF; XMP in GIF is rare), Photoshop APP13 resources, maker notes.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, cast

from shared.image import jpeg, png

Reader = Callable[[int, int], bytes]
"""``read(offset, n)``: at most ``n`` bytes from ``offset`` (fewer at the end of the data)."""

KINDS = frozenset({"jpeg", "png"})
"""Kinds sent as they are that can carry GPS (GIF has no EXIF; other kinds are re-encoded)."""

GPS_IFD = 0x8825
EXIF_IFD = 0x8769
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}
_EXIF_ID = b"Exif\x00"
_XMP_ID = b"http://ns.adobe.com/xap/1.0/\x00"
_XMP_EXT_ID = b"http://ns.adobe.com/xmp/extension/\x00"
_XMP_EXT_HEADER = len(_XMP_EXT_ID) + 32 + 8  # GUID, full length, offset
_PNG_TEXT = (b"tEXt", b"zTXt", b"iTXt")
_PNG_XMP_KEY = b"XML:com.adobe.xmp"
_PNG_RAW_KEYS = (b"Raw profile type exif", b"Raw profile type APP1", b"Raw profile type xmp")
_MAX_TEXT = 16 << 20  # a compressed text chunk inflating past this is not inspected: dropped
_NAME = rb"[\w.\-]+:gps[\w.\-]*"
_XMP_GPS = re.compile(
    rb"<(?P<tag>" + _NAME + rb")(?=[\s/>])"  # <exif:GPSLatitude ...>: where it ends is found apart
    rb"|(?<=\s)" + _NAME + rb"\s*=\s*(?:\"[^\"]*\"|'[^']*')",  # exif:GPSLatitude="..."
    re.I,
)
_XMP_GPS_END = re.compile(rb"</(" + _NAME + rb")\s*>", re.I)
_GPS_LEFT = re.compile(rb":gps", re.I)


class Unremovable(ValueError):
    """The picture may say where it was taken, and its metadata is too damaged to edit safely."""


@dataclass(frozen=True)
class Edit:
    start: int
    end: int
    data: bytes  # replaces data[start:end]


def reader(data: bytes) -> Reader:
    view = memoryview(data)
    return lambda offset, n: bytes(view[offset : offset + n])


def find(read: Reader, kind: str, size: int) -> list[Edit]:
    """The edits that remove GPS from the file (``size`` bytes) ``read`` gives; [] when it has none."""
    if kind == "jpeg":
        return list(_jpeg_edits(read, size))
    if kind == "png":
        return list(_png_edits(read))
    return []


def has_gps(read: Reader, kind: str, size: int) -> bool:
    """True when the file would tell where it was taken, or may (damaged metadata or structure)."""
    try:
        return bool(find(read, kind, size))
    except Unremovable:
        return True


def remove_gps(data: bytes, kind: str) -> bytes | None:
    """``data`` without GPS, or None when it has none; raise :class:`Unremovable`."""
    edits = find(reader(data), kind, len(data))
    if not edits:
        return None
    out = bytearray(data)
    for edit in sorted(edits, key=lambda e: e.start, reverse=True):  # from the end: offsets hold
        out[edit.start : edit.end] = edit.data
    return bytes(out)


# --- EXIF (a TIFF block) ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    tag: int
    type: int
    count: int
    value: int  # the 4-byte field as an offset
    raw: bytes


def strip_tiff(tiff: bytes) -> bytes | None:
    """The EXIF TIFF block without its GPS IFD (same length), or None when it has none."""
    order = {b"II*\x00": "<", b"MM\x00*": ">"}.get(tiff[:4])
    if order is None or len(tiff) < 8:
        raise Unremovable("EXIF without a TIFF header")
    out = bytearray(tiff)
    ifd0 = struct.unpack_from(order + "I", tiff, 4)[0]
    # The pointer belongs in IFD0; some writers put it in the Exif IFD or in IFD1. A damaged IFD0
    # hides whether there is one; the others are only read when they can be (as readers do).
    todo, seen, found = [(ifd0, True)], set(), False
    while todo:
        offset, first = todo.pop(0)
        if offset in seen:
            continue
        seen.add(offset)
        ifd = read_ifd(tiff, offset, order)
        if ifd is None:
            if first:
                raise Unremovable("EXIF's first IFD runs past its block")
            continue
        entries, next_ifd = ifd
        todo += [(e.value, False) for e in entries if e.tag == EXIF_IFD]
        if first and next_ifd:
            todo.append((next_ifd, False))
        pointers = [e for e in entries if e.tag == GPS_IFD]
        for pointer in pointers:
            _blank_gps_ifd(tiff, out, pointer.value, order)
        if pointers:
            found = True
            kept = [e.raw for e in entries if e.tag != GPS_IFD]
            table_end = offset + 2 + 12 * len(entries)
            tail = tiff[table_end : table_end + 4]  # the next-IFD pointer moves up with the entries
            out[offset : table_end + len(tail)] = struct.pack(order + "H", len(kept)) + b"".join(kept) + tail + bytes(12 * len(pointers))
    return bytes(out) if found else None


def read_ifd(tiff: bytes, offset: int, order: str) -> tuple[list[_Entry], int] | None:
    """An IFD's entries and its next-IFD offset (0 when absent), or None when it does not fit."""
    if offset < 8 or offset + 2 > len(tiff):
        return None
    count = struct.unpack_from(order + "H", tiff, offset)[0]
    end = offset + 2 + 12 * count
    if end > len(tiff):
        return None
    entries = []
    for at in range(offset + 2, end, 12):
        tag, kind, n, value = struct.unpack_from(order + "HHII", tiff, at)
        entries.append(_Entry(tag, kind, n, value, tiff[at : at + 12]))
    next_ifd = struct.unpack_from(order + "I", tiff, end)[0] if end + 4 <= len(tiff) else 0
    return entries, next_ifd


def _blank_gps_ifd(tiff: bytes, out: bytearray, offset: int, order: str) -> None:
    ifd = read_ifd(tiff, offset, order)
    if ifd is None:
        raise Unremovable("EXIF's GPS IFD runs past its block")
    entries, _ = ifd
    for e in entries:
        size = _TYPE_SIZES.get(e.type, 0) * e.count
        if size > 4 and e.value + size <= len(tiff):  # a value out of the block is not in the file
            out[e.value : e.value + size] = bytes(size)
    end = offset + 2 + 12 * len(entries)
    out[offset : min(end + 4, len(tiff))] = bytes(min(end + 4, len(tiff)) - offset)  # count 0, entries, next


def _strip_exif(body: bytes) -> bytes | None:
    """An ``Exif\\0\\0``-prefixed (or bare) TIFF block without GPS, or None."""
    skip = 6 if body.startswith(_EXIF_ID) else 0
    tiff = strip_tiff(body[skip:])
    return None if tiff is None else body[:skip] + tiff


# --- XMP ----------------------------------------------------------------------------------------


def strip_xmp(packet: bytes) -> bytes | None:
    """The XMP packet with its GPS properties blanked (same length); b"" when it must go whole;
    None when it names none.

    Linear in the packet, which a PNG text chunk may inflate to 16 MB: each byte is searched once,
    for a property's start or as an element's content, which is then blanked (the worst, 16 MB of
    GPS elements, takes 1.6 s). One pattern with ``<tag>.*?</tag>`` searched to the end of the
    packet again for each element never closed: 240 kB of them took 20 s. An element never closed
    keeps its GPS name, so the packet goes whole at the first one.
    """
    if not _GPS_LEFT.search(packet):
        return None
    blanked = bytearray(packet)
    at = 0
    while (found := _XMP_GPS.search(packet, at)) is not None:
        end = found.end() if found["tag"] is None else _element_end(packet, found)
        if end is None:
            return b""
        blanked[found.start() : end] = b" " * (end - found.start())
        at = end
    return b"" if _GPS_LEFT.search(blanked) else bytes(blanked)


def _element_end(packet: bytes, start: re.Match[bytes]) -> int | None:
    """Past the end of the element whose start tag ``start`` found (``<a:GPS .../>`` or
    ``<a:GPS ...>...</a:GPS>``); None when it has none."""
    tag_end = packet.find(b">", start.end())
    if tag_end < 0:
        return None
    if tag_end > start.end() and packet[tag_end - 1] == ord("/"):
        return tag_end + 1
    name = start["tag"].lower()
    # The first end tag of the same name (case ignored, as for the start tag); the bytes searched
    # up to it are the element's content, blanked with it, so none is searched twice.
    return next((end.end() for end in _XMP_GPS_END.finditer(packet, tag_end + 1) if end[1].lower() == name), None)


# --- JPEG ---------------------------------------------------------------------------------------


def _jpeg_edits(read: Reader, size: int) -> Iterator[Edit]:
    """Edits of the APP1 segments the structure walk (:func:`shared.image.jpeg.check`) found."""
    try:
        facts = jpeg.check(cast(BinaryIO, _Source(read)), size)  # _Source has the read/seek the walk uses
    except jpeg.JpegProblem as exc:
        raise Unremovable(str(exc)) from None
    for segments in facts.app1:
        extended = []
        for body_at, end in segments:
            body = read(body_at, end - body_at)
            if body.startswith(_XMP_EXT_ID):
                extended.append((body_at, body))
            else:
                yield from _app1_edit(body_at, body)
        if extended and _GPS_LEFT.search(b"".join(body[_XMP_EXT_HEADER:] for _, body in sorted(extended, key=_ext_offset))):
            yield from (Edit(at, at + len(body), bytes(len(body))) for at, body in extended)


class _Source:
    """A :data:`Reader` as the file object :func:`shared.image.jpeg.check` reads."""

    def __init__(self, read: Reader) -> None:
        self._read, self._pos = read, 0

    def seek(self, pos: int) -> int:
        self._pos = pos
        return pos

    def read(self, n: int) -> bytes:
        data = self._read(self._pos, n)
        self._pos += len(data)
        return data


def _app1_edit(at: int, body: bytes) -> Iterator[Edit]:
    if body.startswith(_EXIF_ID):
        new = _strip_exif(body)
        if new is not None:
            yield Edit(at, at + len(body), new)
    elif body.startswith(_XMP_ID):
        packet = strip_xmp(body[len(_XMP_ID) :])
        if packet is not None:
            # Dropped whole: zeros, identifier included, make it an APP1 every reader skips.
            yield Edit(at, at + len(body), _XMP_ID + packet if packet else bytes(len(body)))


def _ext_offset(part: tuple[int, bytes]) -> int:
    return struct.unpack_from(">I", part[1], len(_XMP_EXT_ID) + 36)[0] if len(part[1]) >= _XMP_EXT_HEADER else 0


# --- PNG ----------------------------------------------------------------------------------------


def _png_edits(read: Reader) -> Iterator[Edit]:
    for chunk in png.chunks(read):
        ctype, length = chunk.ctype, chunk.length
        body = None
        if ctype == b"eXIf":
            body = _strip_exif(read(chunk.body_at, length))
        elif ctype in _PNG_TEXT:
            keyword = read(chunk.body_at, min(length, 80)).split(b"\x00", 1)[0]
            if keyword == _PNG_XMP_KEY or keyword in _PNG_RAW_KEYS:
                body = _png_text_without_gps(ctype, keyword, read(chunk.body_at, length))
        if body is not None:
            new = b"" if body == b"" else struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))
            yield Edit(chunk.pos, chunk.end, new)


def _png_text_without_gps(ctype: bytes, keyword: bytes, body: bytes) -> bytes | None:
    """The chunk's new body; b"" to drop it; None to keep it as it is."""
    parsed = _png_text(ctype, body)
    if parsed is None:
        return None  # unreadable compressed text: no reader gets anything from it either
    prefix, text, compressed = parsed
    if text is None:
        return b""  # inflates past _MAX_TEXT: not inspected, not sent
    if keyword == _PNG_XMP_KEY:
        new = strip_xmp(text)
        if not new:
            return new
        return prefix + (zlib.compress(new) if compressed else new)
    return b"" if _raw_profile_has_gps(keyword, text) else None


def _png_text(ctype: bytes, body: bytes) -> tuple[bytes, bytes | None, bool] | None:
    """(everything before the text, the text inflated, whether it was compressed); None if corrupt."""
    key_end = body.find(b"\x00")
    if ctype == b"tEXt":
        return body[: key_end + 1], body[key_end + 1 :], False
    if ctype == b"zTXt":
        at, compressed = key_end + 2, True
    else:  # iTXt: keyword, flag, method, language, translated keyword
        compressed = body[key_end + 1 : key_end + 2] == b"\x01"
        at = body.find(b"\x00", body.find(b"\x00", key_end + 3) + 1) + 1
        if at <= key_end + 3:
            return None
    if not compressed:
        return body[:at], body[at:], False
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(body[at:], _MAX_TEXT)
    except zlib.error:
        return None
    return body[:at], (None if inflater.unconsumed_tail else text), True


def _raw_profile_has_gps(keyword: bytes, text: bytes) -> bool:
    """ImageMagick's "Raw profile type X": a name line, a length line, then hex."""
    try:
        data = bytes.fromhex(b"".join(text.split(b"\n")[3:]).decode("ascii"))
    except ValueError:
        return False  # undecodable: no reader gets anything from it either
    if keyword.endswith(b"xmp"):
        return strip_xmp(data) is not None
    try:
        return _strip_exif(data) is not None
    except Unremovable:
        return True
