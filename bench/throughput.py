"""Measure 2: images per second for a burst of ~200 KB photos, the sandbox answering in 300 ms.

The sandbox keeps Miro's real budget (100,000 credits a minute, 100 per image create), so the
ceiling is 1,000 creates a minute (16.7/s). The clock starts when the first file is written (all are
written back to back) and stops when the sandbox has answered the last create. A 429 counts
against the run; any create that is not a 201 fails the bench.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .harness import Bench, BenchError, Child
from .images import drop, photo_near
from .profiles import Profile
from .report import Findings, Row, Target

LATENCY_MS = 300
CEILING = 100_000 / 100 / 60  # creates per second the budget allows
RATE_TARGET = Target(">=", round(0.95 * CEILING, 2))


@dataclass(frozen=True)
class Burst:
    images: int
    seconds: float
    rejected_429: int
    sustained: float | None  # creates/s from the first quarter's end to the last (after the limiter's initial burst)

    @property
    def rate(self) -> float:
        return self.images / self.seconds


def burst(bench: Bench, name: str, start: Callable[[Path], list[Child]], count: int, pictures: list[bytes],
          settle: Callable[[], None] | None = None) -> Burst:
    """``settle``: waited for after the last create's answer, before the services stop (not timed)."""
    folder = bench.fresh(f"throughput-{name}", latency_ms=LATENCY_MS)
    procs = start(folder)
    time.sleep(bench.pause)
    t0 = time.time()
    drop(folder, pictures, count, "burst-", ".jpg")
    bench.sandbox.wait_creates(count, 60 + count * 0.6, watch=procs)
    creates = _answered(bench, count)
    if settle is not None:
        settle()
    bench.stop_services()
    statuses = {c["status"] for c in creates}
    if statuses != {201}:
        raise BenchError(f"throughput {name}: create statuses {sorted(statuses)}, expected only 201")
    rejected = bench.sandbox.stats()["status_counts"].get("429", 0)
    done = sorted(c["done_at"] for c in creates)
    quarter = len(done) // 4
    sustained = (len(done) - 1 - quarter) / (done[-1] - done[quarter]) if len(done) >= 8 else None
    return Burst(count, done[-1] - t0, rejected, sustained)


def _answered(bench: Bench, count: int) -> list[dict]:
    """The creates, once the sandbox has answered all of them (the count rises before the answer)."""
    deadline = time.monotonic() + 10
    while True:
        creates = [c for c in bench.sandbox.creates() if c["status"] != 429]
        if len(creates) >= count and all(c.get("done_at") for c in creates):
            return creates
        if time.monotonic() > deadline:
            raise BenchError(f"the sandbox did not answer all {count} creates")
        time.sleep(0.05)


def run(bench: Bench, profile: Profile) -> Findings:
    images, baseline_images = profile.throughput, profile.baseline_images
    pictures = [photo_near(200_000, seed=s) for s in range(4)]
    base = burst(bench, "baseline", lambda f: [bench.start_baseline(f)], baseline_images, pictures)
    rows, notes = [], []
    for workers, count in sorted(images.items()):
        def start(f: Path, n: int = workers) -> list[Child]:
            return [bench.start_watcher(f), *bench.start_workers(f, n)]

        ours = burst(bench, f"{workers}w", start, count, pictures)
        target = RATE_TARGET if workers == 8 else None
        setting = f"{workers} worker{'s' if workers > 1 else ''}, {count} × 200 KB, 300 ms, 100k credits/min"
        rows.append(Row(f"2. throughput, {workers} w", setting, ours.rate, "img/s", base.rate, target))
        rows.append(Row(f"2. 429 answers, {workers} w", setting, ours.rejected_429, "", base.rejected_429,
                        Target("<=", 0) if workers == 8 else None))
        notes.append(f"throughput {workers} w: {ours.rate / base.rate:.1f}× the baseline; {ours.rate / CEILING:.0%} of the "
                     f"budget's ceiling ({CEILING:.1f}/s); after the first quarter {_rate(ours.sustained)}")
    notes.append(f"throughput baseline: {baseline_images} images in {base.seconds:.1f} s ({base.rate:.2f}/s), one upload at a time")
    return Findings(rows, notes)


def _rate(value: float | None) -> str:
    return "n/a (too few images)" if value is None else f"{value:.2f}/s ({value / CEILING:.0%} of the ceiling)"
