"""Is a file a complete JPEG? Answered from its structure, without decoding a pixel.

A JPEG is a chain of marker segments (``FF xx`` + a 16-bit length) with entropy-coded data after
each start-of-scan; inside that data every ``FF`` byte is followed by a stuffed ``00`` or is a
restart marker (``FF D0``-``FF D7``), so the first other marker ends the scan. :func:`check` walks
the chain from start-of-image to end-of-image and checks, as libjpeg would before decoding:

* every segment fits in the file and the ones that matter parse (frame, scan, tables,
  restart interval), a scan's components are in the frame and have a quantization table,
  progressive scan parameters are legal, every component is scanned;
* each scan's data runs to a marker, and with a restart interval it holds the restart markers
  its size needs (one spare allowed), in order: a hole or garbage in the data drops or adds some;
* the picture ends with end-of-image. A cut file has none, and neither has one whose unwritten
  tail is zeros (preallocating copy tools, download managers). A decode at reduced scale
  accepted those: zeros are valid entropy-coded data, and libjpeg only warns when the
  end-of-image marker is missing.

Bytes after end-of-image are allowed (cameras append padding, vendor trailers and further
pictures), unless they show the file is unfinished: a picture appended there (MPF: previews,
HDR gain maps) must itself be complete, and the place where the MPF index puts one must not be
zeros.

What it cannot see: wrong bits inside the entropy-coded data (a decode at 1/8 scale caught about
2 in 100 of those anyway), a zero-filled hole in a scan without restart markers.

The file is read in 1 MB pieces, never whole, and scans are searched by a regular expression
(C speed, about 0.3 ms per MB): no per-byte Python loop.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from typing import BinaryIO

_CHUNK = 1 << 20
_MARKER_IN_SCAN = re.compile(rb"\xff[^\x00]")

SOI, EOI, SOS, DQT, DHT, DRI, DNL, DAC, COM, TEM = 0xD8, 0xD9, 0xDA, 0xDB, 0xC4, 0xDD, 0xDC, 0xCC, 0xFE, 0x01
APP1, APP2 = 0xE1, 0xE2
RST0, RST7 = 0xD0, 0xD7
SEQUENTIAL_SOF = {0xC0: "baseline", 0xC1: "extended"}
PROGRESSIVE_SOF = 0xC2
OTHER_SOF = {0xC3: "lossless", 0xC5: "hierarchical", 0xC6: "hierarchical", 0xC7: "hierarchical",
             0xC9: "arithmetic-coded", 0xCA: "arithmetic-coded", 0xCB: "arithmetic-coded",
             0xCD: "hierarchical", 0xCE: "hierarchical", 0xCF: "hierarchical"}
_FRAME = {*SEQUENTIAL_SOF, PROGRESSIVE_SOF, *OTHER_SOF}
_TABLES_AND_SCAN = {DQT, DHT, DRI, SOS}
_SKIPPED = {DNL, DAC, COM, *range(0xE0, 0xF0)}  # DNL is skipped by libjpeg too; APPn are metadata
_MAX_APPENDED = 8  # pictures after the first one checked for completeness (MPF says how many)
_ZERO_PROBE = 16


class JpegProblem(ValueError):
    """Not a usable JPEG; ``str()`` is the reason for a person ("corrupt jpeg (...)")."""


class Truncated(JpegProblem):
    """The file ends before the picture does: cut, or its tail never written (zeros)."""


_ZEROS = "truncated jpeg (ends in zeros: the rest of the file was never written)"


@dataclass(frozen=True)
class JpegFacts:
    width: int  # as stored (EXIF orientation is the caller's business)
    height: int
    end: int  # offset just past the first picture's end-of-image marker
    appended: int  # complete pictures found after it (MPF or directly appended)
    app1: tuple[tuple[tuple[int, int], ...], ...] = ()
    """Where the APP1 segments' bodies are (start, end), picture by picture: the first one, then
    each complete one its MPF index lists. EXIF and XMP live there (:mod:`shared.image.gps`)."""
    coefficients: int = 0
    """Bytes libjpeg keeps for a progressive picture's DCT coefficients while decoding it (0 when
    sequential): 64 two-byte coefficients per 8x8 block of every component, the whole picture."""


def check(fh: BinaryIO, size: int) -> JpegFacts:
    """Walk the JPEG in ``fh`` (``size`` bytes) or raise :class:`JpegProblem` with the reason."""
    win = _Window(fh, size)
    try:
        picture = _walk(win, 0)
        appended, indexed = _check_appended(win, picture)
    except Truncated:
        raise
    except JpegProblem:
        # Zeros parsed as a segment or a table fail in any way; the zeros are the story.
        if win.ends_in_zeros():
            raise Truncated(_ZEROS) from None
        raise
    frame = picture.frame
    assert frame is not None  # _walk returns only a complete picture (_check_complete)
    app1 = tuple(tuple(p.app1) for p in (picture, *indexed))
    return JpegFacts(frame.width, frame.height, picture.end, appended, app1, frame.coefficients() if frame.progressive else 0)


# --- reading ----------------------------------------------------------------------------------


class _Window:
    """Random access to the file through one buffered piece of at most ~1 MB."""

    def __init__(self, fh: BinaryIO, size: int) -> None:
        self.fh, self.size = fh, size
        self.buf, self.base = b"", 0

    def at(self, pos: int, need: int) -> tuple[bytes, int]:
        """The piece and the index of ``pos`` in it, with ``need`` bytes there unless the file ends."""
        if not (self.base <= pos and pos + need <= self.base + len(self.buf)):
            self.fh.seek(pos)
            self.buf, self.base = self.fh.read(max(need, _CHUNK)), pos
        return self.buf, pos - self.base

    def read(self, pos: int, n: int, where: str) -> bytes:
        buf, i = self.at(pos, n)
        data = buf[i : i + n]
        if len(data) < n:
            raise self.cut(where)
        return data

    def tail(self, n: int) -> bytes:
        self.fh.seek(max(0, self.size - n))
        return self.fh.read(n)

    def ends_in_zeros(self) -> bool:
        return self.size >= _ZERO_PROBE and not any(self.tail(_ZERO_PROBE))

    def cut(self, where: str) -> Truncated:
        """The reason for a file that ends too soon, saying so when its tail is zeros."""
        return Truncated(_ZEROS if self.ends_in_zeros() else f"truncated jpeg ({where})")


# --- one picture, SOI to EOI ------------------------------------------------------------------


@dataclass
class _Frame:
    marker: int
    width: int
    height: int
    components: dict[int, tuple[int, int, int]]  # id -> (h, v, quant table)

    @property
    def progressive(self) -> bool:
        return self.marker == PROGRESSIVE_SOF

    def coefficients(self) -> int:
        """Bytes of all the picture's DCT coefficients: 128 per block of each component's block grid."""
        return 128 * sum(self.mcus([ident]) for ident in self.components)

    def mcus(self, ids: list[int]) -> int:
        """MCUs in a scan of these components: restart intervals count them (ITU T.81 A.2)."""
        hmax = max(h for h, _, _ in self.components.values())
        vmax = max(v for _, v, _ in self.components.values())
        if len(ids) == 1:  # non-interleaved: one block per MCU, the component's own block grid
            h, v, _ = self.components[ids[0]]
            return _ceil(self.width * h, 8 * hmax) * _ceil(self.height * v, 8 * vmax)
        return _ceil(self.width, 8 * hmax) * _ceil(self.height, 8 * vmax)


@dataclass
class _Picture:
    frame: _Frame | None = None
    quant: set[int] = field(default_factory=set)
    restart_interval: int = 0
    scanned: set[int] = field(default_factory=set)
    mpf: tuple[int, bytes] | None = None  # file offset of the MPF index (its TIFF header), its bytes
    app1: list[tuple[int, int]] = field(default_factory=list)  # (body start, end) of each APP1 segment
    end: int = 0


def _walk(win: _Window, start: int) -> _Picture:
    if win.read(start, 2, "ends at its first bytes") != b"\xff\xd8":
        raise JpegProblem("corrupt jpeg (no start-of-image marker)")
    picture = _Picture()
    pos = start + 2
    while True:
        pos, marker = _next_marker(win, pos, junk_allowed=not picture.scanned)
        if marker == EOI:
            _check_complete(picture)
            picture.end = pos
            return picture
        if marker == TEM or RST0 <= marker <= RST7:  # parameterless, skipped by libjpeg
            continue
        if marker == SOI:
            raise JpegProblem("corrupt jpeg (start-of-image marker inside the picture)")
        if marker in _FRAME:
            if picture.frame is not None:
                raise JpegProblem("corrupt jpeg (two frame headers)")
            if marker in OTHER_SOF:
                raise JpegProblem(f"unsupported jpeg ({OTHER_SOF[marker]}; save it as a baseline or progressive JPEG)")
        elif marker not in _SKIPPED and marker not in _TABLES_AND_SCAN:
            raise JpegProblem(f"corrupt jpeg (unexpected marker 0x{marker:02X})")  # JPGn, DHP, EXP, reserved
        length = struct.unpack(">H", win.read(pos, 2, "ends inside a marker segment"))[0]
        if length < 2:
            raise JpegProblem(f"corrupt jpeg (bad length in marker 0x{marker:02X})")
        end = pos + length
        if end > win.size:
            if picture.scanned and win.tail(2) == b"\xff\xd9":  # a length read from damaged scan data
                raise JpegProblem("corrupt jpeg (a segment runs past the end of the file, which ends like a whole JPEG)")
            raise win.cut("ends inside a marker segment")
        if marker in _SKIPPED:
            if marker == APP1:
                picture.app1.append((pos + 2, end))
            if marker == APP2 and picture.mpf is None and length >= 6 and win.read(pos + 2, 4, "ends inside a marker segment") == b"MPF\x00":
                picture.mpf = (pos + 6, win.read(pos + 6, length - 6, "ends inside a marker segment"))
            pos = end
            continue
        body = win.read(pos + 2, length - 2, "ends inside a marker segment")
        pos = end
        if marker in _FRAME:
            _read_frame(picture, marker, body)
        elif marker == DQT:
            _read_quant_tables(picture, body)
        elif marker == DHT:
            _check_huffman_tables(body)
        elif marker == DRI:
            if len(body) != 2:
                raise JpegProblem("corrupt jpeg (bad restart interval segment)")
            picture.restart_interval = struct.unpack(">H", body)[0]
        else:
            ids = _read_scan_header(picture, body)
            assert picture.frame is not None  # _read_scan_header refuses a scan before the frame header
            pos = _skip_scan_data(win, pos, picture.restart_interval, picture.frame.mcus(ids))


def _next_marker(win: _Window, pos: int, junk_allowed: bool) -> tuple[int, int]:
    """The marker at ``pos``: (offset past it, its code). Fill bytes (``FF FF ...``) before it are
    skipped, as libjpeg does.

    So are other bytes before the first scan (libjpeg and Pillow skip them; some writers leave a
    few between header segments), but not after it: there, skipping would swallow a damaged scan
    up to whatever marker comes next.
    """
    while True:
        buf, i = win.at(pos, 2)
        if i >= len(buf):
            raise win.cut("no end-of-image marker")
        if buf[i] != 0xFF:
            if not junk_allowed:
                raise JpegProblem("corrupt jpeg (no marker where a segment ends: a length or the data is wrong)")
            j = buf.find(b"\xff", i)
            pos = win.base + (j if j >= 0 else len(buf))
            continue
        after, code = _after_fill(win, pos + 1)
        if code != 0:
            return after, code
        if not junk_allowed:
            raise JpegProblem("corrupt jpeg (no marker where a segment ends: a length or the data is wrong)")
        pos = after  # FF 00 outside a scan is junk as well


def _after_fill(win: _Window, pos: int) -> tuple[int, int]:
    """Skip ``FF`` fill bytes from ``pos``: (offset past the first other byte, that byte)."""
    while True:
        buf, i = win.at(pos, 1)
        if i >= len(buf):
            raise win.cut("ends inside a marker")
        if buf[i] != 0xFF:
            return pos + 1, buf[i]
        pos += 1


def _skip_scan_data(win: _Window, pos: int, interval: int, mcus: int) -> int:
    """Offset of the marker that ends the entropy-coded data starting at ``pos``.

    Restart markers inside it are counted and must come in order (RST0..RST7, RST0...): a scan
    of ``mcus`` MCUs with a restart interval holds ``ceil(mcus / interval) - 1`` of them.
    """
    restarts = 0
    while True:
        buf, i = win.at(pos, 2)
        found = _MARKER_IN_SCAN.search(buf, i)
        if found is None:
            if win.base + len(buf) >= win.size:
                raise win.cut("ends inside the image data")
            # An FF at the very end of the piece pairs with the next piece's first byte.
            pos = win.base + len(buf) - (buf[-1] == 0xFF)
            continue
        at = win.base + found.start()
        code = buf[found.start() + 1]
        after = at + 2
        if code == 0xFF:
            after, code = _after_fill(win, at + 1)
        if code == 0:  # FF FF ... 00: libjpeg reads fill bytes then a stuffed FF as data
            pos = after
        elif RST0 <= code <= RST7:
            if not interval:
                raise JpegProblem("corrupt jpeg (restart marker in a scan without a restart interval)")
            if code - RST0 != restarts % 8:
                raise JpegProblem("corrupt jpeg (restart markers out of order: data missing or damaged)")
            restarts += 1
            pos = after
        else:
            expected = _ceil(mcus, interval) - 1 if interval else 0
            # One more than needed is harmless (decoders skip a restart marker after the last MCU).
            if not expected <= restarts <= expected + 1:
                raise JpegProblem(f"corrupt jpeg ({restarts} restart markers where the scan needs {expected}: data missing or damaged)")
            return at


# --- segments ---------------------------------------------------------------------------------


def _read_frame(picture: _Picture, marker: int, body: bytes) -> None:
    if len(body) < 6 or len(body) != 6 + 3 * body[5]:
        raise JpegProblem("corrupt jpeg (bad frame header)")
    precision, height, width, count = struct.unpack_from(">BHHB", body)
    if precision != 8:
        raise JpegProblem(f"unsupported jpeg ({precision}-bit samples)")
    if not 1 <= count <= 4:
        raise JpegProblem(f"unsupported jpeg ({count} colour components)")
    if width == 0 or height == 0:
        raise JpegProblem(f"invalid dimensions {width}x{height}")
    components: dict[int, tuple[int, int, int]] = {}
    for k in range(count):
        ident, sampling, table = body[6 + 3 * k : 9 + 3 * k]
        h, v = sampling >> 4, sampling & 0x0F
        if not (1 <= h <= 4 and 1 <= v <= 4) or table > 3:
            raise JpegProblem("corrupt jpeg (bad component in frame header)")
        components.setdefault(ident, (h, v, table))
    picture.frame = _Frame(marker, width, height, components)


def _read_quant_tables(picture: _Picture, body: bytes) -> None:
    i = 0
    while i < len(body):
        precision, table = body[i] >> 4, body[i] & 0x0F
        i += 1 + 64 * (2 if precision else 1)
        if table > 3 or i > len(body):
            raise JpegProblem("corrupt jpeg (bad quantization table)")
        picture.quant.add(table)


def _check_huffman_tables(body: bytes) -> None:
    """Each table's code lengths must form a valid prefix code (libjpeg: "Bogus Huffman table")."""
    i = 0
    while i < len(body):
        if i + 17 > len(body) or body[i] >> 4 > 1 or body[i] & 0x0F > 3:
            raise JpegProblem("corrupt jpeg (bad Huffman table)")
        counts = body[i + 1 : i + 17]
        if sum(counts) > 256:
            raise JpegProblem("corrupt jpeg (bad Huffman table)")
        code = 0
        for bits, count in enumerate(counts, 1):
            code += count
            if count and code >= 1 << bits:
                raise JpegProblem("corrupt jpeg (bad Huffman table)")
            code <<= 1
        i += 17 + sum(counts)
        if i > len(body):
            raise JpegProblem("corrupt jpeg (bad Huffman table)")


