"""A JPEG turned upright without re-encoding: ``jpegtran -copy all -perfect`` (libjpeg-turbo-progs).

Miro's handling of EXIF orientation is undocumented, and an item's size is asked for from the
picture as displayed (:func:`shared.layout.fit_geometry`); a renderer that sizes it from the stored
pixels shows a portrait in a landscape box. So a JPEG with an orientation other than 1 leaves with
upright pixels and orientation 1. jpegtran moves the DCT blocks (no generation loss); ``-perfect``
makes it fail rather than trim a partial edge MCU, and the caller then re-encodes
(:func:`shared.image.convert.convert`, which turns the picture upright). Every other marker is
copied (``-copy all``), then EXIF's Orientation is set to 1 in place (same length, nothing moves).

jpegtran is native code fed the file: it runs as a subprocess with a timeout, like the converter
child (:mod:`shared.image.isolated`). Absent (not installed), the caller re-encodes.
"""

from __future__ import annotations

import shutil
import struct
import subprocess

from shared.image import gps

SECONDS = 30.0
"""The most jpegtran may take: a 24 MP, 17 MB JPEG (noise, q90) turned in 1.2 s, 143 MB peak RSS in
jpegtran's own process (it holds every DCT coefficient); the files it gets are at most 6 MB."""

ORIENTATION = 0x0112
_TURNS = {
    2: ["-flip", "horizontal"], 3: ["-rotate", "180"], 4: ["-flip", "vertical"], 5: ["-transpose"],
    6: ["-rotate", "90"], 7: ["-transverse"], 8: ["-rotate", "270"],
}


def upright(turned: int) -> bool:
    """Whether an EXIF orientation shows the stored pixels as they are (0: invalid, read as 1)."""
    return turned in (0, 1) or turned not in _TURNS


def turn_lossless(content: bytes, turned: int) -> bytes | None:
    """``content`` (a JPEG) with upright pixels and orientation 1, every other byte of metadata
    kept; None when that cannot be done losslessly (no jpegtran, a partial MCU, EXIF unreadable)."""
    tool = shutil.which("jpegtran")
    if tool is None or upright(turned):
        return None
    try:
        done = subprocess.run([tool, "-copy", "all", "-perfect", *_TURNS[turned]], input=content,
                              capture_output=True, timeout=SECONDS, check=False)
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0 or not done.stdout:
        return None
    return set_orientation_1(done.stdout)


def set_orientation_1(content: bytes) -> bytes | None:
    """The JPEG with EXIF Orientation set to 1 in place (unchanged when it has no EXIF or no such
    tag), or None when its EXIF cannot be read. Only the segments before the first scan are read."""
    out = bytearray(content)
    pos = 2
    while pos + 4 <= len(content) and content[pos] == 0xFF:
        marker = content[pos + 1]
        if marker == 0xDA:  # start of scan: metadata is before it
            break
        length = struct.unpack_from(">H", content, pos + 2)[0]
        body_at = pos + 4
        if marker == 0xE1 and content[body_at : body_at + 6] == b"Exif\x00\x00":
            tiff_at = body_at + 6
            if not _set_in_tiff(out, tiff_at, content[tiff_at : pos + 2 + length]):
                return None
        pos += 2 + length
    return bytes(out)


def _set_in_tiff(out: bytearray, tiff_at: int, tiff: bytes) -> bool:
    order = {b"II*\x00": "<", b"MM\x00*": ">"}.get(tiff[:4])
    if order is None or len(tiff) < 8:
        return False
    ifd = gps.read_ifd(tiff, struct.unpack_from(order + "I", tiff, 4)[0], order)
    if ifd is None:
        return False
    offset = struct.unpack_from(order + "I", tiff, 4)[0] + 2
    for index, entry in enumerate(ifd[0]):
        if entry.tag == ORIENTATION:
            value_at = tiff_at + offset + 12 * index + 8  # a SHORT sits in the first bytes of the value field
            out[value_at : value_at + 2] = struct.pack(order + "H", 1)
    return True
