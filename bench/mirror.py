"""Measure 7: keeping the board in step: edit throughput, the cost of a rename, the ledger upgrade.

* Edit throughput: every file of a synced folder gets new bytes, back to back; 8 workers, the
  sandbox answering in 300 ms, on a fresh credit window (as measure 2's creates). The clock starts at the first write and stops at the sandbox's
  answer to the last multipart PATCH. The ceiling is the create's (Level 2, 100 credits): 16.7/s.
  The baseline has no notion of an edit: it uploads every saved file again, as a new item.
* Rename: files renamed in the folder; every API call between the first rename and the last
  retitle is counted (uploads, Level-2 calls). The baseline uploads a renamed file again.
* Migration: a ledger of the first layout (content -> item) with 100,000 entries, written as that
  code wrote it, upgraded in place by ``Ledger.migrate`` in a process of its own: wall time and
  that process's peak RSS (VmHWM, interpreter and imports included).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from shared import keys

from .harness import BOARD, PYTHON, Bench, BenchError, wait_for
from .images import drop, photo_near
from .profiles import Profile
from .report import Findings, Row, Target
from .throughput import CEILING, LATENCY_MS, RATE_TARGET, burst

EDIT_WORKERS = 8
WINDOW_SECONDS = 60  # Miro's (and the sandbox's) credit window


def _answered(bench: Bench, method: str, since: float, count: int, timeout: float) -> list[dict]:
    def done():
        calls = [r for r in bench.sandbox.requests(since) if r["method"] == method and r["path"].startswith("/v2")]
        answered = [r for r in calls if r.get("done_at") and r["status"] != 429]
        return answered if len(answered) >= count else None

    return wait_for(done, timeout, f"{count} {method} answers")


def edits(bench: Bench, count: int, pictures: list[bytes], new_pictures: list[bytes]) -> tuple[float, int, float | None]:
    """(edits per second, 429 answers, sustained rate after the first quarter) for ``count`` edits."""
    folder = bench.fresh("edits")
    procs = [bench.start_watcher(folder), *bench.start_workers(folder, EDIT_WORKERS)]
    drop(folder, pictures, count, "edit-", ".jpg")
    bench.sandbox.wait_creates(count, 60 + count * 0.2, watch=procs)
    _answered(bench, "POST", 0, count, 30)
    time.sleep(bench.pause + 1.5)  # the last ledger writes; the watcher's recent-edit memory settles
    if count > 50:
        # Populating spent most of Miro's one-minute window: edits measured right after would be paced
        # by that leftover, not by the budget. Start them, as measure 2 starts its creates, on a fresh window.
        time.sleep(WINDOW_SECONDS + 1)
    bench.sandbox.set_faults(latency_ms=LATENCY_MS)
    before_429 = bench.sandbox.stats()["status_counts"].get("429", 0)
    t0 = time.time()
    drop(folder, new_pictures, count, "edit-", ".jpg")
    patches = _answered(bench, "PATCH", t0, count, 60 + count * 0.6)
    rejected = bench.sandbox.stats()["status_counts"].get("429", 0) - before_429
    creates_after = [r for r in bench.sandbox.requests(t0) if r["method"] == "POST"]
    if creates_after:
        raise BenchError(f"edits made {len(creates_after)} new items instead of updating")
    done = sorted(r["done_at"] for r in patches)
    quarter = len(done) // 4
    sustained = (len(done) - 1 - quarter) / (done[-1] - done[quarter]) if len(done) >= 8 else None
    bench.stop_services()
    return count / (done[-1] - t0), rejected, sustained


def baseline_edits(bench: Bench, count: int, pictures: list[bytes], new_pictures: list[bytes]) -> float:
    folder = bench.fresh("edits-baseline")
    bench.start_baseline(folder)
    drop(folder, pictures, count, "edit-", ".jpg")
    bench.sandbox.wait_creates(count, 60 + count * 2)
    bench.sandbox.set_faults(latency_ms=LATENCY_MS)
    t0 = time.time()
    drop(folder, new_pictures, count, "edit-", ".jpg")
    bench.sandbox.wait_creates(2 * count, 60 + count * 2)
    done = max(r.get("done_at") or 0 for r in bench.sandbox.creates())
    bench.stop_services()
    return count / (done - t0)


def renames(bench: Bench, count: int, pictures: list[bytes], baseline: bool) -> tuple[float, float]:
    """(uploads per rename, Level-2 calls per rename)."""
    folder = bench.fresh("renames-baseline" if baseline else "renames")
    if baseline:
        bench.start_baseline(folder)
    else:
        bench.start_watcher(folder)
        bench.start_workers(folder, 2)
    names = [name for name, _ in drop(folder, pictures, count, "rename-", ".jpg")]
    bench.sandbox.wait_creates(count, 60 + count * 2)
    time.sleep(bench.pause + 1.0)
    t0 = time.time()
    for name in names:
        (folder / name).rename(folder / f"renamed-{name}")
    if baseline:
        bench.sandbox.wait_creates(2 * count, 60 + count * 2)
    else:
        wait_for(lambda: sum(1 for i in bench.sandbox.items(BOARD) if i["data"]["title"].startswith("renamed-")) == count,
                 60, "every item retitled")
    time.sleep(0.5)
    calls = [r for r in bench.sandbox.requests(t0) if r["path"].startswith("/v2")]
    uploads = sum(1 for r in calls if r["method"] == "POST")
    level2 = sum(1 for r in calls if r["method"] in ("POST", "PATCH") or (r["method"] == "GET" and r["path"].endswith("/items")))
    bench.stop_services()
    return uploads / count, level2 / count


def write_first_layout(bench: Bench, count: int) -> None:
    """The ledger as the content-keyed code left it: a path entry, a content entry, a slot per file."""
    pipe = bench.redis.pipeline(transaction=False)
    now = time.time()
    for i in range(count):
        sha = f"{i:064x}"
        relpath = f"shoot-{i // 1000:03d}/img-{i:06d}.png"
        pipe.hset(keys.ledger_paths(BOARD), relpath, json.dumps({"size": 1000 + i, "mtime_ns": 1764624000123456789 + i, "sha256": sha}))
        pipe.hset(keys.ledger_content(BOARD), sha, json.dumps({"item_id": str(3458764600000000001 + i), "route": "file",
                                                               "delivery": "file", "slot": i, "path": relpath, "at": now}))
        pipe.hset(keys.slots(BOARD), sha, i)
        if i % 1000 == 999:
            pipe.execute()
    pipe.set(keys.next_slot(BOARD), count)
    pipe.execute()


def migration(bench: Bench, count: int) -> tuple[float, float]:
    """(seconds, peak RSS MB) of upgrading a ``count``-entry ledger."""
    bench.fresh("migration")
    write_first_layout(bench, count)
    child = bench.spawn("migrate", [PYTHON, "-m", "bench.mirror", "--migrate", bench.redis_server.url, BOARD], bench.env(Path(".")))
    found = child.wait_event("bench.migrated", 300)
    if found["entries"] != count or bench.redis.hlen(keys.ledger_paths(BOARD)) != count:
        raise BenchError(f"migration of {count}: {found['entries']} entries migrated")
    bench.stop_services()
    return found["seconds"], found["peak_rss_mb"]


def run(bench: Bench, profile: Profile) -> Findings:
    count, base_count, migrate_count = profile.mirror_edits, profile.mirror_baseline_edits, profile.mirror_migration
    pictures = [photo_near(200_000, seed=s) for s in range(4)]
    new_pictures = [photo_near(200_000, seed=s) for s in range(10, 14)]
    rate, rejected, sustained = edits(bench, count, pictures, new_pictures)
    # The same run, the same load: creates of as many files, for reference (measure 2's scenario).
    creates = burst(bench, "mirror-reference", lambda f: [bench.start_watcher(f), *bench.start_workers(f, EDIT_WORKERS)],
                    count, pictures)
    base_rate = baseline_edits(bench, base_count, pictures, new_pictures)
    uploads, level2 = renames(bench, profile.mirror_renames, pictures, baseline=False)
    base_uploads, base_level2 = renames(bench, profile.mirror_renames, pictures, baseline=True)
    seconds, rss = migration(bench, migrate_count)
    setting = f"{EDIT_WORKERS} workers, {count} × 200 KB edits, 300 ms, 100k credits/min"
    rows = [
        Row("7. edit throughput, 8 w", setting, rate, "edits/s", base_rate, RATE_TARGET,
            baseline_note="new items, not edits"),
        Row("7. edit 429 answers, 8 w", setting, rejected, "", None, Target("<=", 0)),
        Row("7. create throughput, 8 w, same run", f"{EDIT_WORKERS} workers, {count} × 200 KB new files, 300 ms", creates.rate, "img/s", None),
        Row("7. uploads per rename", f"{profile.mirror_renames} renames", uploads, "", base_uploads, Target("<=", 0)),
        Row("7. Level-2 calls per rename", f"{profile.mirror_renames} renames", level2, "", base_level2, Target("<=", 1)),
        Row(f"7. ledger upgrade, {migrate_count:,} entries", "first layout -> path model, one process", seconds, "s"),
        Row(f"7. ledger upgrade peak RSS, {migrate_count:,}", "interpreter and imports included", rss, "MB"),
    ]
    notes = [f"edits: {rate / CEILING:.0%} of the ceiling ({CEILING:.1f}/s) from the first write, including SETTLE_SECONDS "
             f"(1 s: edits wait until the file is quiet); after the first quarter "
             f"{'n/a' if sustained is None else f'{sustained:.2f}/s ({sustained / CEILING:.0%})'}; "
             f"baseline over {base_count} files, each edit a new item; creates in the same run (same load): "
             f"{creates.rate:.2f}/s ({creates.rate / CEILING:.0%})"]
    return Findings(rows, notes)


def _migrate_main(url: str, board: str) -> None:
    import redis

    from shared.migrate import migrate

    t0 = time.perf_counter()
    entries = migrate(redis.Redis.from_url(url), board)
    seconds = time.perf_counter() - t0
    with open("/proc/self/status") as fh:
        hwm = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
    print(json.dumps({"ts": time.time(), "event": "bench.migrated", "entries": entries, "seconds": round(seconds, 3),
                      "peak_rss_mb": round(hwm / 1024, 1)}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--migrate":
        _migrate_main(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit("usage: python -m bench.mirror --migrate REDIS_URL BOARD")
