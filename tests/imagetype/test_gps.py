"""A photo's GPS position never reaches Miro (shared.exifgps through prepare_upload), unless KEEP_GPS.

Pictures are made with Pillow and read back with Pillow: what it finds is what a viewer finds.
"""

from __future__ import annotations

import io
import random
import struct
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from shared.image import gps as exifgps
from shared.image import jpeg as jpegcheck
from shared.imagetype import carries_gps, inspect, prepare_upload
from shared.settings import SettingsError, load_settings
from tests.imagetype.pictures import WHEN, encoded, gps_exif, noisy

MB = 1024 * 1024
def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def pixels(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGBA").tobytes()


def read_exif(data: bytes) -> Image.Exif:
    im = Image.open(io.BytesIO(data))
    im.load()  # a PNG's eXIf may follow its image data
    return im.getexif()


def assert_no_gps(data: bytes) -> None:
    exif = read_exif(data)
    assert 0x8825 not in exif and exif.get_ifd(0x8825) == {}
    assert WHEN.encode() not in data


def tiff_of(data: bytes) -> int:
    return data.index(b"Exif\x00\x00") + 6


def gps_entry(data: bytes) -> tuple[int, str]:
    """File offset of IFD0's GPS pointer entry and the byte order."""
    base = tiff_of(data)
    order = "<" if data[base : base + 2] == b"II" else ">"
    ifd0 = base + struct.unpack_from(order + "I", data, base + 4)[0]
    for k in range(struct.unpack_from(order + "H", data, ifd0)[0]):
        at = ifd0 + 2 + 12 * k
        if struct.unpack_from(order + "H", data, at)[0] == 0x8825:
            return at, order
    raise AssertionError("no GPS pointer")


# --- JPEG EXIF ----------------------------------------------------------------------------------


@pytest.mark.parametrize("endian", [">", "<"], ids=["MM", "II"])
def test_jpeg_loses_gps_keeps_orientation_other_tags_and_pixels(tmp_path, endian):
    original = encoded(noisy(64, 48), "JPEG", quality=90, exif=gps_exif(endian).tobytes())
    assert read_exif(original).get_ifd(0x8825)  # the picture does say where it was taken
    path = write(tmp_path / "phone.jpg", original)

    upload = prepare_upload(path, inspect(path), 6 * MB)

    assert (upload.stripped, upload.converted, upload.content_type) == ("gps", None, "image/jpeg")
    assert_no_gps(upload.content)
    exif = read_exif(upload.content)
    assert exif[0x0112] == 1 and exif[0x010F] == "PhoneMaker"
    assert pixels(upload.content) == pixels(original)
    assert len(upload.content) == len(original)
    jpegcheck.check(io.BytesIO(upload.content), len(upload.content))  # still a complete JPEG
    again = inspect(write(tmp_path / "sent.jpg", upload.content))
    assert (again.width, again.height) == (64, 48)


def test_jpeg_without_gps_goes_byte_for_byte(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 1  # a JPEG stored turned goes upright instead: tests/imagetype/test_upright.py
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></x:xmpmeta>'
    path = write(tmp_path / "plain.jpg", encoded(noisy(64, 48), "JPEG", exif=exif.tobytes(), xmp=xmp))
    upload = prepare_upload(path, inspect(path), 6 * MB)
    assert upload.content == path.read_bytes()
    assert (upload.stripped, upload.converted) == (None, None)
    assert carries_gps(path, "jpeg") is False


def test_keep_gps_sends_the_file_as_it_is(tmp_path):
    path = write(tmp_path / "phone.jpg", encoded(noisy(64, 48), "JPEG", exif=gps_exif().tobytes()))
    upload = prepare_upload(path, inspect(path), 6 * MB, keep_gps=True)
    assert upload.content == path.read_bytes() and upload.stripped is None
    assert read_exif(upload.content).get_ifd(0x8825)


def test_pictures_appended_by_mpf_lose_gps_too(tmp_path):
    first, second = noisy(64, 48), noisy(32, 24)
    second.encoderinfo = {"exif": gps_exif().tobytes()}
    out = io.BytesIO()
    first.save(out, "MPO", save_all=True, append_images=[second], exif=gps_exif().tobytes())
    path = write(tmp_path / "mpf.jpg", out.getvalue())

    upload = prepare_upload(path, inspect(path), 6 * MB)

    assert upload.stripped == "gps" and WHEN.encode() not in upload.content
    with Image.open(io.BytesIO(upload.content)) as im:
        for frame in range(im.n_frames):
            im.seek(frame)
            assert im.getexif().get_ifd(0x8825) == {} and im.getexif()[0x0112] == 1
    assert jpegcheck.check(io.BytesIO(upload.content), len(upload.content)).appended == 1


# --- XMP ----------------------------------------------------------------------------------------

XMP = b"""<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
 <rdf:Description rdf:about="" xmlns:exif="http://ns.adobe.com/exif/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/"
   xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="1" exif:GPSLatitude="48,51.408N" exif:GPSLongitude='2,17.67E'>
  <exif:GPSAltitude>35/1</exif:GPSAltitude>
  <exif:GPSTimeStamp>2024-05-17T10:00:00Z</exif:GPSTimeStamp>
  <dc:title><rdf:Alt><rdf:li xml:lang="x-default">Holiday</rdf:li></rdf:Alt></dc:title>
 </rdf:Description>
</rdf:RDF></x:xmpmeta>
<?xpacket end="w"?>"""


def assert_xmp_clean(packet: bytes) -> None:
    assert b"GPS" not in packet.upper() and b"48,51" not in packet and b"35/1" not in packet
    assert b"Holiday" in packet and b'tiff:Orientation="1"' in packet
    ElementTree.fromstring(packet.split(b"?>", 1)[1].rsplit(b"<?xpacket", 1)[0])  # still well-formed XML


def test_jpeg_xmp_gps_properties_are_blanked_the_rest_kept(tmp_path):
    original = encoded(noisy(64, 48), "JPEG", xmp=XMP)
    path = write(tmp_path / "xmp.jpg", original)
    assert carries_gps(path, "jpeg")
    upload = prepare_upload(path, inspect(path), 6 * MB)
    assert upload.stripped == "gps" and len(upload.content) == len(original)
    with Image.open(io.BytesIO(upload.content)) as im:
        assert_xmp_clean(im.info["xmp"])
    assert pixels(upload.content) == pixels(original)


def test_xmp_in_a_form_the_patterns_miss_is_dropped_whole():
    odd = b"<x:xmpmeta><rdf:Description><exif:GPSLatitude>48N</exif:GPSLatitude  >\n<exif:GPSLongitude>2E</exif:Wrong></x:xmpmeta>"
    assert exifgps.strip_xmp(odd) == b""
    original = encoded(noisy(16, 16), "JPEG", xmp=odd)
    cleaned = exifgps.remove_gps(original, "jpeg")
    assert b"exif:GPS" not in cleaned and b"48N" not in cleaned and len(cleaned) == len(original)
    with Image.open(io.BytesIO(cleaned)) as im:
        assert "xmp" not in im.info  # no longer an XMP segment: readers skip it
        assert pixels(cleaned) == pixels(original)


def test_xmp_gps_elements_of_every_form_are_blanked_in_place():
    kept = b'<rdf:Description tiff:Make="Phone">'
    parts = [
        b'<exif:GPSAltitude rdf:parseType="Resource"/>',  # empty element
        b"<EXIF:gpsSpeed>3</exif:GPSSPEED >",  # names compared as the patterns always did: ignoring case
        b"<exif:GPSDest><rdf:Seq><rdf:li>1</rdf:li></rdf:Seq></exif:GPSDest>",  # nested content goes with it
        b"<exif:GPSDest>2</exif:GPSDest>",  # the same name again
    ]
    packet = kept + b"\n".join(parts) + b"</rdf:Description>"
    expected = kept + b"\n".join(b" " * len(part) for part in parts) + b"</rdf:Description>"
    assert exifgps.strip_xmp(packet) == expected


# GPS elements without their end tag (other end tags in between), or without even a ">".
NEVER_CLOSED = [b"<exif:GPSLongitude>2</x:y>", b"<exif:GPSLongitude "]


@pytest.mark.parametrize("unit", NEVER_CLOSED, ids=["no-end-tag", "no-closing-bracket"])
def test_xmp_of_gps_elements_never_closed_goes_whole_in_linear_time(unit):
    """200 kB of them took 6 s of CPU, each searched to the end of the packet for its end (1 s when
    only that search was left); a PNG's compressed XMP may inflate to 16 MB. Now a few ms."""
    packet = b"<x:xmpmeta>" + unit * 8_000
    started = time.process_time()
    assert exifgps.strip_xmp(packet) == b""
    assert time.process_time() - started < 0.2


def test_png_xmp_of_gps_elements_never_closed_is_dropped_quickly(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", (b"<x:xmpmeta>" + NEVER_CLOSED[0] * 8_000).decode(), zip=True)
    path = write(tmp_path / "xmp.png", encoded(noisy(40, 30), "PNG", pnginfo=info))
    started = time.process_time()
    assert carries_gps(path, "png")
    upload = prepare_upload(path, inspect(path), 6 * MB)
    assert time.process_time() - started < 1.0
    assert upload.stripped == "gps" and b"GPS" not in upload.content
    with Image.open(io.BytesIO(upload.content)) as im:
        assert "xmp" not in im.info


def test_extended_xmp_naming_gps_is_zeroed():
    guid = b"0" * 32
    part = b'<rdf:Description exif:GPSLatitude="48N"/>'
    body = b"http://ns.adobe.com/xmp/extension/\x00" + guid + struct.pack(">II", len(part), 0) + part
    plain = encoded(noisy(16, 16), "JPEG")
    original = plain[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + plain[2:]
    cleaned = exifgps.remove_gps(original, "jpeg")
    assert len(cleaned) == len(original) and b"48N" not in cleaned and b"GPS" not in cleaned
    assert pixels(cleaned) == pixels(plain)


@pytest.mark.parametrize("compressed", [False, True], ids=["iTXt", "iTXt-zip"])
def test_png_xmp_gps_is_blanked(tmp_path, compressed):
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", XMP.decode(), zip=compressed)
    original = encoded(noisy(40, 30, "RGBA"), "PNG", pnginfo=info)
    path = write(tmp_path / "xmp.png", original)
    upload = prepare_upload(path, inspect(path), 6 * MB)
    assert upload.stripped == "gps"
    inspect(write(tmp_path / "sent.png", upload.content))  # chunk CRCs and structure still right
    with Image.open(io.BytesIO(upload.content)) as im:
        assert_xmp_clean(im.info["xmp"] if isinstance(im.info["xmp"], bytes) else im.info["xmp"].encode())
    assert pixels(upload.content) == pixels(original)


# --- PNG EXIF -----------------------------------------------------------------------------------


def test_png_exif_chunk_loses_gps_keeps_orientation(tmp_path):
    original = encoded(noisy(40, 30, "RGBA"), "PNG", exif=gps_exif("<", orientation=6).tobytes())
    path = write(tmp_path / "shot.png", original)
    upload = prepare_upload(path, inspect(path), 6 * MB)
    assert upload.stripped == "gps" and len(upload.content) == len(original)
    assert_no_gps(upload.content)
    assert read_exif(upload.content)[0x0112] == 6
    inspect(write(tmp_path / "sent.png", upload.content))  # eXIf CRC made right
    assert pixels(upload.content) == pixels(original)


def test_png_imagemagick_raw_exif_profile_with_gps_is_dropped(tmp_path):
    raw = gps_exif().tobytes()
    info = PngImagePlugin.PngInfo()
    info.add_text("Raw profile type exif", f"\nexif\n{len(raw):8d}\n{raw.hex()}\n", zip=True)
    info.add_text("Comment", "kept")
    path = write(tmp_path / "magick.png", encoded(noisy(40, 30), "PNG", pnginfo=info))
    assert read_exif(path.read_bytes()).get_ifd(0x8825)  # Pillow reads GPS from it
    upload = prepare_upload(path, inspect(path), 6 * MB)
    assert upload.stripped == "gps"
    with Image.open(io.BytesIO(upload.content)) as im:
        im.load()
        assert "Raw profile type exif" not in im.info and im.info["Comment"] == "kept"
        assert im.getexif().get_ifd(0x8825) == {}


# --- converted kinds ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt, kind", [("WEBP", "webp"), ("TIFF", "tiff")])
def test_converted_kinds_carry_no_exif_at_all(tmp_path, fmt, kind):
    path = tmp_path / f"pic.{kind}"
    noisy(64, 48).save(path, fmt, exif=gps_exif(orientation=6).tobytes())
    assert read_exif(path.read_bytes()).get_ifd(0x8825)
    upload = prepare_upload(path, inspect(path), 6 * MB)
    assert upload.converted.startswith(f"{kind}->jpeg") and upload.stripped is None
    assert not read_exif(upload.content)
    assert WHEN.encode() not in upload.content
    assert (upload.width, upload.height) == (48, 64)  # turned upright by the Orientation it had


# --- damaged EXIF: never sent with GPS, never a crash ------------------------------------------


def _damaged(kind: str) -> bytes:
    data = bytearray(encoded(noisy(64, 48), "JPEG", exif=gps_exif().tobytes()))
    at, order = gps_entry(data)
    if kind == "gps-ifd-out-of-range":
        struct.pack_into(order + "I", data, at + 8, 0x00FFFF00)
    elif kind == "first-ifd-truncated":
        base = tiff_of(data)
        struct.pack_into(order + "H", data, base + struct.unpack_from(order + "I", data, base + 4)[0], 4000)
    return bytes(data)


@pytest.mark.parametrize("kind", ["gps-ifd-out-of-range", "first-ifd-truncated"])
@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # Pillow, reading the orientation
def test_gps_that_cannot_be_cut_out_safely_is_converted_away(tmp_path, kind):
    path = write(tmp_path / "broken.jpg", _damaged(kind))
    assert carries_gps(path, "jpeg")  # so never by URL
    with pytest.raises(exifgps.Unremovable):
        exifgps.remove_gps(path.read_bytes(), "jpeg")

    upload = prepare_upload(path, inspect(path), 6 * MB)

    assert upload.stripped == "metadata" and "GPS not removable in place" in upload.converted
    assert upload.converted.startswith("jpeg->jpeg")
    assert not read_exif(upload.content) and WHEN.encode() not in upload.content
    jpegcheck.check(io.BytesIO(upload.content), len(upload.content))


def test_gps_value_pointing_outside_the_block_is_still_cut_in_place(tmp_path):
    data = bytearray(encoded(noisy(64, 48), "JPEG", exif=gps_exif().tobytes()))
    at, order = gps_entry(data)
    base = tiff_of(data)
    gps_ifd = base + struct.unpack_from(order + "I", data, at + 8)[0]
    latitude = gps_ifd + 2 + 12  # entries are sorted: GPSLatitudeRef (1), then GPSLatitude (2)
    assert struct.unpack_from(order + "H", data, latitude)[0] == 2
    struct.pack_into(order + "I", data, latitude + 8, 0x7FFFFFF0)
    path = write(tmp_path / "odd.jpg", bytes(data))
    upload = prepare_upload(path, inspect(path), 6 * MB)
    assert upload.stripped == "gps" and upload.converted is None
    assert_no_gps(upload.content)


def test_random_damage_to_exif_never_crashes():
    """Whatever the bytes: the block back without GPS (same length), None, or Unremovable."""
    tiff = gps_exif().tobytes()[6:]
    rng = random.Random(7)
    outcomes = set()
    for _ in range(3000):
        block = bytearray(tiff[: rng.randrange(4, len(tiff) + 1)])
        for _ in range(rng.randrange(0, 4)):
            block[rng.randrange(len(block))] = rng.randrange(256)
        try:
            out = exifgps.strip_tiff(bytes(block))
        except exifgps.Unremovable:
            outcomes.add("unremovable")
            continue
        outcomes.add("none" if out is None else "stripped")
        assert out is None or len(out) == len(block)
    assert outcomes == {"unremovable", "none", "stripped"}


# --- the setting --------------------------------------------------------------------------------


def test_keep_gps_setting_defaults_off_and_is_validated(tmp_path):
    base = {"MIRO_SYNC_ENV_FILE": "/nonexistent", "WATCH_FOLDER": str(tmp_path)}
    assert load_settings(needs=(), environ=base).keep_gps is False
    assert load_settings(needs=(), environ={**base, "KEEP_GPS": "true"}).keep_gps is True
    assert load_settings(needs=(), environ={**base, "KEEP_GPS": "0"}).keep_gps is False
    with pytest.raises(SettingsError) as caught:
        load_settings(needs=(), environ={**base, "KEEP_GPS": "maybe"})
    assert caught.value.variable == "KEEP_GPS" and str(caught.value).startswith("KEEP_GPS is 'maybe'; expected true or false")