def _read_scan_header(picture: _Picture, body: bytes) -> list[int]:
    frame = picture.frame
    if frame is None:
        raise JpegProblem("corrupt jpeg (scan before the frame header)")
    count = body[0] if body else 0
    if not 1 <= count <= 4 or len(body) != 4 + 2 * count:
        raise JpegProblem("corrupt jpeg (bad scan header)")
    ids = [body[1 + 2 * k] for k in range(count)]
    if any(body[2 + 2 * k] >> 4 > 3 or body[2 + 2 * k] & 0x0F > 3 for k in range(count)):
        raise JpegProblem("corrupt jpeg (bad Huffman table number in scan header)")
    for ident in ids:
        if ident not in frame.components:
            raise JpegProblem("corrupt jpeg (scan names a component the frame lacks)")
        if frame.components[ident][2] not in picture.quant:
            raise JpegProblem("corrupt jpeg (no quantization table for a component)")
    start, stop, approx = body[-3:]
    high, low = approx >> 4, approx & 0x0F
    if frame.progressive and not _legal_progression(start, stop, high, low, count):
        raise JpegProblem("corrupt jpeg (bad progressive scan parameters)")
    picture.scanned.update(ids)
    return ids


def _legal_progression(start: int, stop: int, high: int, low: int, count: int) -> bool:
    """libjpeg's rule (jdphuff.c): DC scans are band 0 only, AC scans one component, one bit at a time."""
    band_ok = stop == 0 if start == 0 else (start <= stop <= 63 and count == 1)
    return band_ok and (high == 0 or low == high - 1) and low <= 13


