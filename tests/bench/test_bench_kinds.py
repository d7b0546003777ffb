"""bench.kinds at a twentieth of its sizes, so it cannot rot unnoticed. Timings and memory are not asserted."""

from __future__ import annotations

import subprocess
import sys

from bench.kinds import SOURCES
from tests.fixtures.procs import ROOT


def _rows(tmp_path, *args: str) -> list[str]:
    run = subprocess.run([sys.executable, "-m", "bench.kinds", "--scale", "0.05", "--out", str(tmp_path), *args], cwd=ROOT,
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [line for line in run.stdout.splitlines() if line.startswith("| ") and " MB |" in line]
    assert not [row for row in rows if "failed" in row], rows
    return rows


def test_every_kind_is_measured(tmp_path):
    rows = _rows(tmp_path)
    assert [row.split("|")[1].strip() for row in rows] == [name for name, *_ in SOURCES]


def test_pillow_alone_is_measured_beside(tmp_path):
    [row] = _rows(tmp_path, "--only", "24 MP JPEG", "--pillow")
    assert row.count(" MB") == 6, row  # file, rest, peak, sent; then Pillow's peak and sent
