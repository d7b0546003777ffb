"""bench.kinds at a twentieth of its sizes, so it cannot rot unnoticed. Timings are not asserted."""

from __future__ import annotations

import subprocess
import sys

from bench.kinds import SOURCES
from tests.fixtures.procs import ROOT


def test_every_kind_is_measured_both_ways(tmp_path):
    run = subprocess.run([sys.executable, "-m", "bench.kinds", "--scale", "0.05", "--out", str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [line for line in run.stdout.splitlines() if line.startswith("| ") and " MB |" in line]
    assert [row.split("|")[1].strip() for row in rows] == [name for name, *_ in SOURCES]
    assert not [row for row in rows if "failed" in row], rows
