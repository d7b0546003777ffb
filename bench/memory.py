"""Measure 4, the worker's half: peak RSS of one worker uploading pictures of about 6 MB.

Photo-like JPEGs and PNGs just under Miro's 6 MB multipart limit (so they go as they are), one
worker, the sandbox answering at once. The figure is the kernel's high-water mark (``VmHWM``) of
the worker process over its whole life, start-up included. The watcher's half (100,000 files)
is measured by the restart drill (:mod:`bench.restart`).
"""

from __future__ import annotations

import time

from shared.settings import MIRO_MAX_UPLOAD_BYTES

from .harness import Bench
from .images import photo_near, variant, write
from .profiles import Profile
from .report import Findings, Row, Target

WORKER_RSS_TARGET = Target("<=", 100)


def run(bench: Bench, profile: Profile) -> Findings:
    count = profile.memory_images
    pictures = [(photo_near(6_000_000, "JPEG", limit=MIRO_MAX_UPLOAD_BYTES), ".jpg"),
                (photo_near(5_800_000, "PNG", limit=MIRO_MAX_UPLOAD_BYTES), ".png")]
    sizes = " + ".join(f"{len(p) / 1e6:.1f} MB {s[1:].upper()}" for p, s in pictures)
    setting = f"{count} × 6 MB ({sizes}), 1 worker"
    peaks = {}
    for name in ("ours", "baseline"):
        folder = bench.fresh(f"memory-{name}")
        if name == "ours":
            procs = [bench.start_watcher(folder), *bench.start_workers(folder, 1)]
            worker = procs[1]
        else:
            procs = [bench.start_baseline(folder)]
            worker = procs[0]
        time.sleep(bench.pause)
        idle = worker.peak_rss_mb()
        for i in range(count):
            data, suffix = pictures[i % len(pictures)]
            write(folder / f"big-{i:03d}{suffix}", variant(data, i))
        bench.sandbox.wait_creates(count, 60 + count * 5, watch=procs)
        time.sleep(0.5)
        peaks[name] = (idle, worker.peak_rss_mb())
        bench.stop_services()
    row = Row("4. worker peak RSS", setting, peaks["ours"][1], "MB", peaks["baseline"][1], WORKER_RSS_TARGET)
    note = (f"memory: worker peak RSS {peaks['ours'][0]:.0f} MB before the first upload, {peaks['ours'][1]:.0f} MB after; "
            f"baseline {peaks['baseline'][0]:.0f} → {peaks['baseline'][1]:.0f} MB")
    return Findings([row], [note])
