"""Measure 3 (and the watcher's half of 4): restarting over a folder that is already on the board.

Uploading 10,000 pictures through the sandbox to get there would take ten minutes of Miro's budget
and measure nothing new, so the state is written directly, exactly as a worker leaves it after
``Ledger.record`` (``shared.ledger``'s dataclasses, ``shared.keys``' keys): for each file its path
entry (size, mtime_ns, sha256 of its bytes), its content entry (an item id, slot, route ``file``),
its grid slot, and the next free slot. Redis is then restarted (the ledger comes back from its
AOF, as after a reboot), the watcher and two workers (``miro-sync up``'s default) are started
together, and the clock stops at the watcher's ``watch.scan`` line: it has compared every file with
the ledger and knows what to do. The bench then checks that nothing was queued or uploaded.

The pictures are small distinct PNGs, 1,000 per sub-folder: a scan stats files and never reads
them, so their size does not matter here.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from rq import Queue

from shared import keys
from shared.ledger import SCHEMA, Delivery, ItemEntry, Route

from .harness import BOARD, Bench, BenchError
from .images import tiny_png, variant, write
from .profiles import Profile
from .report import Findings, Row, Target

PER_FOLDER = 1000
KNOWN_TARGET = Target("<=", 2.0)
WATCHER_RSS_TARGET = Target("<=", 80)
FIRST_ITEM_ID = 3458764600000000000


def make_synced_folder(bench: Bench, folder: Path, count: int) -> None:
    """``count`` pictures in ``folder`` and a ledger that says each is on the board."""
    base = tiny_png()
    pipe = bench.redis.pipeline(transaction=False)
    now = time.time()
    for i in range(count):
        sub = folder / f"shoot-{i // PER_FOLDER:03d}"
        if i % PER_FOLDER == 0:
            sub.mkdir()
        data = variant(base, i)
        path = sub / f"img-{i:06d}.png"
        write(path, data)
        st = os.stat(path)
        relpath = path.relative_to(folder).as_posix()
        sha = hashlib.sha256(data).hexdigest()
        entry = ItemEntry(item_id=str(FIRST_ITEM_ID + i), sha256=sha, size=st.st_size, mtime_ns=st.st_mtime_ns, slot=i,
                          route=Route.FILE.value, delivery=Delivery.FILE.value, at=now)
        pipe.hset(keys.ledger_paths(BOARD), relpath, entry.to_json())
        pipe.hset(keys.ledger_content(BOARD), sha, relpath)
        pipe.hset(keys.slots(BOARD), relpath, i)
        if i % 1000 == 999:
            pipe.execute()
    pipe.set(keys.next_slot(BOARD), count)
    pipe.set(keys.ledger_schema(BOARD), SCHEMA)
    pipe.execute()


@dataclass(frozen=True)
class Restart:
    files: int
    known_after: float  # seconds from starting the services to the watcher's scan line
    scan_seconds: float  # the scan itself, as the watcher logged it
    redis_load: float  # seconds for Redis to come back with the ledger
    queued: int
    uploads: int
    watcher_rss_mb: float
    baseline_ready: float  # the baseline's start-up: it has no scan, so this is all it does
    baseline_rss_mb: float


def restart(bench: Bench, count: int) -> Restart:
    folder = bench.fresh(f"restart-{count}")
    make_synced_folder(bench, folder, count)
    bench.redis_server.stop()
    redis_load = bench.redis_server.start()
    counts = {"paths": bench.redis.hlen(keys.ledger_paths(BOARD))}
    if counts["paths"] != count:
        raise BenchError(f"the ledger came back from the AOF with {counts['paths']} of {count} paths")

    t0 = time.time()
    watcher = bench.start_watcher(folder, wait=False)
    workers = bench.start_workers(folder, 2, wait=False)
    scan = watcher.wait_event("watch.scan", 120)
    for worker in workers:
        worker.wait_event("worker.started", 60)
    time.sleep(max(1.0, bench.pause))  # anything queued would be picked up and uploaded by now
    queue = Queue("miro-sync", connection=bench.redis)
    result_queued = scan["queued"] + len(queue)
    uploads = bench.sandbox.stats()["creates"]
    watcher_rss = watcher.peak_rss_mb()
    if scan["files"] != count or scan["synced"] != count:
        raise BenchError(f"restart over {count}: the watcher saw {scan['files']} files, {scan['synced']} synced")
    bench.stop_services()

    t1 = time.time()
    baseline = bench.start_baseline(folder)
    ready = baseline.events("baseline.ready")[0]["ts"] - t1
    baseline_rss = baseline.peak_rss_mb()
    bench.stop_services()
    return Restart(count, scan["ts"] - t0, scan["seconds"], redis_load, result_queued, uploads, watcher_rss, ready, baseline_rss)


def run(bench: Bench, profile: Profile) -> Findings:
    rows, notes = [], []
    for count in profile.restart_sizes:
        r = restart(bench, count)
        setting = f"{count:,} synced files, watcher + 2 workers"
        main = count == 10_000
        rows.append(Row("3. restart: knows nothing to do", setting, r.known_after, "s", r.baseline_ready, KNOWN_TARGET if main else None,
                        baseline_note="start-up only: it never scans"))
        rows.append(Row("3. restart: uploads", setting, r.uploads + r.queued, "", None, Target("<=", 0),
                        baseline_note="misses what arrived while down"))
        rows.append(Row("4. watcher peak RSS", f"restart over {count:,} files", r.watcher_rss_mb, "MB", r.baseline_rss_mb,
                        WATCHER_RSS_TARGET if count >= 100_000 else None))
        notes.append(f"restart {count:,}: the scan itself {r.scan_seconds:.2f} s ({r.scan_seconds / count * 1e6:.0f} µs a file); "
                     f"Redis back with the ledger in {r.redis_load:.2f} s (before the clock starts); "
                     f"the baseline has no scan and no record: it re-uploads nothing and never uploads what arrived while it was down")
    return Findings(rows, notes)
