"""JPEG validation by structure (shared/jpegcheck.py through imagetype.inspect).

Every picture here is made by Pillow (libjpeg-turbo); "valid" ones are also decoded in full by
Pillow, so the check is held to what a decoder accepts, and every damaged one must be refused.
"""

from __future__ import annotations

import io
import random
import struct
from pathlib import Path

import pytest
from PIL import Image

from shared.image import jpeg as jpegcheck
from shared.imagetype import BadImage, inspect
from tests.imagetype.pictures import encoded, noisy

VARIANTS = {
    "baseline": {},
    "progressive": {"progressive": True},
    "optimized": {"optimize": True},
    "progressive optimized": {"progressive": True, "optimize": True},
    "4:4:4 q100": {"subsampling": 0, "quality": 100},
    "4:2:2": {"subsampling": 1},
    "restart every MCU": {"restart_marker_blocks": 1},
    "restart every row": {"restart_marker_rows": 1},
    "progressive, restart every 3 MCUs": {"progressive": True, "restart_marker_blocks": 3},
}


def jpeg(width: int = 173, height: int = 97, mode: str = "RGB", **options) -> bytes:
    return encoded(noisy(width, height, mode), "JPEG", **options)


def verdict(path: Path, data: bytes) -> str:
    """"ok" or the reason inspect() gives for ``data``."""
    path.write_bytes(data)
    try:
        inspect(path)
    except BadImage as exc:
        return str(exc)
    return "ok"


