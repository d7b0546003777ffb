"""Per picture kind: CPU, peak RSS and bytes sent by the conversion (shared.image) against Pillow alone.

``python -m bench.kinds [--out FOLDER]``: makes photo-like pictures (libvips: smooth colour fields
plus grain), then converts each in a fresh child process, both ways, and prints a Markdown table.
CPU is user + system time of all threads; peak RSS is the child's high-water mark, interpreter
and libraries included. The Pillow column is the old way: open, ``draft`` for JPEG, full decode,
turn upright, scale to at most 16.8 MP, JPEG quality 90.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

SOURCES = [  # name, width, height, how to save
    ("24 MP JPEG", 6000, 4000, ".jpg[Q=92]"),
    ("24 MP progressive JPEG", 6000, 4000, ".jpg[Q=92,interlace]"),
    ("24 MP WebP", 6000, 4000, ".webp[Q=85]"),
    ("24 MP TIFF", 6000, 4000, ".tif"),
    ("24 MP 16-bit PNG", 6000, 4000, ".png[compression=3]"),
    ("24 MP AVIF", 6000, 4000, ".avif[Q=60,effort=0]"),
    ("12 MP HEIC", 4240, 2832, ".heic"),
    ("50 MP JPEG", 8660, 5774, ".jpg[Q=92]"),
]

MAKE = """
import sys, pyvips
w, h, target = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
fields = pyvips.Image.gaussnoise(w // 40 + 2, h // 40 + 2, sigma=60, mean=128).bandjoin(
    [pyvips.Image.gaussnoise(w // 40 + 2, h // 40 + 2, sigma=60, mean=128) for _ in range(2)])
im = (fields.resize(w / (w // 40 + 2), vscale=h / (h // 40 + 2), kernel="cubic").crop(0, 0, w, h)
      + pyvips.Image.gaussnoise(w, h, sigma=6, mean=0))
im = im.cast("uchar").copy(interpretation="srgb")
if "png" in target:
    im = (im.cast("ushort") * 257).cast("ushort").copy(interpretation="rgb16")
if target.endswith(".heic"):
    import pillow_heif
    from PIL import Image
    im = im.copy_memory()
    pillow_heif.from_pillow(Image.frombytes("RGB", (w, h), im.write_to_memory())).save(target, quality=75)
else:
    im.write_to_file(target)
"""

OURS = """
import resource, sys
from shared import imagetype
imagetype.preload()
r0 = resource.getrusage(resource.RUSAGE_SELF)
info = imagetype.inspect(sys.argv[1])
upload = imagetype.prepare_upload(sys.argv[1], info, 6 * 1024 * 1024)
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime, r1.ru_maxrss // 1024, len(upload.content))
"""

PILLOW = """
import io, math, resource, sys
import pillow_heif
from PIL import Image, ImageOps
pillow_heif.register_heif_opener()
Image.MAX_IMAGE_PIXELS = None
r0 = resource.getrusage(resource.RUSAGE_SELF)
im = Image.open(sys.argv[1])
limit = 4096 * 4096
if im.format == "JPEG" and im.width * im.height > limit:
    im.draft("RGB", (im.width // 2, im.height // 2))
im.load()
im = ImageOps.exif_transpose(im)
if im.mode not in ("RGB", "L"):
    im = im.convert("RGB")
if im.width * im.height > limit:
    s = math.sqrt(limit / (im.width * im.height))
    im = im.resize((round(im.width * s), round(im.height * s)), Image.Resampling.LANCZOS)
out = io.BytesIO()
for q in (90, 82, 74, 66):
    out = io.BytesIO()
    im.save(out, "JPEG", quality=q)
    if out.tell() <= 6 * 1024 * 1024:
        break
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime, r1.ru_maxrss // 1024, out.tell())
"""


def _measure(code: str, path: Path) -> str:
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        return "failed | | "
    cpu, rss, sent = done.stdout.split()
    return f"{float(cpu):.2f} s | {rss} MB | {int(sent) / 2**20:.1f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="keep the pictures here (default: a temporary folder)")
    parser.add_argument("--scale", type=float, default=1.0, help="side scale of every picture (the smoke test's 0.05)")
    args = parser.parse_args()
    folder = args.out or Path(tempfile.mkdtemp(prefix="bench-kinds-"))
    folder.mkdir(parents=True, exist_ok=True)
    print("| picture | file | shared.image CPU | peak RSS | sent | Pillow alone CPU | peak RSS | sent |")
    print("|---|---|---|---|---|---|---|---|")
    for name, width, height, how in SOURCES:
        width, height = max(64, round(width * args.scale)), max(64, round(height * args.scale))
        path = folder / f"{name.replace(' ', '-').lower()}-{width}x{height}{how.split('[')[0]}"
        if not path.exists():
            subprocess.run([sys.executable, "-c", MAKE, str(width), str(height), str(path) + how[len(path.suffix):]], check=True)
        size = path.stat().st_size / 2**20
        print(f"| {name} | {size:.1f} MB | {_measure(OURS, path)} | {_measure(PILLOW, path)} |", flush=True)


if __name__ == "__main__":
    main()
