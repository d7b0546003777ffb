"""shared.imagetype on real files made with Pillow: sniffing, validation, upload preparation."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageCms

from bench.fuzz.bombs import icc_claiming
from bench.fuzz.isolated import Limits, Outcome, run_one
from shared import imagetype
from shared.image import png
from shared.image import sniff as sniff_module
from shared.image.convert import MAX_PROFILE
from shared.imagetype import BadImage, inspect, prepare_upload, sniff
from tests.imagetype.pictures import encoded, noisy

MB = 1024 * 1024


def save(im: Image.Image, path: Path, fmt: str, **options) -> Path:
    im.save(path, fmt, **options)
    return path


# --- sniff --------------------------------------------------------------------------------------

SMALL = Image.new("RGB", (4, 3), "red")


@pytest.mark.parametrize(
    "head, kind",
    [
        (encoded(SMALL, "PNG"), "png"),
        (encoded(SMALL, "JPEG"), "jpeg"),
        (encoded(SMALL, "GIF"), "gif"),
        (encoded(SMALL, "WEBP"), "webp"),
        (encoded(SMALL, "BMP"), "bmp"),
        (encoded(SMALL, "TIFF"), "tiff"),
        (b"MM\x00*\x00\x00\x00\x08" + bytes(24), "tiff"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "heic"),
        (b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1heic\x00\x00\x00\x00", "heic"),
        (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1miaf", "heif"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", "avif"),
        (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2", None),  # an MP4 video
        (b"<!DOCTYPE html><html><head>", None),
        (b"BM but not a bitmap header at all", None),
        (b"GIF90a", None),
        (b"\x89PNG\r\n", None),  # cut before the end of the signature
        (b"", None),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", None),
    ],
)
def test_sniff(head, kind):
    assert sniff(head[: imagetype.SNIFF_BYTES]) == kind


@pytest.mark.parametrize(
    "head, reason",
    [
        (b"<!doctype html>\n<html lang=en>", "not an image (HTML)"),
        (b"\xef\xbb\xbf  <HTML><body>", "not an image (HTML)"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'", "not an image we can send (SVG/XML)"),
        (b"%PDF-1.7\n", "not an image (PDF)"),
        (b"hello world", "not an image"),
    ],
)
def test_describe_non_image(head, reason):
    assert imagetype.describe_non_image(head) == reason


# --- inspect --------------------------------------------------------------------------------------


def test_inspect_reports_kind_size_and_dimensions(tmp_path):
    path = save(Image.new("RGB", (640, 480), "blue"), tmp_path / "a.png", "PNG")
    info = inspect(path)
    assert (info.kind, info.content_type, info.width, info.height, info.size) == ("png", "image/png", 640, 480, path.stat().st_size)


def test_inspect_judges_by_bytes_not_extension(tmp_path):
    path = save(Image.new("RGB", (50, 40), "green"), tmp_path / "really-a-jpeg.png", "JPEG")
    assert inspect(path).kind == "jpeg"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file_is_refused(tmp_path, fmt):
    data = encoded(noisy(400, 300), fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(BadImage, match="truncated"):
        inspect(path)


def test_truncated_progressive_jpeg_is_refused(tmp_path):
    data = encoded(noisy(400, 300), "JPEG", progressive=True)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadImage, match="truncated"):
        inspect(path)


def test_png_cut_exactly_before_iend_is_refused(tmp_path):
    data = encoded(noisy(64, 64), "PNG")
    path = tmp_path / "no-iend.png"
    path.write_bytes(data[:-12])  # the IEND chunk is the last 12 bytes
    with pytest.raises(BadImage, match="truncated png"):
        inspect(path)


def test_png_with_flipped_byte_is_refused(tmp_path):
    data = bytearray(encoded(noisy(64, 64), "PNG"))
    data[len(data) // 2] ^= 0xFF
    path = tmp_path / "flipped.png"
    path.write_bytes(bytes(data))
    with pytest.raises(BadImage, match="corrupt png"):
        inspect(path)


def test_interlaced_png_is_accepted(tmp_path):
    path = tmp_path / "adam7.png"
    # Pillow writes no interlaced PNGs: build one (8-bit grey, 9x7, Adam7, all filter 0).
    width, height = 9, 7
    raw = b"".join(
        b"\x00" + bytes((width - x0 + dx - 1) // dx) * 1
        for x0, y0, dx, dy in png._ADAM7
        for _ in range((height - y0 + dy - 1) // dy)
        if (width - x0 + dx - 1) // dx
    )

    def chunk(ctype: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 1)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    assert Image.open(path).size == (9, 7)  # Pillow agrees it is a valid file
    assert (inspect(path).width, inspect(path).height) == (9, 7)


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(BadImage, match=r"empty file \(0 bytes\)"):
        inspect(path)


def test_html_named_jpg_is_refused(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_text("<!DOCTYPE html><html><body>404 Not Found</body></html>")
    with pytest.raises(BadImage, match=r"not an image \(HTML\)"):
        inspect(path)


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    # A 1-bit 20000x20000 PNG of zeros: tiny on disk, 400 megapixels when decoded.
    path = save(Image.new("1", (20000, 20000)), tmp_path / "bomb.png", "PNG")
    assert path.stat().st_size < 200_000
    with pytest.raises(BadImage, match="too many pixels"):
        inspect(path)


def test_jpeg_dimensions_follow_exif_orientation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    path = save(Image.new("RGB", (300, 200), "white"), tmp_path / "phone.jpg", "JPEG", exif=exif)
    info = inspect(path)
    assert (info.width, info.height) == (200, 300)


def test_big_webp_is_converted_not_refused(tmp_path):
    path = save(Image.new("RGB", (3000, 2000), "white"), tmp_path / "six-mp.webp", "WEBP")
    upload = prepare_upload(path, inspect(path), 6 * MB)
    assert (upload.content_type, upload.width, upload.height) == ("image/jpeg", 3000, 2000)


# --- prepare_upload ---------------------------------------------------------------------------------


def test_small_png_goes_as_is(tmp_path):
    path = save(Image.new("RGBA", (64, 48), (255, 0, 0, 128)), tmp_path / "a.png", "PNG")
    upload = prepare_upload(path, inspect(path), 6 * MB)
    assert upload.content == path.read_bytes()
    assert (upload.content_type, upload.filename, upload.converted) == ("image/png", "a.png", None)


def test_oversize_jpeg_is_recompressed_under_the_limit(tmp_path):
    path = save(noisy(1600, 1200), tmp_path / "big.jpg", "JPEG", quality=100)
    limit = path.stat().st_size // 3
    upload = prepare_upload(path, inspect(path), limit)
    assert len(upload.content) <= limit
    assert upload.content_type == "image/jpeg" and upload.filename == "big.jpg"
    assert upload.converted.startswith("jpeg->jpeg")
    assert Image.open(io.BytesIO(upload.content)).size == (upload.width, upload.height)


def test_oversize_png_is_downscaled_under_the_limit(tmp_path):
    path = save(noisy(800, 600, "RGBA"), tmp_path / "big.png", "PNG")
    limit = path.stat().st_size // 4
    upload = prepare_upload(path, inspect(path), limit)
    assert len(upload.content) <= limit
    decoded = Image.open(io.BytesIO(upload.content))
    assert decoded.format == "PNG" and decoded.mode == "RGBA"  # transparency kept
    assert decoded.width < 800 and "800x600->" in upload.converted


def test_webp_is_converted_to_jpeg(tmp_path):
    path = save(noisy(300, 200), tmp_path / "pic.webp", "WEBP")
    upload = prepare_upload(path, inspect(path), 6 * MB)
    assert (upload.content_type, upload.filename, upload.width, upload.height) == ("image/jpeg", "pic.jpg", 300, 200)
    assert upload.converted.startswith("webp->jpeg")
    assert Image.open(io.BytesIO(upload.content)).format == "JPEG"


def test_animated_gif_too_big_stays_an_animated_gif(tmp_path):
    frames = [noisy(200, 200, "RGBA") for _ in range(3)]
    for frame in frames:
        frame.paste((0, 0, 0, 0), (0, 0, 50, 50))  # a transparent corner
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    upload = prepare_upload(path, inspect(path), path.stat().st_size // 2)
    assert upload.content_type == "image/gif" and upload.filename == "anim.gif"
    assert len(upload.content) <= path.stat().st_size // 2
    out = Image.open(io.BytesIO(upload.content))
    assert out.n_frames == 3 and "3 frames" in upload.converted


def test_rotated_jpeg_converted_comes_out_upright_without_exif(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x8825] = {2: (52.0, 31.0, 0.0)}  # GPS latitude: must not survive a conversion
    path = save(noisy(600, 400), tmp_path / "phone.jpg", "JPEG", quality=100, exif=exif)
    upload = prepare_upload(path, inspect(path), path.stat().st_size // 2)
    out = Image.open(io.BytesIO(upload.content))
    assert out.size == (400, 600) == (upload.width, upload.height)
    assert not out.getexif()
    assert "turned upright" in upload.converted


@pytest.mark.parametrize("profile", [None, icc_claiming(200)], ids=["no-profile", "unusable-profile"])
def test_cmyk_jpeg_converted_as_the_worker_does_it_survives(tmp_path, profile):
    """libvips turns CMYK into sRGB with its own CMYK profile when the file has none it can use, and
    left that profile on the picture unowned, freed with the pipeline: each conversion read freed
    memory, and the worker's process died of it (SIGSEGV). In a child, as preloaded as the worker."""
    path = save(Image.new("CMYK", (96, 64), (0, 255, 255, 0)), tmp_path / "print.jpg", "JPEG", **({"icc_profile": profile} if profile else {}))
    verdict = run_one(path, Limits(max_bytes=path.stat().st_size - 1))
    assert verdict.outcome is Outcome.ACCEPTED and "image/jpeg" in verdict.detail and "jpeg->jpeg" in verdict.detail, verdict.describe()