def decodes(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    except Exception:
        return False
    return True


def segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, offset of the FF, offset past the segment) up to the first SOS; test files only."""
    out, pos = [], 2
    while data[pos + 1] != 0xDA:
        end = pos + 2 + struct.unpack_from(">H", data, pos + 2)[0]
        out.append((data[pos + 1], pos, end))
        pos = end
    out.append((0xDA, pos, pos + 2 + struct.unpack_from(">H", data, pos + 2)[0]))
    return out


def first_scan_data(data: bytes) -> int:
    return segments(data)[-1][2]


def restart_offsets(data: bytes) -> list[int]:
    start = first_scan_data(data)
    return [i for i in range(start, len(data) - 1) if data[i] == 0xFF and 0xD0 <= data[i + 1] <= 0xD7]


# --- what Pillow writes is accepted ----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_pillow_jpeg_is_accepted_with_its_size(tmp_path, variant, mode):
    data = jpeg(mode=mode, **VARIANTS[variant])
    assert decodes(data)
    info = inspect(_write(tmp_path / "ok.jpg", data))
    assert (info.kind, info.width, info.height, info.size) == ("jpeg", 173, 97, len(data))


@pytest.mark.parametrize("size", [(1, 1), (8, 8), (9, 17), (16, 15)])
def test_tiny_and_odd_sizes_are_accepted(tmp_path, size):
    """Restart counts depend on the MCU grid, which rounds up at the edges."""
    data = jpeg(*size, restart_marker_blocks=1, progressive=True)
    assert (inspect(_write(tmp_path / "t.jpg", data)).width, inspect(tmp_path / "t.jpg").height) == size


def test_xmp_orientation_is_ignored_as_browsers_and_the_conversion_do(tmp_path):
    """Browsers turn a JPEG by its EXIF orientation only; so does libvips when converting."""
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description tiff:Orientation="6"/></x:xmpmeta>'
    info = inspect(_write(tmp_path / "x.jpg", jpeg(300, 200, xmp=xmp)))
    assert (info.width, info.height) == (300, 200)


def test_app1_of_maximum_size_is_accepted(tmp_path):
    """An APP1 segment of length 65535 (the most a segment holds), EXIF orientation read from it."""
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010E] = "x" * 65486  # ImageDescription: "Exif\0\0" + TIFF now take 65532 bytes
    payload = exif.tobytes() + b"\x00"  # TIFF sizes are even; one spare byte fills the segment
    assert len(payload) == 65533
    plain = jpeg(300, 200)
    data = plain[:2] + b"\xff\xe1\xff\xff" + payload + plain[2:]
    assert decodes(data)
    assert [end - pos for marker, pos, end in segments(data) if marker == 0xE1] == [2 + 65535]
    info = inspect(_write(tmp_path / "big-app1.jpg", data))
    assert (info.width, info.height) == (200, 300)


def test_junk_between_segments_and_fill_bytes_are_accepted_like_libjpeg(tmp_path):
    data = jpeg()
    app0_end = segments(data)[0][2]
    data = data[:app0_end] + b"\x00\x00junk" + data[app0_end:-2] + b"\xff\xff\xff\xd9"
    assert decodes(data)
    assert verdict(tmp_path / "j.jpg", data) == "ok"


# --- truncation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["baseline", "progressive", "restart every MCU"])
def test_every_cut_is_refused(tmp_path, variant):
    exif = Image.Exif()
    exif[0x0112] = 3
    data = encoded(noisy(40, 24), "JPEG", exif=exif, comment=b"hello", **VARIANTS[variant])
    thumbnail = jpeg(8, 8)  # carried in a header segment, as EXIF does: its end is not the file's
    data = data[:2] + b"\xff\xe3" + struct.pack(">H", 2 + len(thumbnail)) + thumbnail + data[2:]
    path = tmp_path / "cut.jpg"
    assert verdict(path, data) == "ok"
    for end in range(3, len(data)):  # below 3 bytes it is not even sniffed as a JPEG
        reason = verdict(path, data[:end])
        assert reason.startswith("truncated jpeg"), (end, len(data), reason)


@pytest.mark.parametrize("variant", ["baseline", "progressive", "restart every row"])
def test_zero_filled_tail_is_refused(tmp_path, variant):
    """As a preallocating copy tool or download manager leaves a file it did not finish."""
    data = jpeg(400, 300, **VARIANTS[variant])
    path = tmp_path / "prealloc.jpg"
    for end in range(3, len(data) - 16, 997):
        reason = verdict(path, data[:end] + bytes(len(data) - end))
        assert reason == "truncated jpeg (ends in zeros: the rest of the file was never written)", (end, reason)


def test_big_cut_progressive_reads_as_truncated(tmp_path):
    data = jpeg(800, 600, progressive=True)
    assert verdict(tmp_path / "p.jpg", data[: len(data) * 3 // 4]) == "truncated jpeg (ends inside the image data)"


def test_segment_longer_than_the_file_is_truncated(tmp_path):
    head = b"\xff\xd8\xff\xe1\xff\xff" + b"Exif\x00\x00" + b"MM\x00*" * 250
    assert verdict(tmp_path / "s.jpg", head) == "truncated jpeg (ends inside a marker segment)"


# --- damage inside the scan ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(40))
def test_garbage_run_inside_the_scan_is_refused(tmp_path, seed):
    """4 KB of random bytes over the image data: random bytes hold markers a scan cannot.
    Not all: when the first one is FF D9 the picture ends there and the rest reads as bytes after
    its end (about 1 in 250 runs; 2 of seeds 0-299 here); these seeds are not among them."""
    rng = random.Random(seed)
    data = bytearray(jpeg(400, 300, progressive=seed % 2 == 1))
    start = rng.randrange(first_scan_data(bytes(data)), len(data) - 4096 - 2)
    data[start : start + 4096] = rng.randbytes(4096)
    assert verdict(tmp_path / "g.jpg", bytes(data)).startswith("corrupt jpeg")


@pytest.mark.parametrize("seed", range(10))
def test_zero_hole_is_refused_when_restart_markers_show_it(tmp_path, seed):
    """A multi-connection downloader leaves holes of zeros; restart markers inside them vanish.
    (Without restart markers such a hole is a legal scan: no structural check can see it.)"""
    rng = random.Random(seed)
    data = bytearray(jpeg(400, 300, restart_marker_rows=1))
    start = rng.randrange(first_scan_data(bytes(data)), len(data) - 4096 - 2)
    data[start : start + 4096] = bytes(4096)
    reason = verdict(tmp_path / "h.jpg", bytes(data))
    assert reason.startswith("corrupt jpeg (") and "restart markers" in reason


def test_restart_markers_out_of_order_are_refused(tmp_path):
    data = bytearray(jpeg(restart_marker_blocks=1))
    first, second = restart_offsets(bytes(data))[:2]
    data[first + 1], data[second + 1] = data[second + 1], data[first + 1]
    assert verdict(tmp_path / "r.jpg", bytes(data)) == "corrupt jpeg (restart markers out of order: data missing or damaged)"


def test_missing_restart_marker_is_refused(tmp_path):
    data = jpeg(restart_marker_blocks=1)
    offsets = restart_offsets(data)
    gone = offsets[-1]  # the last one: the order of the others stays right, only the count shows
    reason = verdict(tmp_path / "m.jpg", data[:gone] + data[gone + 2 :])
    assert reason == f"corrupt jpeg ({len(offsets) - 1} restart markers where the scan needs {len(offsets)}: data missing or damaged)"


# --- bytes after the end-of-image marker ---------------------------------------------------------------


@pytest.mark.parametrize(
    "trailer",
    [b"\x00" * 4096, b"\xff" * 512, b"SEFHsamsung-trailer\x00\x01\x02" * 10, b"\xff\xd8"],
    ids=["zero padding", "FF padding", "vendor trailer", "lone SOI"],
)
def test_bytes_after_the_end_are_accepted(tmp_path, trailer):
    assert verdict(tmp_path / "t.jpg", jpeg() + trailer) == "ok"


def test_appended_picture_must_be_complete(tmp_path):
    first, second = jpeg(), jpeg(64, 48, progressive=True)
    path = tmp_path / "two.jpg"
    assert verdict(path, first + second) == "ok"
    assert (inspect(path).width, inspect(path).height) == (173, 97)
    for end in range(3, len(second), 211):
        assert verdict(path, first + second[:end]).startswith("truncated jpeg"), end


def mpo(*pictures: Image.Image) -> bytes:
    """A multi-picture file (CIPA MPF) as phones and cameras write them: JPEG + APP2 index."""
    return encoded(pictures[0], "MPO", save_all=True, append_images=list(pictures[1:]))


def test_mpf_file_is_accepted_and_each_picture_checked(tmp_path):
    data = mpo(noisy(200, 150), noisy(120, 90))
    path = _write(tmp_path / "mpf.jpg", data)
    assert Image.open(path).n_frames == 2
    assert (inspect(path).width, inspect(path).height) == (200, 150)
    facts = jpegcheck.check(io.BytesIO(data), len(data))
    assert facts.appended == 1 and facts.end < len(data)


def test_mpf_file_with_its_second_picture_unwritten_is_refused(tmp_path):
    """Preallocated and stopped after the first picture: zeros where the index puts the second."""
    data = mpo(noisy(200, 150), noisy(120, 90))
    end = jpegcheck.check(io.BytesIO(data), len(data)).end
    path = tmp_path / "mpf.jpg"
    assert verdict(path, data[:end] + bytes(len(data) - end)).startswith("truncated jpeg (zeros where its index puts a further picture")
    half = (end + len(data)) // 2
    assert verdict(path, data[:half] + bytes(len(data) - half)) == "truncated jpeg (ends in zeros: the rest of the file was never written)"
    assert verdict(path, data[:half]).startswith("truncated jpeg")


def test_mpf_index_pointing_past_the_end_is_accepted(tmp_path):
    """Editors that drop the extra pictures often keep the index; the first picture is whole."""
    data = mpo(noisy(200, 150), noisy(120, 90))
    end = jpegcheck.check(io.BytesIO(data), len(data)).end
    assert verdict(tmp_path / "edited.jpg", data[:end]) == "ok"


# --- refused by structure, with the reason ----------------------------------------------------------------


@pytest.mark.parametrize("sof, kind", [(0xC3, "lossless"), (0xC9, "arithmetic-coded"), (0xCA, "arithmetic-coded"), (0xC5, "hierarchical")])
def test_other_jpeg_processes_are_refused_with_a_reason(tmp_path, sof, kind):
    data = bytearray(jpeg())
    [(_, pos, _)] = [s for s in segments(bytes(data)) if s[0] == 0xC0]
    data[pos + 1] = sof
    assert verdict(tmp_path / "o.jpg", bytes(data)) == f"unsupported jpeg ({kind}; save it as a baseline or progressive JPEG)"


def test_structural_damage_is_refused(tmp_path):
    data = jpeg()
    segs = segments(data)
    without_dqt = b"".join(data[pos:end] for marker, pos, end in segs if marker != 0xDB)
    without_dqt = data[:2] + without_dqt + data[segs[-1][2] :]
    assert not decodes(without_dqt)
    assert verdict(tmp_path / "q.jpg", without_dqt) == "corrupt jpeg (no quantization table for a component)"

    [(_, dht, _)] = [s for s in segs if s[0] == 0xC4][:1]
    bogus = bytearray(data)
    bogus[dht + 5 : dht + 7] = b"\x03\x03"  # three 1-bit codes cannot exist
    assert verdict(tmp_path / "h.jpg", bytes(bogus)) == "corrupt jpeg (bad Huffman table)"

    scan = first_scan_data(data) + 100
    assert verdict(tmp_path / "s.jpg", data[:scan] + b"\xff\xd8" + data[scan:]).startswith("corrupt jpeg")


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