def _check_complete(picture: _Picture) -> None:
    if picture.frame is None or not picture.scanned:
        raise JpegProblem("corrupt jpeg (no image data)")
    if picture.scanned != set(picture.frame.components):
        raise JpegProblem("corrupt jpeg (a colour component has no image data)")


# --- what follows the first picture -------------------------------------------------------------


def _check_appended(win: _Window, picture: _Picture) -> tuple[int, list[_Picture]]:
    """Pictures after the first must be complete; where MPF puts one, there must be no zeros.
    Returns how many complete ones follow, and those of them the MPF index lists.

    Only completeness is judged there: they are not what Miro shows, so any other oddity in
    them is let pass, and so is an MPF index pointing past the end of the file (editors that
    drop the extra pictures often keep the index).
    """
    indexed = set(_mpf_starts(picture.mpf))
    found: list[_Picture] = []
    listed: list[_Picture] = []
    for pos in sorted(p for p in indexed | {picture.end} if picture.end <= p < win.size)[:_MAX_APPENDED]:
        buf, i = win.at(pos, _ZERO_PROBE)
        head = buf[i : i + _ZERO_PROBE]
        if head[:3] == b"\xff\xd8\xff":
            try:
                appended = _walk(win, pos)
            except Truncated:
                raise
            except JpegProblem:
                continue
            found.append(appended)
            if pos in indexed:
                listed.append(appended)
        elif pos in indexed and not any(head):
            raise Truncated("truncated jpeg (zeros where its index puts a further picture: the file was never finished)")
    return len(found), listed


def _mpf_starts(mpf: tuple[int, bytes] | None) -> list[int]:
    """File offsets of the pictures an MPF index (CIPA DC-007) lists after the first; [] if unreadable."""
    if mpf is None:
        return []
    base, tiff = mpf
    order = {b"II*\x00": "<", b"MM\x00*": ">"}.get(tiff[:4])
    if order is None or len(tiff) < 10:
        return []
    try:
        ifd = struct.unpack_from(order + "I", tiff, 4)[0]
        for k in range(struct.unpack_from(order + "H", tiff, ifd)[0]):
            tag, _, count, offset = struct.unpack_from(order + "HHII", tiff, ifd + 2 + 12 * k)
            if tag == 0xB002:  # MP Entry: 16 bytes a picture, the first one is this one
                entries = [struct.unpack_from(order + "IIIHH", tiff, offset + 16 * n) for n in range(count // 16)]
                return [base + data_offset for _, size, data_offset, _, _ in entries[1:] if data_offset and size]
    except struct.error:
        return []
    return []


def _ceil(a: int, b: int) -> int:
    return -(-a // b)
