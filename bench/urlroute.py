"""Measure 6: the url route, beside the file route, in the same run.

* **6a. Throughput** with a healthy tunnel: measure 2's burst (200 KB photos, 300 ms Miro latency,
  8 workers), ``UPLOAD_MODE=url``: Miro (the sandbox) fetches each signed URL through the ngrok
  stand-in from ``miro-sync serve``. The clock stops at the last create's answer, as in measure 2;
  then the run waits until every picture is verified (the deferred checks) and fails if any is not.
* **6b. Warning page**: 12 pictures, 2 workers, 300 ms, the tunnel showing ngrok's free-plan warning
  page; the time from the first write until all 12 (smoke: 3) *show* (decode on the board), beside the same 12
  by the file route. The circuit opens at the first probe and the pictures go by file.
* **6c. Warning page after a passing probe** (Miro's fetcher told apart from ours): the pictures are
  created by URL, and repaired by the deferred checks ``VERIFY_GRACE`` later; no target, for scale.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from shared import keys

from .harness import BOARD, Bench, BenchError, Child, wait_for
from .images import drop, photo_near
from .profiles import Profile
from .report import Findings, Row, Target
from .throughput import CEILING, LATENCY_MS, RATE_TARGET, _rate, burst

WARNING_WORKERS = 2
SHOW_RATIO_TARGET = Target("<=", 1.5)


def deliveries(bench: Bench) -> Counter[str]:
    return Counter(json.loads(v)["delivery"] for v in bench.redis.hvals(keys.ledger_paths(BOARD)))


def url_stack(bench: Bench, folder: Path, workers: int, **env: str) -> list[Child]:
    settings: dict[str, Any] = {"UPLOAD_MODE": "url", **bench.url_env(), **env}
    return [bench.start_image_server(folder), bench.start_watcher(folder, **settings), *bench.start_workers(folder, workers, **settings)]


def file_stack(bench: Bench, folder: Path, workers: int) -> list[Child]:
    return [bench.start_watcher(folder), *bench.start_workers(folder, workers)]


def until_all_show(bench: Bench, name: str, start, count: int, pictures: list[bytes], tunnel: str = "normal",
                   warm_up: bool = False) -> tuple[float, Counter[str]]:
    """Seconds from the first write until ``count`` pictures decode on the board; the ledger's deliveries."""
    folder = bench.fresh(f"show-{name}", latency_ms=LATENCY_MS)
    procs = start(folder)
    if warm_up:  # the workers' probe passes (and is cached) before the tunnel turns
        drop(folder, pictures, 1, "warm-", ".jpg", start=10_000)
        wait_for(lambda: deliveries(bench).get("verified"), 60, "the warm-up picture to be verified")
    time.sleep(bench.pause)
    bench.tunnel.set_mode(tunnel)
    total = count + (1 if warm_up else 0)
    t0 = time.time()
    drop(folder, pictures, count, f"show-{name}-", ".jpg")

    def all_show() -> float | None:
        for child in procs:
            if not child.alive():
                raise BenchError(f"{child.name} exited ({child.popen.returncode}):\n{child.tail()}")
        items = [i for i in bench.sandbox.items(BOARD) if i["type"] == "image"]
        return time.time() if len(items) >= total and all(i["decodes"] for i in items) else None

    shown = wait_for(all_show, 120, f"{count} pictures to show ({name})")
    # The ledger write (and a repair's) follows Miro's answer by a moment.
    def settled() -> Counter[str] | None:
        d = deliveries(bench)
        return d if sum(d.values()) >= total and not d.get("unverified") else None

    seen = wait_for(settled, 30, f"{total} ledger entries, none unverified ({name}): {dict(deliveries(bench))}")
    bench.stop_services()
    assert shown is not None and seen is not None  # wait_for returns only a truthy value
    return shown - t0, seen


def run(bench: Bench, profile: Profile) -> Findings:
    rows, notes = [], []
    pictures = [photo_near(200_000, seed=s) for s in range(4)]
    workers = 8 if 8 in profile.throughput else max(profile.throughput)  # the smoke profile has no 8-worker burst
    count = profile.throughput[workers]

    def verified_all() -> None:
        wait_for(lambda: deliveries(bench).get("verified", 0) >= count, 60, f"{count} url pictures verified")

    setting = f"url route, {workers} worker{'s' if workers > 1 else ''}, {count} × 200 KB, 300 ms, healthy tunnel"
    by_file = burst(bench, "file-beside-url", lambda f: file_stack(bench, f, workers), count, pictures)
    by_url = burst(bench, "url", lambda f: url_stack(bench, f, workers), count, pictures, settle=verified_all)
    full = workers == 8
    rows.append(Row(f"6a. throughput, url route, {workers} w", setting, by_url.rate, "img/s", by_file.rate, RATE_TARGET if full else None,
                    baseline_note="the file route"))
    rows.append(Row(f"6a. 429 answers, url route, {workers} w", setting, by_url.rejected_429, "", by_file.rejected_429,
                    Target("<=", 0) if full else None, baseline_note="the file route"))
    notes.append(f"url route {workers} w: {by_url.rate / CEILING:.0%} of the ceiling ({CEILING:.1f}/s), every picture verified; "
                 f"the file route in the same run {by_file.rate:.2f}/s ({by_file.rate / CEILING:.0%}); after the first quarter "
                 f"url {_rate(by_url.sustained)}, file {_rate(by_file.sustained)}")

    n = profile.url_show_images
    file_s, _ = until_all_show(bench, "file", lambda f: file_stack(bench, f, WARNING_WORKERS), n, pictures)
    page_s, page = until_all_show(bench, "url-warning", lambda f: url_stack(bench, f, WARNING_WORKERS), n, pictures, tunnel="warning-page")
    setting = f"{n} pictures, {WARNING_WORKERS} workers, 300 ms, warning page"
    rows.append(Row("6b. until all show, url mode, warning page", setting, page_s, "s", file_s, baseline_note="the file route"))
    rows.append(Row("6b. url mode ÷ file route", setting, page_s / file_s, "×", None, SHOW_RATIO_TARGET))
    notes.append(f"url mode, warning page: deliveries {dict(page)} (the circuit opened at the first probe)")
    if profile.url_late_page:
        late_s, late = until_all_show(bench, "url-warning-late", lambda f: url_stack(bench, f, WARNING_WORKERS), n, pictures,
                                      tunnel="warning-page", warm_up=True)
        rows.append(Row("6c. until all show, page after a passing probe", setting + ", VERIFY_GRACE 5 s", late_s, "s", file_s,
                        baseline_note="the file route"))
        notes.append(f"url mode, page after a passing probe: deliveries {dict(late)}; the deferred checks repair the pictures "
                     f"created by URL once VERIFY_GRACE is over, and the circuit sends the rest by file")
    return Findings(rows, notes)
