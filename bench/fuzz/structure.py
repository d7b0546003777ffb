"""Where a picture file's structure is, for the mutations of :mod:`bench.fuzz.mutate`.

:func:`parse` finds a file's units (PNG chunks, JPEG segments, GIF blocks, RIFF chunks, ISO boxes,
TIFF IFD entries): what can be swapped, duplicated, dropped or repeated; its fields (each unit's
length, and the header values that say how big the picture is or how many frames it has): what can
lie; and its TIFF blocks (a TIFF file, or the EXIF inside a JPEG, PNG or WebP) with their IFDs:
what can loop or chain. Parsers are lenient and stop at the first unit that does not fit, since
they also read files that earlier mutations broke.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from typing import Literal

Order = Literal["big", "little"]

_MAX_FIELDS_PER_UNIT = 24  # a GIF frame has a sub-block length every 256 bytes: the first ones will do
_MAX_IFDS = 64


@dataclass(frozen=True)
class Field:
    at: int
    size: int  # bytes
    order: Order

    def read(self, data: bytes | bytearray) -> int:
        return int.from_bytes(data[self.at : self.at + self.size], self.order)

    def write(self, data: bytearray, value: int) -> None:
        data[self.at : self.at + self.size] = (value % (1 << 8 * self.size)).to_bytes(self.size, self.order)


@dataclass(frozen=True)
class Unit:
    start: int
    end: int
    parent: int  # start of the enclosing unit, -1 at the top: units of one parent can trade places
    name: bytes
    length: Field | None = None


@dataclass(frozen=True)
class Ifd:
    at: int  # absolute offset of its entry count
    next_at: int  # absolute offset of its next-IFD pointer
    pointers: tuple[int, ...]  # absolute offsets of the value fields of its sub-IFD pointers (Exif, GPS, SubIFDs)


@dataclass(frozen=True)
class TiffBlock:
    start: int  # the "II*\0"/"MM\0*" header
    end: int
    order: str  # "<" or ">"
    ifds: tuple[Ifd, ...]
    holder: Unit | None  # the chunk or segment holding it (None for a TIFF file)


@dataclass
class Structure:
    units: list[Unit] = field(default_factory=list)
    fields: list[Field] = field(default_factory=list)
    tiffs: list[TiffBlock] = field(default_factory=list)


def parse(kind: str, data: bytes) -> Structure:
    parser = {"png": _png, "jpeg": _jpeg, "gif": _gif, "webp": _riff, "tiff": _tiff_file, "bmp": _bmp}.get(kind, _iso)
    out = Structure()
    try:
        parser(data, out)
    except (struct.error, IndexError, ValueError):
        pass  # what was found so far
    return out


def _png(data: bytes, out: Structure) -> None:
    pos = 8
    while pos + 12 <= len(data):
        length, ctype = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if end > len(data):
            break
        unit = Unit(pos, end, -1, ctype, Field(pos, 4, "big"))
        out.units.append(unit)
        out.fields.append(unit.length)  # type: ignore[arg-type]
        body = pos + 8
        if ctype == b"IHDR":  # width, height, bit depth, colour type, interlace
            out.fields += [Field(body, 4, "big"), Field(body + 4, 4, "big"), Field(body + 8, 1, "big"), Field(body + 9, 1, "big"),
                           Field(body + 12, 1, "big")]
        elif ctype == b"acTL":  # APNG: frame count, plays
            out.fields += [Field(body, 4, "big"), Field(body + 4, 4, "big")]
        elif ctype == b"fcTL":  # APNG frame: width, height, x, y
            out.fields += [Field(body + 4 + 4 * i, 4, "big") for i in range(4)]
        elif ctype == b"eXIf":
            _tiff_block(data, body, end - 4, unit, out)
        pos = end


_SOF = {*range(0xC0, 0xD0)} - {0xC4, 0xC8, 0xCC}
_MARKER_AFTER_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7]")


def _jpeg(data: bytes, out: Structure) -> None:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            break
        marker = data[pos + 1]
        if marker == 0xFF or marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 1 if marker == 0xFF else 2
            continue
        if marker == 0xD9:  # end of image: a picture appended after it (MPF) is parsed too
            nxt = data.find(b"\xff\xd8\xff", pos + 2)
            if nxt < 0:
                break
            pos = nxt + 2
            continue
        length = struct.unpack_from(">H", data, pos + 2)[0]
        end = pos + 2 + length
        if end > len(data):
            break
        unit = Unit(pos, end, -1, bytes([marker]), Field(pos + 2, 2, "big"))
        out.units.append(unit)
        out.fields.append(unit.length)  # type: ignore[arg-type]
        body = pos + 4
        if marker in _SOF:  # precision, height, width, components, then id + sampling + table per component
            out.fields += [Field(body, 1, "big"), Field(body + 1, 2, "big"), Field(body + 3, 2, "big"), Field(body + 5, 1, "big")]
            out.fields += [Field(body + 7 + 3 * i, 1, "big") for i in range(min(data[body + 5], 4))]
        elif marker == 0xDD:  # restart interval
            out.fields.append(Field(body, 2, "big"))
        elif marker == 0xE1 and data[body : body + 6] == b"Exif\x00\x00":
            _tiff_block(data, body + 6, end, unit, out)
        elif marker == 0xE2 and data[body : body + 12] == b"ICC_PROFILE\x00":  # sequence number, count
            out.fields += [Field(body + 12, 1, "big"), Field(body + 13, 1, "big")]
        if marker == 0xDA:
            found = _MARKER_AFTER_SCAN.search(data, end)
            pos = found.start() if found else len(data)
            continue
        pos = end


def _gif(data: bytes, out: Structure) -> None:
    out.fields += [Field(6, 2, "little"), Field(8, 2, "little"), Field(10, 1, "little")]  # screen width, height, flags
    pos = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    while pos < len(data):
        start, introducer = pos, data[pos]
        if introducer == 0x21:  # extension: label, then sub-blocks
            name, pos = data[pos : pos + 2], pos + 2
        elif introducer == 0x2C:  # image: x, y, width, height, flags, [local colours], LZW code size, sub-blocks
            out.fields += [Field(pos + 1 + 2 * i, 2, "little") for i in range(4)] + [Field(pos + 9, 1, "little")]
            flags, name = data[pos + 9], b","
            pos += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
            out.fields.append(Field(pos, 1, "little"))
            pos += 1
        else:
            break
        lengths = []
        while pos < len(data) and data[pos]:
            lengths.append(Field(pos, 1, "little"))
            pos += 1 + data[pos]
        pos += 1
        if pos > len(data):
            break
        out.fields += lengths[:_MAX_FIELDS_PER_UNIT]
        out.units.append(Unit(start, pos, -1, name))


def _riff(data: bytes, out: Structure, start: int = 12, stop: int | None = None, parent: int = -1) -> None:
    if parent == -1:
        out.fields.append(Field(4, 4, "little"))  # RIFF size
    pos, stop = start, len(data) if stop is None else stop
    while pos + 8 <= stop:
        fourcc, size = struct.unpack_from("<4sI", data, pos)
        end = min(pos + 8 + size + (size & 1), len(data))
        if pos + 8 + size > stop:
            break
        unit = Unit(pos, end, parent, fourcc, Field(pos + 4, 4, "little"))
        out.units.append(unit)
        out.fields.append(unit.length)  # type: ignore[arg-type]
        body = pos + 8
        if fourcc == b"VP8X":  # flags, canvas width - 1, height - 1 (24 bits each)
            out.fields += [Field(body, 1, "little"), Field(body + 4, 3, "little"), Field(body + 7, 3, "little")]
        elif fourcc == b"VP8 ":  # after the frame tag and start code: width, height (14 bits + scale)
            out.fields += [Field(body + 6, 2, "little"), Field(body + 8, 2, "little")]
        elif fourcc == b"VP8L":  # width - 1, height - 1, alpha, version packed in 32 bits
            out.fields.append(Field(body + 1, 4, "little"))
        elif fourcc == b"ANIM":  # background, loop count
            out.fields += [Field(body, 4, "little"), Field(body + 4, 2, "little")]
        elif fourcc == b"ANMF":  # x, y, width - 1, height - 1, duration (24 bits each), then the frame's chunks
            out.fields += [Field(body + 3 * i, 3, "little") for i in range(5)]
            _riff(data, out, body + 16, pos + 8 + size, pos)
        elif fourcc == b"EXIF":
            skip = 6 if data[body : body + 6] == b"Exif\x00\x00" else 0
            _tiff_block(data, body + skip, pos + 8 + size, unit, out)
        pos = end


_ISO_CONTAINERS = {b"meta": 4, b"iprp": 0, b"ipco": 0, b"dinf": 0, b"iref": 4, b"moov": 0, b"trak": 0, b"mdia": 0,
                   b"minf": 0, b"stbl": 0, b"grpl": 0}  # box type: bytes before its children (version and flags)
_ISO_WORDS = {b"ispe": 2, b"iloc": 8, b"pitm": 1, b"ipma": 4, b"pixi": 1, b"irot": 1, b"iinf": 1, b"clap": 8}  # 32-bit words after version/flags


def _iso(data: bytes, out: Structure, start: int = 0, stop: int | None = None, parent: int = -1) -> None:
    pos, stop = start, len(data) if stop is None else stop
    while pos + 8 <= stop:
        size, box = struct.unpack_from(">I4s", data, pos)
        header, length = 8, Field(pos, 4, "big")
        if size == 1:
            size, header, length = struct.unpack_from(">Q", data, pos + 8)[0], 16, Field(pos + 8, 8, "big")
        elif size == 0:
            size = stop - pos
        if size < header or pos + size > stop:
            break
        out.units.append(Unit(pos, pos + size, parent, box, length))
        out.fields.append(length)
        body = pos + header
        if box in _ISO_CONTAINERS:
            _iso(data, out, body + _ISO_CONTAINERS[box], pos + size, pos)
        elif box == b"iinf":  # version, flags, entry count (16 bits in version 0), then the item entries
            _iso(data, out, body + (6 if data[body] == 0 else 8), pos + size, pos)
        elif box in _ISO_WORDS:
            out.fields += [Field(body + 4 * i, 4, "big") for i in range(_ISO_WORDS[box]) if body + 4 * i + 4 <= pos + size]
        pos += size


def _tiff_file(data: bytes, out: Structure) -> None:
    _tiff_block(data, 0, len(data), None, out)
    for ifd in (t for block in out.tiffs for t in block.ifds):
        count = struct.unpack_from(out.tiffs[0].order + "H", data, ifd.at)[0]
        out.units += [Unit(at, at + 12, ifd.at, b"entry") for at in range(ifd.at + 2, ifd.at + 2 + 12 * count, 12)]


_SUB_IFDS = {0x8769, 0x8825, 0xA005, 0x014A}  # Exif, GPS, Interoperability, SubIFDs


def _tiff_block(data: bytes, start: int, end: int, holder: Unit | None, out: Structure) -> None:
    order = {b"II*\x00": "<", b"MM\x00*": ">"}.get(data[start : start + 4])
    if order is None or end - start < 8:
        return
    endian: Order = "little" if order == "<" else "big"
    out.fields.append(Field(start + 4, 4, endian))
    todo, seen, ifds = [struct.unpack_from(order + "I", data, start + 4)[0]], set(), list[Ifd]()
    while todo and len(ifds) < _MAX_IFDS:
        offset = todo.pop(0)
        at = start + offset
        if offset in seen or offset < 8 or at + 2 > end:
            continue
        seen.add(offset)
        count = struct.unpack_from(order + "H", data, at)[0]
        next_at = at + 2 + 12 * count
        if next_at + 4 > end:
            continue
        out.fields.append(Field(at, 2, endian))
        pointers = []
        for entry in range(at + 2, next_at, 12):
            tag = struct.unpack_from(order + "H", data, entry)[0]
            out.fields += [Field(entry + 2, 2, endian), Field(entry + 4, 4, endian), Field(entry + 8, 4, endian)]  # type, count, value
            if tag in _SUB_IFDS:
                pointers.append(entry + 8)
                todo.append(struct.unpack_from(order + "I", data, entry + 8)[0])
        out.fields.append(Field(next_at, 4, endian))
        todo.append(struct.unpack_from(order + "I", data, next_at)[0])
        ifds.append(Ifd(at, next_at, tuple(pointers)))
    out.tiffs.append(TiffBlock(start, end, order, tuple(ifds), holder))


_BMP_FIELDS = [(2, 4), (10, 4), (14, 4), (18, 4), (22, 4), (26, 2), (28, 2), (30, 4), (34, 4), (46, 4), (50, 4),
               (54, 4), (58, 4), (62, 4), (66, 4), (126, 4), (130, 4)]  # file size ... V5 profile offset and size


def _bmp(data: bytes, out: Structure) -> None:
    header = struct.unpack_from("<I", data, 14)[0]
    out.fields += [Field(at, size, "little") for at, size in _BMP_FIELDS if at < 14 + header and at + size <= len(data)]
