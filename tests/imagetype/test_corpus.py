"""Every common kind of picture reaches Miro as a photo viewer shows it: upright, right colours,
transparency and animation kept; bad files and decompression bombs refused with a reason."""

from __future__ import annotations

import io
import resource
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from shared.image.convert import convert
from shared.imagetype import BadImage, Upload, inspect, prepare_upload
from tests.imagetype.corpus import BIG_HEIGHT, BIG_WIDTH, FAR, HEIGHT, HOLE, MARK, WIDTH, Picture, small_corpus

MB = 1024 * 1024
PICTURES = list(small_corpus())
SHOWN_TYPES = {"image/jpeg", "image/png", "image/gif"}


def shown(content: bytes) -> tuple[Image.Image, int]:
    """The first frame as a viewer shows it (EXIF orientation applied), at the scene's size, and the frame count."""
    im = Image.open(io.BytesIO(content))
    frames = getattr(im, "n_frames", 1)
    im = ImageOps.exif_transpose(im).convert("RGBA")
    return im.resize((WIDTH, HEIGHT)) if im.size != (WIDTH, HEIGHT) else im, frames


def reddish(px: tuple[int, ...]) -> bool:
    return px[0] > px[1] + 80 and px[0] > px[2] + 80


def bluish(px: tuple[int, ...]) -> bool:
    return px[2] > px[0] + 50 and px[2] > px[1] + 40


def assert_as_a_viewer_shows(picture: Picture, upload: Upload) -> None:
    assert upload.content_type in SHOWN_TYPES, upload
    im, frames = shown(upload.content)
    assert ImageOps.exif_transpose(Image.open(io.BytesIO(upload.content))).size == (upload.width, upload.height)
    assert reddish(im.getpixel(MARK)), (picture.name, im.getpixel(MARK), upload.converted)
    assert bluish(im.getpixel(FAR)), (picture.name, im.getpixel(FAR), upload.converted)
    hole = im.getpixel(HOLE)
    assert (hole[3] == 0) if picture.alpha else (hole[3] == 255 and bluish(hole)), (picture.name, hole)
    assert frames == picture.frames, (picture.name, upload.converted)
    if picture.note:
        assert picture.note in upload.converted


@pytest.mark.parametrize("picture", PICTURES, ids=lambda p: p.name)
def test_each_kind_reaches_miro_as_a_viewer_shows_it(corpus, picture):
    path = corpus[picture]
    info = inspect(path)
    assert info.kind == picture.kind and info.frames == (2 if picture.note else picture.frames)
    assert (info.width, info.height) == (WIDTH, HEIGHT)  # as displayed, whatever the orientation
    upload = prepare_upload(path, info, 6 * MB)
    assert_as_a_viewer_shows(picture, upload)
    if "orientation" in picture.name and "orientation-1" not in picture.name:
        # turned by jpegtran (the corpus' sides are whole MCUs), stored upright: orientation 1
        assert upload.converted == "turned upright (lossless)"
        assert Image.open(io.BytesIO(upload.content)).getexif().get(0x0112) == 1
    elif picture.kind in ("jpeg", "png", "gif"):
        assert upload.converted is None  # its own bytes


@pytest.mark.parametrize("picture", [p for p in PICTURES if p.kind in ("jpeg", "png", "gif")], ids=lambda p: p.name)
def test_each_kind_converted_still_shows_as_a_viewer_shows_it(corpus, picture):
    """What a file too big to go as it is gets: converted, and still upright, coloured and animated."""
    path = corpus[picture]
    upload = convert(path, inspect(path), 6 * MB)
    assert upload.converted is not None
    assert_as_a_viewer_shows(picture, upload)
    if "orientation-1" not in picture.name and "orientation" in picture.name:
        assert "turned upright" in upload.converted and not Image.open(io.BytesIO(upload.content)).getexif()


