"""Metadata bombs: huge EXIF, XMP, ICC and text, deep IFD chains, each put where its kind keeps it.

:func:`bomb` adds one of a kind's flavours, about ``size`` bytes of it, to a file; the containers'
length fields (and PNG CRCs, the RIFF size, ISO parent boxes) are set to match, so the bomb reaches
the code that reads it rather than being refused as a broken container. :func:`replace_tiff` puts
a rewritten TIFF block (a deeper IFD chain) back where it came from.
"""

from __future__ import annotations

import functools
import struct
import zlib

from .structure import Structure, TiffBlock, Unit

_XMP_HEAD = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/"'
_XMP_ID = b"http://ns.adobe.com/xap/1.0/\x00"
_XMP_EXT_ID = b"http://ns.adobe.com/xmp/extension/\x00"
_SEGMENT = 65533 - 64  # room in one JPEG segment, identifiers aside


def bomb(kind: str, data: bytes, structure: Structure, flavour: int, size: int) -> bytes:
    makers = _FLAVOURS.get(kind, _FLAVOURS["iso"])
    return makers[flavour % len(makers)](data, structure, max(64, size))


# --- what goes in -------------------------------------------------------------------------------


def exif_chain(size: int, order: str = ">") -> bytes:
    """A TIFF block whose IFD0 leads through IFDs to about ``size`` bytes, each pointing to one GPS IFD."""
    depth = max(1, (size - 8 - 18) // 30)
    gps_at = 8 + 30 * depth
    out = bytearray((b"MM\x00*" if order == ">" else b"II*\x00") + struct.pack(order + "I", 8))
    for i in range(depth):
        nxt = 8 + 30 * (i + 1) if i + 1 < depth else 0
        out += struct.pack(order + "H", 2) + struct.pack(order + "HHIHH", 0x0112, 3, 1, 1, 0)
        out += struct.pack(order + "HHII", 0x8825, 4, 1, gps_at) + struct.pack(order + "I", nxt)
    return bytes(out + struct.pack(order + "H", 1) + struct.pack(order + "HHI4s", 1, 2, 2, b"N\x00\x00\x00") + bytes(4))


def xmp_torture(size: int) -> bytes:
    """An XMP packet of GPS properties opened and never closed: each one sends a pattern looking for its end to the end."""
    body = (b" exif:GPSLatitude=\"48,51" + b"<exif:GPSLongitude>2,17") * max(1, (size - len(_XMP_HEAD)) // 48)
    return _XMP_HEAD + body


def icc_claiming(size: int) -> bytes:
    """An ICC profile whose header is plausible (sRGB, display class) and whose size is ``size``."""
    header = struct.pack(">I4sI4s4s4s", size, b"lcms", 0x04300000, b"mntr", b"RGB ", b"XYZ ") + bytes(12) + b"acsp"
    return (header + bytes(128 - len(header)) + struct.pack(">I", 0)).ljust(size, b"\x00")


@functools.cache
def deflated_zeros(inflated: int) -> bytes:
    """``inflated`` zero bytes, deflated (about a thousandth of the size); kept, since making it takes a while."""
    pack, block = zlib.compressobj(9), bytes(1 << 20)
    parts = [pack.compress(block) for _ in range(inflated >> 20)] + [pack.compress(bytes(inflated & ((1 << 20) - 1))), pack.flush()]
    return b"".join(parts)


# --- JPEG -----------------------------------------------------------------------------------------


def _segments(marker: int, bodies: list[bytes]) -> bytes:
    return b"".join(b"\xff" + bytes([marker]) + struct.pack(">H", len(b) + 2) + b for b in bodies)


def _after_soi(data: bytes, insert: bytes) -> bytes:
    return data[:2] + insert + data[2:]


def _jpeg_exif(data: bytes, structure: Structure, size: int) -> bytes:
    block = exif_chain(min(size, _SEGMENT))
    return _after_soi(data, _segments(0xE1, [b"Exif\x00\x00" + block] * max(1, size // _SEGMENT)))


def _jpeg_icc(data: bytes, structure: Structure, size: int) -> bytes:
    profile = icc_claiming(min(size, 255 * _SEGMENT))
    parts = [profile[i : i + _SEGMENT] for i in range(0, len(profile), _SEGMENT)]
    return _after_soi(data, _segments(0xE2, [b"ICC_PROFILE\x00" + bytes([n + 1, len(parts)]) + p for n, p in enumerate(parts)]))


def _jpeg_xmp(data: bytes, structure: Structure, size: int) -> bytes:
    packet = xmp_torture(min(size, _SEGMENT))
    whole = xmp_torture(size)
    guid = b"0123456789ABCDEF0123456789ABCDEF"
    extended = [_XMP_EXT_ID + guid + struct.pack(">II", len(whole), at) + whole[at : at + _SEGMENT - 80]
                for at in range(0, len(whole), _SEGMENT - 80)]
    return _after_soi(data, _segments(0xE1, [_XMP_ID + packet, *extended]))


def _jpeg_comments(data: bytes, structure: Structure, size: int) -> bytes:
    return _after_soi(data, _segments(0xFE, [b"c" * _SEGMENT] * max(1, size // _SEGMENT)))


# --- PNG ------------------------------------------------------------------------------------------


def png_chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def _after_ihdr(data: bytes, structure: Structure, insert: bytes) -> bytes:
    at = next((u.end for u in structure.units if u.name == b"IHDR"), 8)
    return data[:at] + insert + data[at:]


def _png_text(data: bytes, structure: Structure, size: int) -> bytes:
    return _after_ihdr(data, structure, png_chunk(b"tEXt", b"Comment\x00" + b"t" * size))


def _png_ztxt(data: bytes, structure: Structure, size: int) -> bytes:
    return _after_ihdr(data, structure, png_chunk(b"zTXt", b"Comment\x00\x00" + deflated_zeros(min(size * 64, 256 << 20))))


def _png_xmp(data: bytes, structure: Structure, size: int) -> bytes:
    return _after_ihdr(data, structure, png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp_torture(size)))


def _png_xmp_deflated(data: bytes, structure: Structure, size: int) -> bytes:
    body = b"XML:com.adobe.xmp\x00\x01\x00\x00\x00" + zlib.compress(xmp_torture(size * 16))
    return _after_ihdr(data, structure, png_chunk(b"iTXt", body))


def _png_iccp(data: bytes, structure: Structure, size: int) -> bytes:
    return _after_ihdr(data, structure, png_chunk(b"iCCP", b"ICC\x00\x00" + deflated_zeros(min(size * 64, 256 << 20))))


def _png_exif(data: bytes, structure: Structure, size: int) -> bytes:
    return _after_ihdr(data, structure, png_chunk(b"eXIf", exif_chain(size)))


def _png_many_chunks(data: bytes, structure: Structure, size: int) -> bytes:
    return _after_ihdr(data, structure, png_chunk(b"tEXt", b"a\x00b") * max(1, size // 15))


# --- GIF ------------------------------------------------------------------------------------------


def _sub_blocks(payload: bytes) -> bytes:
    return b"".join(bytes([len(payload[i : i + 255])]) + payload[i : i + 255] for i in range(0, len(payload), 255)) + b"\x00"


def _before_first_block(data: bytes, structure: Structure, insert: bytes) -> bytes:
    at = structure.units[0].start if structure.units else 13
    return data[:at] + insert + data[at:]


def _gif_comment(data: bytes, structure: Structure, size: int) -> bytes:
    return _before_first_block(data, structure, b"\x21\xfe" + _sub_blocks(b"c" * size))


def _gif_xmp(data: bytes, structure: Structure, size: int) -> bytes:
    return _before_first_block(data, structure, b"\x21\xff\x0bXMP DataXMP" + _sub_blocks(xmp_torture(size)))


# --- WebP -----------------------------------------------------------------------------------------


def _riff_chunk(fourcc: bytes, body: bytes) -> bytes:
    return fourcc + struct.pack("<I", len(body)) + body + b"\x00" * (len(body) & 1)


def _webp_with(data: bytes, structure: Structure, fourcc: bytes, flag: int, body: bytes) -> bytes:
    """The file with a VP8X chunk (made from the image's size if there is none) flagging ``fourcc``."""
    out = bytearray(data)
    vp8x = next((u for u in structure.units if u.name == b"VP8X"), None)
    if vp8x is None:
        width, height = _webp_size(data, structure)
        out[12:12] = _riff_chunk(b"VP8X", bytes([flag, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little"))
        vp8x_end = 12 + 18
    else:
        out[vp8x.start + 8] |= flag
        vp8x_end = vp8x.end
    chunk = _riff_chunk(fourcc, body)
    if fourcc == b"ICCP":  # right after VP8X, as the format wants; metadata goes last
        out[vp8x_end:vp8x_end] = chunk
    else:
        out += chunk
    struct.pack_into("<I", out, 4, len(out) - 8)
    return bytes(out)


def _webp_size(data: bytes, structure: Structure) -> tuple[int, int]:
    for unit in structure.units:
        body = unit.start + 8
        if unit.name == b"VP8L" and unit.end - body >= 5:
            bits = struct.unpack_from("<I", data, body + 1)[0]
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if unit.name == b"VP8 " and unit.end - body >= 10:
            width, height = struct.unpack_from("<HH", data, body + 6)
            return max(1, width & 0x3FFF), max(1, height & 0x3FFF)
    return 1, 1


def _webp_exif(data: bytes, structure: Structure, size: int) -> bytes:
    return _webp_with(data, structure, b"EXIF", 0x08, exif_chain(size))


def _webp_xmp(data: bytes, structure: Structure, size: int) -> bytes:
    return _webp_with(data, structure, b"XMP ", 0x04, xmp_torture(size))


def _webp_icc(data: bytes, structure: Structure, size: int) -> bytes:
    return _webp_with(data, structure, b"ICCP", 0x20, icc_claiming(size))


# --- TIFF -----------------------------------------------------------------------------------------


def _tiff_entry(data: bytes, structure: Structure, tag: int, typ: int, value: bytes, extra: int = 0) -> bytes:
    """IFD0 written again at the end with one more entry (its value appended) and ``extra`` dummy ones."""
    if not structure.tiffs or not structure.tiffs[0].ifds:
        return data + value
    block, ifd = structure.tiffs[0], structure.tiffs[0].ifds[0]
    order = block.order
    count = struct.unpack_from(order + "H", data, ifd.at)[0]
    entries = [data[at : at + 12] for at in range(ifd.at + 2, ifd.at + 2 + 12 * count, 12)]
    out = bytearray(data) + b"\x00" * (len(data) & 1)
    value_at = len(out)
    out += value + b"\x00" * (len(value) & 1)
    entries.append(struct.pack(order + "HHII", tag, typ, len(value), value_at))
    entries += [struct.pack(order + "HHII", 0xC000 + i % 0x3FFF, 3, 1, 0) for i in range(min(extra, 65535 - len(entries)))]
    entries = sorted(entries, key=lambda e: struct.unpack_from(order + "H", e)[0])[:65535]
    new_ifd = len(out)
    out += struct.pack(order + "H", len(entries)) + b"".join(entries) + data[ifd.next_at : ifd.next_at + 4]
    struct.pack_into(order + "I", out, 4, new_ifd)
    return bytes(out)


def _tiff_xmp(data: bytes, structure: Structure, size: int) -> bytes:
    return _tiff_entry(data, structure, 700, 1, xmp_torture(size))


def _tiff_icc(data: bytes, structure: Structure, size: int) -> bytes:
    return _tiff_entry(data, structure, 34675, 7, icc_claiming(size))


def _tiff_many_entries(data: bytes, structure: Structure, size: int) -> bytes:
    return _tiff_entry(data, structure, 305, 2, b"fuzz\x00", extra=size // 12)


def _tiff_chain(data: bytes, structure: Structure, size: int) -> bytes:
    return chain_ifds(data, structure.tiffs[0], size) if structure.tiffs and structure.tiffs[0].ifds else data


def chain_ifds(data: bytes, block: TiffBlock, size: int) -> bytes:
    """The file with ``block``'s IFD0 followed by copies of itself, about ``size`` bytes of them: pages that are not there."""
    tiff = data[block.start : block.end]
    ifd0 = block.ifds[0].at - block.start
    count = struct.unpack_from(block.order + "H", tiff, ifd0)[0]
    entries = tiff[ifd0 + 2 : ifd0 + 2 + 12 * count]
    out = bytearray(tiff) + b"\x00" * (len(tiff) & 1)
    first, step = len(out), 6 + 12 * count
    depth = max(1, min(size // step, 1 << 20))
    for i in range(depth):
        out += struct.pack(block.order + "H", count) + entries + struct.pack(block.order + "I", first + step * (i + 1) if i + 1 < depth else 0)
    struct.pack_into(block.order + "I", out, ifd0 + 2 + 12 * count, first)
    return replace_tiff(data, block, bytes(out))


def replace_tiff(data: bytes, block: TiffBlock, tiff: bytes) -> bytes:
    """``data`` with ``block`` replaced by ``tiff``, its holder's length fields set to match."""
    holder: Unit | None = block.holder
    if holder is None:
        return data[: block.start] + tiff + data[block.end :]
    prefix = data[holder.start : block.start]
    if holder.name == b"eXIf":
        return data[: holder.start] + png_chunk(b"eXIf", tiff) + data[holder.end :]
    if holder.name == b"EXIF":
        out = bytearray(data[: holder.start] + _riff_chunk(b"EXIF", prefix[8:] + tiff) + data[holder.end :])
        struct.pack_into("<I", out, 4, len(out) - 8)
        return bytes(out)
    body = (prefix[4:] + tiff)[: 65533]  # a JPEG APP1: what does not fit in a segment is cut
    return data[: holder.start] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + data[holder.end :]


# --- ISO boxes (AVIF, HEIC, HEIF) and BMP ---------------------------------------------------------


def _box(box: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body) + 8) + box + body


def _into_box(data: bytes, structure: Structure, parent: bytes, box: bytes) -> bytes:
    """``box`` appended inside the first ``parent`` box, every enclosing box's size grown to match."""
    target = next((u for u in structure.units if u.name == parent), None)
    if target is None:
        return data + box
    out = bytearray(data[: target.end] + box + data[target.end :])
    by_start = {u.start: u for u in structure.units}
    unit: Unit | None = target
    while unit is not None:
        if unit.length is not None and unit.length.size == 4:
            unit.length.write(out, unit.length.read(out) + len(box))
        unit = by_start.get(unit.parent)
    return bytes(out)


def _iso_icc(data: bytes, structure: Structure, size: int) -> bytes:
    return _into_box(data, structure, b"ipco", _box(b"colr", b"prof" + icc_claiming(size)))


def _iso_xmp(data: bytes, structure: Structure, size: int) -> bytes:
    return _into_box(data, structure, b"meta", _box(b"uuid", b"\xbe\x7a\xcf\xcb\x97\xa9\x42\xe8\x9c\x71\x99\x94\x91\xe3\xaf\xac" + xmp_torture(size)))


def _bmp_trailer(data: bytes, structure: Structure, size: int) -> bytes:
    return data + b"\x00" * size


_FLAVOURS = {
    "jpeg": [_jpeg_exif, _jpeg_icc, _jpeg_xmp, _jpeg_comments],
    "png": [_png_text, _png_ztxt, _png_xmp, _png_xmp_deflated, _png_iccp, _png_exif, _png_many_chunks],
    "gif": [_gif_comment, _gif_xmp],
    "webp": [_webp_exif, _webp_xmp, _webp_icc],
    "tiff": [_tiff_xmp, _tiff_icc, _tiff_many_entries, _tiff_chain],
    "bmp": [_bmp_trailer],
    "iso": [_iso_icc, _iso_xmp],
}
