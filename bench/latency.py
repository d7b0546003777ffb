"""Measure 1: file closed → create request received by the sandbox.

Files are written in place (create, write, close) at fixed intervals; the time right after
``close()`` is the start, the sandbox's arrival time of the matching ``POST .../images`` the end
(one clock: same machine). One worker and one create at a time, so the n-th create is the n-th
file; the board's items, in id order, must carry the files' names in the same order, or the run fails.

The same drill runs with RQ's stock forking ``Worker`` and ``rq worker-pool`` in place of ours, for
the record of why the worker is a ``SimpleWorker``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .harness import BOARD, Bench, BenchError, Child
from .images import photo_near, variant, write
from .profiles import Profile
from .report import Findings, Row, Target, markdown_table, percentile

P50_TARGET, P95_TARGET = Target("<=", 25), Target("<=", 60)


@dataclass(frozen=True)
class Latencies:
    ms: list[float]
    cpu_ms_per_image: float

    @property
    def p50(self) -> float:
        return percentile(self.ms, 50)

    @property
    def p95(self) -> float:
        return percentile(self.ms, 95)


def drill(bench: Bench, name: str, start: Callable[[Path], list[Child]], count: int, gap: float, picture: bytes) -> Latencies:
    folder = bench.fresh(f"latency-{name}", latency_ms=0)
    procs = start(folder)
    time.sleep(bench.pause)  # past start-up work (first scan, worker registration): measure the idle pipeline
    uploaders = [p for p in procs if p.name != "watcher"]
    cpu_before = sum(p.cpu_seconds() for p in uploaders)
    names, closed = [], []
    t0 = time.monotonic()
    for i in range(count):
        delay = t0 + i * gap - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        names.append(f"drop-{i:04d}.jpg")
        closed.append(write(folder / names[-1], variant(picture, i)))
    bench.sandbox.wait_creates(count, 30 + count * 0.5, watch=procs)
    time.sleep(0.3)  # the last job's ledger write, for the CPU figure
    cpu = sum(p.cpu_seconds() for p in uploaders) - cpu_before
    creates = bench.sandbox.creates()
    titles = [i["data"]["title"] for i in sorted(bench.sandbox.items(BOARD), key=lambda i: int(i["id"])) if i["type"] == "image"]
    if titles != names or len(creates) != count:
        raise BenchError(f"latency {name}: creates do not match the files one to one ({len(creates)} creates, titles {titles[:5]}...)")
    bench.stop_services()
    return Latencies([(c["at"] - t) * 1000 for c, t in zip(creates, closed)], cpu * 1000 / count)


def run(bench: Bench, profile: Profile) -> Findings:
    count, gap = profile.latency_files, profile.latency_gap
    picture = photo_near(200_000)
    ours = drill(bench, "ours", lambda f: [bench.start_watcher(f), *bench.start_workers(f, 1)], count, gap, picture)
    base = drill(bench, "baseline", lambda f: [bench.start_baseline(f)], count, gap, picture)
    setting = f"1 worker, 0 ms, {count} files {gap * 1000:.0f} ms apart"
    rows = [
        Row("1. latency p50", setting, ours.p50, "ms", base.p50, P50_TARGET),
        Row("1. latency p95", setting, ours.p95, "ms", base.p95, P95_TARGET),
        Row("1. latency max", setting, max(ours.ms), "ms", max(base.ms)),
    ]
    notes = [f"latency: worker CPU per file {ours.cpu_ms_per_image:.1f} ms (baseline process {base.cpu_ms_per_image:.1f} ms), 200 KB JPEG"]
    if not profile.worker_classes:
        return Findings(rows, notes)
    results = [("`miro-sync worker` (ours: SimpleWorker, upkeep thread)", ours)]
    for kind, label in (("fork", "stock `rq worker` (fork per job; the horse imports our modules)"),
                        ("fork-preloaded", "`rq worker -w bench.forkworker.PreloadedWorker` (fork per job, imports done before)"),
                        ("pool", "stock `rq worker-pool -n 1` (forking workers)")):
        def start(f: Path, k: str = kind) -> list[Child]:
            return [bench.start_watcher(f), *bench.start_workers(f, 1, kind=k)]

        results.append((label, drill(bench, kind, start, count, gap, picture)))
    table = markdown_table(["worker", "latency p50", "latency p95", "worker CPU per job"],
                           [[label, f"{r.p50:,.1f} ms", f"{r.p95:,.1f} ms", f"{r.cpu_ms_per_image:.1f} ms"] for label, r in results])
    return Findings(rows, notes, [(f"Worker classes, same drill as measure 1 ({setting})", table)])