def test_50_megapixel_photo_is_downscaled_to_fit(big_jpeg):
    info = inspect(big_jpeg)
    assert (info.width, info.height) == (BIG_WIDTH, BIG_HEIGHT) and info.size > 6 * MB
    upload = prepare_upload(big_jpeg, info, 6 * MB)
    assert len(upload.content) <= 6 * MB and upload.content_type == "image/jpeg"
    im = Image.open(io.BytesIO(upload.content))
    assert im.size == (upload.width, upload.height) and upload.width * upload.height >= 12_000_000
    assert reddish(im.getpixel((50, 50))) and bluish(im.getpixel((im.width - 50, 50)))


# --- bad input ------------------------------------------------------------------------------------


def refusal(path: Path) -> str:
    with pytest.raises(BadImage) as caught:
        prepare_upload(path, inspect(path), 6 * MB)
    return str(caught.value)


@pytest.mark.parametrize("picture", [p for p in PICTURES if "orientation" not in p.name], ids=lambda p: p.name)
def test_truncated_file_of_each_kind_is_refused_with_the_reason(corpus, picture, tmp_path):
    data = corpus[picture].read_bytes()
    cut = tmp_path / picture.name
    cut.write_bytes(data[: len(data) * 2 // 5])
    reason = refusal(cut)
    assert picture.kind in reason and ("truncated" in reason or "corrupt" in reason), reason


@pytest.mark.parametrize("name", ["baseline.jpg", "rgb8.png", "lossy.webp", "photo.avif", "phone.heic", "animated.gif"])
def test_corrupt_file_is_refused_with_the_reason(corpus, name, tmp_path):
    [picture] = [p for p in PICTURES if p.name == name]
    data = bytearray(corpus[picture].read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = b"\xff\xa5" * 32  # garbage, as a bad sector or a broken copy leaves
    bad = tmp_path / name
    bad.write_bytes(bytes(data))
    reason = refusal(bad)
    assert picture.kind in reason and ("truncated" in reason or "corrupt" in reason), reason


def _png_chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def _bombs(folder: Path) -> dict[str, Path]:
    """Headers claiming 100,000 x 100,000 (or the most the format can say), a few hundred bytes each."""
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(bytes(1000))) + _png_chunk(b"IEND", b"")
    jpeg = bytearray(_encoded("JPEG"))
    sof = jpeg.index(b"\xff\xc0")
    jpeg[sof + 5 : sof + 9] = struct.pack(">HH", 65535, 65535)
    gif = bytearray(_encoded("GIF"))
    gif[6:10] = struct.pack("<HH", 65535, 65535)
    gif[gif.index(b"\x2c") + 5 : gif.index(b"\x2c") + 9] = struct.pack("<HH", 65535, 65535)
    bmp = bytearray(_encoded("BMP"))
    bmp[18:26] = struct.pack("<ii", 100_000, 100_000)
    tiff = bytearray(_encoded("TIFF"))
    tiff = _tiff_claiming(bytes(tiff), 100_000, 100_000)
    webp = b"RIFF" + struct.pack("<I", 4 + 8 + 6) + b"WEBPVP8L" + struct.pack("<I", 5) + b"\x2f" + struct.pack("<I", 16382 | (16382 << 14)) + b"\x00"
    files = {"png": png, "jpeg": bytes(jpeg), "gif": bytes(gif), "bmp": bytes(bmp), "tiff": tiff, "webp": webp}
    out = {}
    for kind, data in files.items():
        out[kind] = folder / f"bomb.{kind}"
        out[kind].write_bytes(data)
    return out


def _encoded(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buf, fmt)
    return buf.getvalue()


def _tiff_claiming(data: bytes, width: int, height: int) -> bytes:
    """Pillow writes a little-endian TIFF: set ImageWidth (256) and ImageLength (257) in its first IFD."""
    out = bytearray(data)
    ifd = struct.unpack_from("<I", out, 4)[0]
    for i in range(struct.unpack_from("<H", out, ifd)[0]):
        at = ifd + 2 + 12 * i
        tag, typ = struct.unpack_from("<HH", out, at)
        if tag in (256, 257):
            struct.pack_into("<HHII", out, at, tag, 4, 1, width if tag == 256 else height)
    return bytes(out)


BOMB_CHECK = """
import resource, sys
from shared import imagetype
imagetype.preload()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for path in sys.argv[1:]:
    try:
        imagetype.prepare_upload(path, imagetype.inspect(path), 6 * 1024 * 1024)
        print(path, "ACCEPTED")
    except imagetype.BadImage as exc:
        print(path, exc)
print("grown", (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def test_decompression_bombs_are_refused_before_any_large_allocation(tmp_path):
    bombs = _bombs(tmp_path)
    done = subprocess.run([sys.executable, "-c", BOMB_CHECK, *map(str, bombs.values())], capture_output=True, text=True, timeout=60)
    lines = done.stdout.splitlines()
    assert len(lines) == len(bombs) + 1, done.stdout + done.stderr
    for line in lines[:-1]:
        assert "too many pixels" in line, line
    assert int(lines[-1].split()[1]) < 20, lines[-1]  # MB grown: nothing the size of the picture


def test_tiny_png_inflating_past_its_header_is_refused_unbuilt(tmp_path):
    """256 MB of zeros compress to 250 kB; the header says 1000 x 1000 grey (1 MB)."""
    pack = zlib.compressobj(9)
    idat = b"".join(pack.compress(bytes(1 << 20)) for _ in range(256)) + pack.flush()
    ihdr = struct.pack(">IIBBBBB", 1000, 1000, 8, 0, 0, 0, 0)
    path = tmp_path / "inflates.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b""))
    assert path.stat().st_size < 400_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(BadImage, match="more image data than its size"):
        inspect(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 20 * 1024


def _png_with_image_data(folder: Path, *idats: bytes) -> Path:
    """An 8 x 8 grey PNG whose image data chunks are ``idats``."""
    path = folder / "grey.png"
    ihdr = struct.pack(">IIBBBBB", 8, 8, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + b"".join(_png_chunk(b"IDAT", d) for d in idats) + _png_chunk(b"IEND", b""))
    return path


GREY = zlib.compress(bytes(9 * 8))  # 8 rows: filter byte + 8 samples


def test_png_bytes_after_its_image_data_in_the_last_chunk_are_ignored(tmp_path):
    """As the PNG specification asks of decoders: encoders that write out a whole buffer leave them."""
    path = _png_with_image_data(tmp_path, GREY[:10], GREY[10:] + bytes(4000), b"")
    assert (inspect(path).width, inspect(path).height) == (8, 8)


def test_png_image_data_chunk_after_the_end_of_its_image_data_is_refused(tmp_path):
    """Each such chunk once had zlib copy all the earlier ones (7.5 MB of them took 4.7 s); viewers skip them unread."""
    path = _png_with_image_data(tmp_path, GREY, b"", *[bytes(176)] * 3)
    with pytest.raises(BadImage, match=r"corrupt png \(image data after the end of its stream\)"):
        inspect(path)


@pytest.mark.parametrize("fmt", ["WEBP", "AVIF", "TIFF", "HEIC", "PNG-too-big"])
def test_converted_copy_of_any_kind_carries_no_gps(tmp_path, fmt):
    import pillow_heif

    from tests.imagetype.pictures import noisy
    from tests.imagetype.test_gps import WHEN, assert_no_gps, gps_exif

    exif = gps_exif(orientation=1).tobytes()
    path = tmp_path / f"placed.{fmt.split('-')[0].lower()}"
    if fmt == "HEIC":
        pillow_heif.from_pillow(noisy(64, 48)).save(path, quality=80, exif=exif)
    else:
        noisy(64, 48).save(path, fmt.split("-")[0], exif=exif)
    assert WHEN.encode() in path.read_bytes()  # the position is there to remove
    info = inspect(path)
    limit = info.size - 1 if fmt == "PNG-too-big" else 6 * MB
    upload = prepare_upload(path, info, limit)
    assert upload.converted is not None
    assert_no_gps(upload.content)