@pytest.mark.parametrize("huge", [False, True], ids=["display-profile", "16MB"])
def test_converted_copy_carries_its_icc_profile_unless_it_is_huge(tmp_path, huge):
    """A profile goes into every encoding attempt: a 16 MB one made each too big, so the picture was refused."""
    profile = icc_claiming(16 << 20) if huge else ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    assert (len(profile) > MAX_PROFILE) is huge
    path = save(noisy(64, 48), tmp_path / "wide-gamut.png", "PNG", icc_profile=profile)
    upload = prepare_upload(path, inspect(path), path.stat().st_size - 1)
    carried = Image.open(io.BytesIO(upload.content)).info.get("icc_profile")
    if huge:
        assert carried is None and upload.converted.endswith("ICC profile dropped (16.0 MB)")
    else:
        assert carried == profile and "ICC" not in upload.converted


def test_heic_is_converted(tmp_path):
    import pillow_heif

    path = tmp_path / "iphone.heic"
    pillow_heif.from_pillow(noisy(320, 240)).save(path, quality=80)
    info = inspect(path)
    assert info.kind == "heic"
    upload = prepare_upload(path, info, 6 * MB)
    assert (upload.content_type, upload.filename, upload.width, upload.height) == ("image/jpeg", "iphone.jpg", 320, 240)


