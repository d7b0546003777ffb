"""A converted copy shows the source's pixels, for every kind whose decoder hands its pixels to libvips
from Python memory (Pillow for AVIF and BMP, pillow-heif for HEIC).

libvips reads such pixels where they lie, so the buffer must outlive every image that reads it. A
buffer freed too early is read after the allocator has unmapped it (the worker dies of SIGSEGV) or
reused (wrong pixels reach the board). Which of the two, and whether at all, depends on the
allocator: glibc unmaps a freed buffer only above its mmap threshold, which it raises as large
buffers come and go (up to 32 MB). The conversion therefore runs in a child process whose threshold
is pinned at glibc's starting value (128 KiB), where a 1600 x 1200 picture (5.8 MB of pixels) is
always unmapped when freed; and in a child, a crash is a failed test, not a dead test run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pillow_heif
import pytest
from PIL import Image, ImageChops, ImageStat

from shared.imagetype import preload

REPO = Path(__file__).resolve().parents[2]
WIDTH, HEIGHT = 1600, 1200
MMAP_THRESHOLD = 128 * 1024

CONVERT = """
import sys
from shared import imagetype
source, target = sys.argv[1:]
imagetype.preload()
upload = imagetype.prepare_upload(source, imagetype.inspect(source), 6 * 1024 * 1024)
open(target, "wb").write(upload.content)
print(upload.converted)
"""


def gradients(mode: str) -> Image.Image:
    """Smooth in every band (lossy codecs keep it within a few levels), and different everywhere."""
    size = (WIDTH, HEIGHT)
    bands = [Image.linear_gradient("L").rotate(90).resize(size), Image.linear_gradient("L").resize(size),
             Image.radial_gradient("L").resize(size), Image.linear_gradient("L").rotate(45).resize(size)]
    return Image.merge(mode, bands[: len(mode)])


def save(im: Image.Image, path: Path) -> Path:
    if path.suffix == ".heic":
        pillow_heif.from_pillow(im).save(path, quality=90, enc_params={"preset": "ultrafast"})
    elif path.suffix == ".avif":
        im.save(path, quality=90, speed=10)
    else:
        im.save(path)
    return path


def converted_in_a_child(source: Path, target: Path) -> str:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD)}
    done = subprocess.run([sys.executable, "-c", CONVERT, str(source), str(target)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    if done.returncode < 0:
        pytest.fail(f"converting {source.name} killed the process with {signal.Signals(-done.returncode).name}")
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


@pytest.mark.parametrize("name", ["opaque.bmp", "opaque.avif", "alpha.avif", "opaque.heic", "alpha.heic"])
def test_converted_copy_shows_the_source_pixels(tmp_path, name):
    mode = "RGBA" if name.startswith("alpha") else "RGB"
    source = save(gradients(mode), tmp_path / name)
    target = tmp_path / "sent"
    what = converted_in_a_child(source, target)
    preload()  # Pillow reads HEIC through pillow-heif's plugin
    with Image.open(target) as sent:
        assert sent.size == (WIDTH, HEIGHT), what
        assert sent.mode == mode, what  # transparency kept: a PNG; else a JPEG
        with Image.open(source) as reference:  # the decoders' own reading of the file
            difference = ImageStat.Stat(ImageChops.difference(sent, reference.convert(mode))).mean
    assert max(difference) < 3, (what, difference)  # in levels of 255; freed memory reads as anything
