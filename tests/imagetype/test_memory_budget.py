"""No conversion takes the worker past its memory goal: a picture whose decoder would need more than
the budget is refused from its header, before a pixel is decoded; the estimate is never below what a
conversion takes. Each check runs in a child process, whose peak RSS is its own."""

from __future__ import annotations

import io
import json
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pillow_heif
import pytest
import pyvips
from PIL import Image

from shared.image import memory

REPO = Path(__file__).resolve().parents[2]
MB = 1024 * 1024

CONVERT = """
import json, sys
from shared import imagetype
imagetype.preload()

def hwm():
    return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:"))

path, max_bytes = sys.argv[1], int(sys.argv[2])
before = hwm()
info = imagetype.inspect(path)
try:
    upload = imagetype.prepare_upload(path, info, max_bytes)
    outcome = upload.converted or "as it is"
except imagetype.BadImage as exc:
    outcome = "refused: " + str(exc)
print(json.dumps({"estimate": info.convert_memory, "grown": hwm() - before, "outcome": outcome}))
"""


def converted(path: Path, max_bytes: int = 1000) -> dict:
    """Inspected and prepared in a child: the estimate, how much its peak RSS grew, what came of it.
    The default ``max_bytes`` is smaller than any file: every picture has to be converted."""
    done = subprocess.run([sys.executable, "-c", CONVERT, str(path), str(max_bytes)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def _small(fmt: str, mode: str = "RGB") -> bytearray:
    out = io.BytesIO()
    Image.new(mode, (64, 64), "blue").save(out, fmt)
    return bytearray(out.getvalue())


def _claiming(data: bytearray, box: bytes, width: int, height: int) -> bytes:
    """An AVIF's or HEIC's every image spatial extent ('ispe') set to ``width`` x ``height``."""
    for found in re.finditer(box, data):
        struct.pack_into(">II", data, found.start() + 8, width, height)
    return bytes(data)


def _interlaced_png(width: int, height: int) -> bytes:
    """RGBA, 8 bits, Adam7, every pixel zero: a few hundred kB that inflate to the whole picture."""
    def chunk(ctype: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))

    raw = sum(h * (1 + w * 4) for w, h in _adam7_passes(width, height))
    pack = zlib.compressobj(9)
    idat = b"".join(pack.compress(bytes(min(1 << 20, raw - at))) for at in range(0, raw, 1 << 20)) + pack.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 1)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _adam7_passes(width: int, height: int) -> list[tuple[int, int]]:
    passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
    return [(-(-(width - x) // dx), -(-(height - y) // dy)) for x, y, dx, dy in passes]


def _too_big(folder: Path) -> dict[str, Path]:
    """Pictures within MAX_PIXELS whose decoders would each need more than the budget."""
    files = {}
    avif = _small("AVIF")
    files["avif"] = _claiming(avif, b"ispe", 9000, 6000)
    heic = io.BytesIO()
    pillow_heif.from_pillow(Image.new("RGB", (64, 64), "blue")).save(heic, quality=50)
    files["heic"] = _claiming(bytearray(heic.getvalue()), b"ispe", 9000, 6000)
    bmp = _small("BMP")
    struct.pack_into("<ii", bmp, 18, 9000, 6000)
    files["bmp"] = bytes(bmp)  # the pixels are not there: only the header may be read
    files["webp"] = (b"RIFF" + struct.pack("<I", 4 + 8 + 6) + b"WEBPVP8L" + struct.pack("<I", 5) + b"\x2f"
                     + struct.pack("<I", 8999 | (5999 << 14)) + b"\x00")  # lossless
    gif = _small("GIF", "P")
    descriptor = gif.index(b"\x2c")  # the first image's: its size follows its position
    gif[6:10] = gif[descriptor + 5 : descriptor + 9] = struct.pack("<HH", 9000, 6000)
    files["gif"] = bytes(gif)
    files["png"] = _interlaced_png(8000, 6000)
    out = {kind: folder / f"big.{kind}" for kind in files}
    for kind, data in files.items():
        out[kind].write_bytes(data)
    # 4:4:4 chroma: libjpeg would keep 6 bytes of coefficients a pixel
    pyvips.Image.black(6000, 5000, bands=3).jpegsave(str(folder / "big.jpeg"), interlace=True, subsample_mode="off")
    out["jpeg"] = folder / "big.jpeg"
    return out


@pytest.fixture(scope="module")
def too_big(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _too_big(tmp_path_factory.mktemp("too-big"))


@pytest.mark.parametrize("kind", ["avif", "heic", "bmp", "webp", "gif", "png", "jpeg"])
def test_picture_too_big_to_convert_is_refused_from_its_header(too_big, kind):
    if kind == "gif":  # checking a GIF decodes it: refused by inspect itself
        done = subprocess.run([sys.executable, "-c", "from shared import imagetype; imagetype.inspect(__import__('sys').argv[1])",
                               str(too_big[kind])], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert "BadImage: too big to convert within memory (9000x6000 gif" in done.stderr, done.stderr[-2000:]
        return
    result = converted(too_big[kind])
    assert result["outcome"].startswith("refused: too big to convert within memory"), result
    assert f"over {memory.BUDGET // MB} MB" in result["outcome"]
    assert result["estimate"] > memory.BUDGET
    assert result["grown"] < 30 * MB, result  # nothing the size of the picture was allocated


def test_picture_too_big_to_convert_still_goes_as_it_is_when_it_fits(too_big):
    """Sent as it is, it is never decoded: the budget does not apply."""
    result = converted(too_big["jpeg"], max_bytes=6 * MB)
    assert result["estimate"] > memory.BUDGET and result["outcome"] == "as it is", result


def _gradients(width: int, height: int) -> Image.Image:
    size = (width, height)
    bands = [Image.linear_gradient("L").rotate(90).resize(size), Image.linear_gradient("L").resize(size),
             Image.radial_gradient("L").resize(size)]
    return Image.merge("RGB", bands)


@pytest.mark.parametrize("name", ["photo.avif", "phone.heic", "scan.bmp", "web.jpeg"])
def test_estimate_is_not_below_what_a_conversion_takes(tmp_path, name):
    """The pictures whose decoders hold them whole, at 8 MP (their share grows with the pixels): a
    decoder one release hungrier would let a bigger picture past the budget, and fails here first."""
    path = tmp_path / name
    picture = _gradients(3464, 2309)
    if name.endswith(".heic"):
        pillow_heif.from_pillow(picture).save(path, quality=75, tile_size=512, enc_params={"preset": "ultrafast"})
    elif name.endswith(".avif"):
        picture.save(path, quality=75, speed=10)
    elif name.endswith(".jpeg"):
        picture.save(path, quality=95, progressive=True, subsampling=0)  # 4:4:4 progressive: 6 bytes a pixel kept
    else:
        picture.save(path)
    result = converted(path)
    assert not result["outcome"].startswith("refused"), result
    assert result["grown"] <= result["estimate"], result


AT_REST_AFTER = """
import sys
from shared import imagetype
imagetype.preload()

def rss():
    return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmRSS:"))

rest = rss()
for path in sys.argv[1:]:
    imagetype.prepare_upload(path, imagetype.inspect(path), 6 * 1024 * 1024)
print(rss() - rest)
"""


def test_memory_a_conversion_frees_goes_back_to_the_system(tmp_path):
    """A worker converts for days: what one conversion freed must not stay with the process. Over these
    four it stayed 3 MB above its rest; 40 MB when glibc kept what was freed."""
    bmp, avif = tmp_path / "scan.bmp", tmp_path / "photo.avif"
    _gradients(4000, 3000).save(bmp)
    _gradients(4000, 3000).save(avif, quality=75, speed=10)
    done = subprocess.run([sys.executable, "-c", AT_REST_AFTER, str(bmp), str(avif), str(bmp), str(avif)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout) < 12 * MB, int(done.stdout) // MB
