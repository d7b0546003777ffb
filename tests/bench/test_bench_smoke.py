"""The bench's smallest configuration, end to end, so it cannot rot unnoticed. Timings are not asserted."""

from __future__ import annotations

import subprocess
import sys

from tests.fixtures.procs import ROOT

MEASURES = ["1. latency p50", "1. latency p95", "2. throughput, 1 w", "2. 429 answers, 1 w", "3. restart: knows nothing to do",
            "3. restart: uploads", "4. watcher peak RSS", "4. worker peak RSS", "5. worker CPU per image",
            "6a. throughput, url route, 1 w", "6b. until all show, url mode, warning page", "6b. url mode ÷ file route"]


def cell(table: str, measure: str, column: int) -> str:
    line = next(line for line in table.splitlines() if line.startswith(f"| {measure} "))
    return [c.strip() for c in line.strip("|").split("|")][column]


def test_smoke_run_prints_every_measure_with_the_baseline_and_writes_results(tmp_path):
    results_md = ROOT / "bench" / "RESULTS.md"
    before = results_md.read_bytes() if results_md.exists() else None
    run = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--out", str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    for measure in MEASURES:
        assert cell(run.stdout, measure, 2) not in ("", "–"), measure
    for measure in ("1. latency p50", "2. throughput, 1 w", "4. worker peak RSS", "5. worker CPU per image"):
        assert cell(run.stdout, measure, 3) not in ("", "–"), f"no baseline figure for {measure}"
    assert cell(run.stdout, "3. restart: uploads", 2) == "0", "a restart over a synced folder uploaded something"
    written = (tmp_path / "results-smoke.md").read_text()
    assert "5. worker CPU per image" in written and "load average" in written
    assert (results_md.read_bytes() if results_md.exists() else None) == before, "a smoke run must not touch RESULTS.md"
