"""Per picture kind: CPU, peak RSS and bytes sent by the conversion (shared.image), optionally against Pillow alone.

``python -m bench.kinds [--out FOLDER] [--only TEXT] [--code CHECKOUT] [--pillow]``: makes photo-like
pictures (libvips: smooth colour fields plus grain), then converts each in a fresh child process and
prints a Markdown table. The child first imports what a worker imports (RQ, redis, requests, the
picture stack loaded by ``preload()``), so its resting RSS is a worker's at rest and its peak is what
the conversion takes a worker to (the memory goal: 300 MB). CPU is user + system time of all threads,
``inspect`` and ``prepare_upload`` together. ``--code`` measures another checkout's picture stack on the
same files (before/after a change). ``--isolated`` converts in the worker's converter child
(:mod:`shared.image.isolated`) instead: CPU of worker and child together, the child's rest and peak RSS.
``--pillow`` adds the old way, Pillow alone: open, ``draft`` for
JPEG, full decode, turn upright, scale to at most 16.8 MP, JPEG quality 90.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MP_100 = (12000, 8333)  # the most validate.MAX_PIXELS lets in, at 3:2

SOURCES = [  # name, width, height (of a frame), how to save (libvips' suffix and options; .bmp and .heic: Pillow, pillow-heif)
    # JPEGs at 4:2:0 chroma, as cameras write them (libvips' own choice at Q >= 90 would be 4:4:4)
    ("24 MP JPEG", 6000, 4000, ".jpg[Q=92,subsample_mode=on]"),
    ("50 MP JPEG", 8660, 5774, ".jpg[Q=92,subsample_mode=on]"),
    ("100 MP JPEG", *MP_100, ".jpg[Q=92,subsample_mode=on]"),
    ("24 MP progressive JPEG", 6000, 4000, ".jpg[Q=92,interlace,subsample_mode=on]"),
    ("24 MP progressive JPEG 4:4:4", 6000, 4000, ".jpg[Q=92,interlace,subsample_mode=off]"),
    ("50 MP progressive JPEG", 8660, 5774, ".jpg[Q=92,interlace,subsample_mode=on]"),
    ("50 MP progressive JPEG 4:4:4", 8660, 5774, ".jpg[Q=92,interlace,subsample_mode=off]"),
    ("100 MP progressive JPEG", *MP_100, ".jpg[Q=92,interlace,subsample_mode=on]"),
    ("24 MP WebP", 6000, 4000, ".webp[Q=85]"),
    ("24 MP lossless WebP", 6000, 4000, ".webp[lossless,effort=0]"),
    ("100 MP WebP", *MP_100, ".webp[Q=85,effort=0]"),
    ("24 MP TIFF", 6000, 4000, ".tif"),
    ("100 MP TIFF", *MP_100, ".tif[compression=deflate]"),
    ("24 MP 16-bit PNG", 6000, 4000, ".png[compression=3]"),
    ("24 MP interlaced PNG", 6000, 4000, ".png[compression=3,interlace]"),
    ("100 MP PNG", *MP_100, ".png[compression=1]"),
    ("24 MP GIF", 6000, 4000, ".gif[effort=1]"),
    ("animated GIF, 30 frames of 2 MP", 1920, 1080, ".gif[effort=1]"),
    ("animated WebP, 30 frames of 2 MP", 1920, 1080, ".webp[Q=75,effort=0]"),
    ("24 MP AVIF", 6000, 4000, ".avif[Q=60,effort=0]"),
    ("50 MP AVIF", 8660, 5774, ".avif[Q=60,effort=0]"),
    ("100 MP AVIF", *MP_100, ".avif[Q=60,effort=0]"),
    ("12 MP HEIC", 4240, 2832, ".heic"),
    ("48 MP HEIC", 8064, 6048, ".heic"),
    ("100 MP HEIC", *MP_100, ".heic"),
    ("12 MP BMP", 4240, 2832, ".bmp"),
    ("50 MP BMP", 8660, 5774, ".bmp"),
    ("100 MP BMP", *MP_100, ".bmp"),
]

MAKE = """
import sys, pyvips
w, h, target, bits, frames = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
fields = pyvips.Image.gaussnoise(w // 40 + 2, h // 40 + 2, sigma=60, mean=128).bandjoin(
    [pyvips.Image.gaussnoise(w // 40 + 2, h // 40 + 2, sigma=60, mean=128) for _ in range(2)])
im = (fields.resize(w / (w // 40 + 2), vscale=h / (h // 40 + 2), kernel="cubic").crop(0, 0, w, h)
      + pyvips.Image.gaussnoise(w, h, sigma=6, mean=0))
im = im.cast("uchar").copy(interpretation="srgb")
if frames > 1:  # each frame a little brighter than the one before
    im = pyvips.Image.arrayjoin([(im + 4 * i).cast("uchar") for i in range(frames)], across=1)
    im = im.copy(interpretation="srgb")
    im.set_type(pyvips.GValue.gint_type, "page-height", h)
if bits == 16:
    im = (im.cast("ushort") * 257).cast("ushort").copy(interpretation="rgb16")
if target.endswith((".heic", ".bmp")):
    import pillow_heif
    from PIL import Image
    Image.MAX_IMAGE_PIXELS = None
    pixels = im.write_to_memory()
    picture = Image.frombytes("RGB", (w, h), pixels)
    del pixels
    if target.endswith(".bmp"):
        picture.save(target)
    else:  # a grid of 512 x 512 tiles, as phones write them; x265's fastest preset (the decoder's memory does not depend on it)
        pillow_heif.from_pillow(picture).save(target, quality=75, tile_size=512, enc_params={"preset": "ultrafast"})
else:
    im.write_to_file(target)
"""

OURS = """
import resource, sys, time
sys.path.insert(0, sys.argv[2])
import services.worker.main, services.worker.uploader  # a worker's imports: its resting RSS
from shared import imagetype
imagetype.preload()

def mb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) // 1024

rest = mb("VmRSS")
r0 = resource.getrusage(resource.RUSAGE_SELF)
try:
    upload = imagetype.prepare_upload(sys.argv[1], imagetype.inspect(sys.argv[1]), 6 * 1024 * 1024)
    outcome = f"{len(upload.content) / 2**20:.1f} MB, {upload.width}x{upload.height}"
except imagetype.BadImage as exc:
    outcome = f"refused: {exc}"
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(f"{r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime:.2f} s | {rest} MB | {mb('VmHWM')} MB | {outcome}")
"""

ISOLATED = """
import os, resource, sys
sys.path.insert(0, sys.argv[2])
import psutil
import services.worker.main, services.worker.uploader  # a worker's imports
from shared.image import isolated
from shared.image.validate import BadImage

def mb(field, pid="self"):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) // 1024

converter = isolated.converter()
converter.call(os.getpid, kind="")  # started and ready: the worker starts it at start-up
child = psutil.Process(converter.pid)
rest = mb("VmRSS", child.pid)
r0, c0 = resource.getrusage(resource.RUSAGE_SELF), child.cpu_times()
try:
    upload = isolated.prepare(sys.argv[1], 6 * 1024 * 1024)
    outcome = f"{len(upload.content) / 2**20:.1f} MB, {upload.width}x{upload.height}"
except BadImage as exc:
    outcome = f"refused: {exc}"
r1 = resource.getrusage(resource.RUSAGE_SELF)
try:
    c1, peak = child.cpu_times(), f"{mb('VmHWM', child.pid)} MB"
    child_cpu = c1.user + c1.system - c0.user - c0.system
except (psutil.NoSuchProcess, FileNotFoundError, TypeError):  # the child was replaced after a failure
    child_cpu, peak = 0.0, "-"
caller = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
print(f"{caller + child_cpu:.2f} s | {rest} MB | {peak} | {mb('VmHWM')} MB | {outcome}")
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
print(f"{r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime:.2f} s | {r1.ru_maxrss // 1024} MB | {out.tell() / 2**20:.1f} MB")
"""


def _measure(code: str, path: Path, *args: str, cells: int) -> str:
    done = subprocess.run([sys.executable, "-c", code, str(path), *args], capture_output=True, text=True)
    if done.returncode != 0:
        reason = f"killed by signal {-done.returncode}" if done.returncode < 0 else done.stderr.strip().splitlines()[-1:]
        return " | ".join([f"failed ({reason})"] + [""] * (cells - 1))
    return done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="keep the pictures here (default: a temporary folder)")
    parser.add_argument("--scale", type=float, default=1.0, help="side scale of every picture (the smoke test's 0.05)")
    parser.add_argument("--only", help="only the pictures whose name contains this text, or one of these (e.g. AVIF or 'AVIF,HEIC')")
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout whose picture stack converts (default: this one)")
    parser.add_argument("--pillow", action="store_true", help="also convert each picture with Pillow alone")
    parser.add_argument("--isolated", action="store_true",
                        help="convert in the worker's converter child (shared.image.isolated): CPU of both, the child's rest and peak")
    args = parser.parse_args()
    folder = args.out or Path(tempfile.mkdtemp(prefix="bench-kinds-"))
    folder.mkdir(parents=True, exist_ok=True)
    head = ("| picture | file | CPU (worker + child) | child at rest | child peak RSS | worker peak RSS | sent |" if args.isolated
            else "| picture | file | CPU | worker at rest | peak RSS | sent |")
    print(head + (" Pillow alone CPU | peak RSS | sent |" if args.pillow else ""))
    print("|---" * (head.count("|") - 1 + (3 if args.pillow else 0)) + "|")
    for name, width, height, how in SOURCES:
        if args.only and not any(part.strip().lower() in name.lower() for part in args.only.split(",")):
            continue
        width, height = max(64, round(width * args.scale)), max(64, round(height * args.scale))
        path = folder / f"{name.replace(' ', '-').replace(':', '').lower()}-{width}x{height}{how.split('[')[0]}"
        if not path.exists():
            bits, frames = "16" if "16-bit" in name else "8", name.split(" frames")[0].rsplit(" ", 1)[-1] if " frames" in name else "1"
            subprocess.run([sys.executable, "-c", MAKE, str(width), str(height), str(path) + how[len(path.suffix):], bits, frames],
                           check=True)
        code, cells = (ISOLATED, 5) if args.isolated else (OURS, 4)
        row = f"| {name} | {path.stat().st_size / 2**20:.1f} MB | {_measure(code, path, str(args.code.resolve()), cells=cells)} |"
        if args.pillow:
            row += f" {_measure(PILLOW, path, cells=3)} |"
        print(row, flush=True)


if __name__ == "__main__":
    main()