def test_heic_without_its_decoder_is_refused_with_a_hint(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pillow_heif" else real(name, *a))
    sniff_module._installed.cache_clear()
    monkeypatch.setattr(sniff_module, "_installed", sniff_module._installed.__wrapped__)
    path = tmp_path / "iphone.heic"
    path.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(100))
    with pytest.raises(BadImage, match=r"HEIC cannot be read: the pillow-heif package is missing"):
        inspect(path)


MEASURE = """
import resource, sys
from bench.fuzz.bombs import icc_claiming
from bench.fuzz.isolated import Limits, Outcome, run_one
from shared import imagetype
from shared.image import png
from shared.image.convert import MAX_PROFILE
from shared.image import sniff as sniff_module
imagetype.preload()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
info = imagetype.inspect(sys.argv[1])
upload = imagetype.prepare_upload(sys.argv[1], info, 6 * 1024 * 1024)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024, upload.converted)
"""


def make_24mp(path: Path, fmt: str, progressive: bool = False) -> Path:
    """In a child process: the 96 MB it takes to draw the picture must not count in ours."""
    import subprocess
    import sys

    make = (
        "from PIL import Image; Image.linear_gradient('L').resize((6000, 4000)).convert('RGB')"
        f".save({str(path)!r}, {fmt!r}{', progressive=True' if progressive else ''})"
    )
    subprocess.run([sys.executable, "-c", make], check=True)
    return path


@pytest.mark.parametrize("fmt, progressive", [("JPEG", False), ("JPEG", True), ("PNG", False)])
def test_big_picture_is_validated_without_decoding_it_whole(tmp_path, fmt, progressive):
    """24 megapixels: a full decode would cost about 96 MB (72 MB of coefficients for a
    progressive JPEG at any scale); draft JPEG, JPEG structure and streamed PNG take a few."""
    import subprocess
    import sys

    path = make_24mp(tmp_path / f"big.{fmt.lower()}", fmt, progressive)
    done = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, check=True)
    grown_mb, converted = done.stdout.split(maxsplit=1)
    assert converted.strip() == "None"  # it fits: sent as it is
    assert int(grown_mb) < 30, done.stdout


def test_cut_big_progressive_jpeg_is_refused(tmp_path):
    path = make_24mp(tmp_path / "big.jpg", "JPEG", progressive=True)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadImage, match="truncated jpeg"):
        inspect(path)
