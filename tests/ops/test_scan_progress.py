"""A start-up scan of a large folder logs its progress every few seconds: files seen, queued, rate."""

from __future__ import annotations

import os
import re
import subprocess

from tests.fixtures.procs import MIRO_SYNC
from tests.fixtures.stack import make_image


def test_a_long_scan_logs_progress_lines(tmp_path, redis_url):
    folder = tmp_path / "inbox"
    (folder / "old").mkdir(parents=True)
    make_image(folder / "old" / "0.png")
    data = (folder / "old" / "0.png").read_bytes()
    for i in range(1, 1200):
        (folder / "old" / f"{i}.png").write_bytes(data)
    for entry in (folder / "old").iterdir():
        os.utime(entry, (1_600_000_000, 1_600_000_000))  # long settled
    env = {"PATH": "/usr/bin:/bin", "MIRO_SYNC_ENV_FILE": "/nonexistent", "WATCH_FOLDER": str(folder), "MIRO_BOARD_ID": "b=",
           "REDIS_URL": redis_url, "LOG_FORMAT": "text", "SCAN_PROGRESS_SECONDS": "0.05"}
    done = subprocess.run(MIRO_SYNC + ["watch", "--once"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if "watch.scan_progress" in line]
    assert lines, done.stderr[-3000:]  # after the first chunk (1000 files) at the latest
    fields = dict(re.findall(r"(\w+)=(\S+)", lines[0]))
    assert int(fields["files"]) == 1000 and int(fields["queued"]) == 1000 and float(fields["rate"]) > 0, lines[0]
    assert all("files=1000" in line or "files=1200" in line for line in lines), lines


def test_progress_interval_is_a_validated_setting(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "MIRO_SYNC_ENV_FILE": "/nonexistent", "WATCH_FOLDER": str(tmp_path), "MIRO_BOARD_ID": "b=",
           "SCAN_PROGRESS_SECONDS": "0"}
    done = subprocess.run(MIRO_SYNC + ["watch", "--once"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "SCAN_PROGRESS_SECONDS is 0.0; expected at least 0.05" in done.stderr, done.stderr
