"""How big each drill is in each mode: ``full`` (the figures in RESULTS.md), ``quick`` (under two
minutes, ``make bench``), ``smoke`` (seconds; the test that keeps the bench from rotting)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Profile:
    name: str
    latency_files: int
    latency_gap: float
    worker_classes: bool  # also run the latency drill with RQ's forking workers
    throughput: dict[int, int]  # workers -> images
    baseline_images: int
    restart_sizes: tuple[int, ...]
    memory_images: int
    cpu_images: int
    cpu_batches: int
    pause: float  # seconds services get to go idle after start-up, before a drill
    idle_seconds: float  # span over which idle CPU is measured (and subtracted)
    url_show_images: int = 12  # pictures of the url route's warning-page drills
    url_late_page: bool = True  # also the drill where the page comes after a passing probe
    mirror_edits: int = 3  # files edited at once (measure 6)
    mirror_baseline_edits: int = 3
    mirror_renames: int = 3
    mirror_migration: int = 300  # first-layout ledger entries upgraded
    notes: list[str] = field(default_factory=list)


PROFILES = {
    "full": Profile("full", latency_files=100, latency_gap=0.1, worker_classes=True, throughput={1: 600, 4: 600, 8: 600},
                    baseline_images=600, restart_sizes=(10_000, 100_000), memory_images=6, cpu_images=100, cpu_batches=3,
                    pause=1.0, idle_seconds=3.0, mirror_edits=600, mirror_baseline_edits=40, mirror_renames=20,
                    mirror_migration=100_000),
    "quick": Profile("quick", latency_files=30, latency_gap=0.1, worker_classes=False, throughput={1: 20, 4: 60, 8: 150},
                     baseline_images=20, restart_sizes=(10_000, 100_000), memory_images=2, cpu_images=40, cpu_batches=1,
                     pause=0.5, idle_seconds=2.0, mirror_edits=150, mirror_baseline_edits=10, mirror_renames=10,
                     mirror_migration=100_000,
                     notes=["quick: bursts of 150 images or fewer mostly fit in the limiter's initial burst (5 % of a "
                            "minute's budget, ~47 images), so their rates run above the sustained ceiling; the full run uses 600"]),
    "smoke": Profile("smoke", latency_files=3, latency_gap=0.1, worker_classes=False, throughput={1: 3}, baseline_images=3,
                     restart_sizes=(300,), memory_images=1, cpu_images=3, cpu_batches=1, pause=0.2, idle_seconds=0.5,
                     url_show_images=3, url_late_page=False),
}
