"""Measure 5: worker CPU per 1 MB image (validate, hash, encode, request, job overhead).

The worker's CPU time (user + system, all threads) is read before and after a batch of 1 MB
photo-like JPEGs; what it burns idle (the upkeep thread, RQ's heartbeat) over the same span is
measured first and subtracted. The parts we can call alone are then timed in this process on the
same picture, so the table says where the time goes; the rest is RQ's job handling, Redis round
trips, the HTTP exchange and logging.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import requests

from services.worker.uploader import file_sha256
from shared.imagetype import inspect, preload, prepare_upload
from shared.miro import _multipart  # the exact parts the client sends
from shared.settings import MIRO_MAX_UPLOAD_BYTES

from .harness import Bench, Child
from .images import photo_near, variant, write
from .profiles import Profile
from .report import Findings, Row, Target

CPU_TARGET = Target("<=", 15)
WARM_UP = 3


def _per_image(bench: Bench, procs: list[Child], worker: Child, folder: Path, picture: bytes, profile: Profile) -> list[float]:
    """Milliseconds of ``worker`` CPU per image, one figure per batch (idle CPU subtracted).

    A few pictures go first, unmeasured: a worker's first jobs pay one-off costs (Redis scripts
    loaded, first connections) that belong to latency (measure 1), not to the cost per image.
    """
    for i in range(WARM_UP):
        write(folder / f"warm-{i}.jpg", variant(picture, -1 - i))
    bench.sandbox.wait_creates(WARM_UP, 60, watch=procs)
    time.sleep(bench.pause)
    idle_start, t_idle = worker.cpu_seconds(), time.monotonic()
    time.sleep(profile.idle_seconds)
    idle_rate = (worker.cpu_seconds() - idle_start) / (time.monotonic() - t_idle)
    figures, done = [], WARM_UP
    for _ in range(profile.cpu_batches):
        before, t0 = worker.cpu_seconds(), time.monotonic()
        for i in range(done, done + profile.cpu_images):
            write(folder / f"cpu-{i:04d}.jpg", variant(picture, i))
        done += profile.cpu_images
        bench.sandbox.wait_creates(done, 60 + profile.cpu_images, watch=procs)
        time.sleep(0.3)  # the last ledger write and log line
        spent = worker.cpu_seconds() - before - idle_rate * (time.monotonic() - t0)
        figures.append(spent * 1000 / profile.cpu_images)
    return figures


def breakdown(picture: bytes, repeat: int = 20, suffix: str = ".jpg") -> dict[str, float]:
    """Milliseconds of CPU for the parts of an upload that run alone, in this process."""
    preload()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"one{suffix}"
        path.write_bytes(picture)
        info = inspect(path)

        def timed(fn) -> float:
            fn()
            start = time.process_time()
            for _ in range(repeat):
                fn()
            return (time.process_time() - start) * 1000 / repeat

        def encode():
            upload = prepare_upload(path, info, MIRO_MAX_UPLOAD_BYTES)
            parts = _multipart(upload.content, upload.filename, upload.content_type, {"title": path.name})
            requests.Request("POST", "http://127.0.0.1/v2/boards/b/images", files=parts).prepare()

        return {"validate (structure check)": timed(lambda: inspect(path)), "sha256": timed(lambda: file_sha256(path)),
                "read + multipart body": timed(encode)}


def run(bench: Bench, profile: Profile) -> Findings:
    picture = photo_near(1_000_000)
    figures = {}
    for name in ("ours", "baseline"):
        folder = bench.fresh(f"cpu-{name}")
        procs = [bench.start_watcher(folder), *bench.start_workers(folder, 1)] if name == "ours" else [bench.start_baseline(folder)]
        figures[name] = _per_image(bench, procs, procs[-1], folder, picture, profile)
        bench.stop_services()
    ours, base = statistics.median(figures["ours"]), statistics.median(figures["baseline"])
    parts = breakdown(picture)
    rest = ours - sum(parts.values())
    png = breakdown(photo_near(1_000_000, "PNG"), suffix=".png")["validate (structure check)"]
    batches = f"median of {profile.cpu_batches} batches of {profile.cpu_images}" if profile.cpu_batches > 1 else f"{profile.cpu_images} images"
    setting = f"{len(picture) / 1e6:.1f} MB JPEG, 1 worker, 0 ms, {batches}"
    note = ("cpu per 1 MB image, where it goes: " + ", ".join(f"{k} {v:.1f} ms" for k, v in parts.items())
            + f", the rest (RQ job handling, Redis round trips, HTTP exchange, logs) {rest:.1f} ms"
            + f"; validating a 1 MB PNG instead (streaming inflate) {png:.1f} ms"
            + (f"; batches: {', '.join(f'{f:.1f}' for f in figures['ours'])} ms" if profile.cpu_batches > 1 else ""))
    return Findings([Row("5. worker CPU per image", setting, ours, "ms", base, CPU_TARGET)], [note])
