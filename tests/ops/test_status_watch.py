"""`miro-sync status --watch` in a terminal: redrawn every second, with a backfill bar (done/total,
files per second, time left) while jobs are outstanding; Ctrl+C ends it."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import time

import redis as redis_lib

from shared import keys
from shared.jobs import enqueue_upload, upload_queue
from tests.fixtures.procs import MIRO_SYNC, wait_for

BOARD = "b="


def _as_a_shell_starts_it() -> None:
    """In the child, before exec: Ctrl+C as a shell's foreground job has it. A suite started in the
    background (`make test &`, a CI runner) hands SIGINT down ignored, and Python keeps it ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Terminal:
    def __init__(self, args, env) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True,
                                     preexec_fn=_as_a_shell_starts_it)
        os.close(slave)
        self.screen = ""

    def read(self) -> str:
        while select.select([self.master], [], [], 0.05)[0]:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                break
            if not chunk:
                break
            self.screen += chunk.decode(errors="replace")
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", self.screen)

    def close(self, timeout: float = 10.0) -> int | None:
        """Ctrl+C, then read the screen until the program has ended, as a terminal does (rich's redraw
        thread, which the program waits for, would block on a full pty buffer nobody reads)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        deadline = time.monotonic() + timeout
        try:
            while self.proc.poll() is None:
                if time.monotonic() > deadline:
                    raise subprocess.TimeoutExpired(self.proc.args, timeout)
                self.read()
            return self.proc.returncode
        finally:
            os.close(self.master)


def test_watch_shows_a_backfill_bar_that_advances(tmp_path, redis_url):
    client = redis_lib.Redis.from_url(redis_url)
    queue = upload_queue(client, "miro-sync")
    for i in range(8):
        enqueue_upload(queue, f"old/{i}.png", 100 + i, 1)
    env = {"PATH": "/usr/bin:/bin", "MIRO_SYNC_ENV_FILE": "/nonexistent", "MIRO_BOARD_ID": BOARD, "REDIS_URL": redis_url,
           "COLUMNS": "160", "LINES": "50", "TERM": "xterm"}
    term = Terminal(MIRO_SYNC + ["status", "--watch"], env)
    try:
        wait_for(lambda: "backfill" in term.read() and "0/8" in term.read(), 20, what=lambda: term.read()[-2000:])
        # Two files get done (what a worker does: the job leaves the queue, the ledger gains the path).
        for i in range(2):
            client.lpop(queue.key)
            client.hset(keys.ledger_paths(BOARD), f"old/{i}.png", "{}")
        wait_for(lambda: "2/8" in term.read() and "synced 2" in term.read(), 20, what=lambda: term.read()[-2000:])
        assert "files/s" in term.read()
        assert re.search(r"2/8 .*files/s .*(-:--:--|\d+:\d\d:\d\d)", term.read()), term.read()[-1500:]  # rate and ETA
        # The bar is a redraw, not a scroll: the status lines repeat, the screen keeps updating.
        assert term.read().count("synced 0") >= 1 and "queued 6" in term.read()
    finally:
        code = term.close()
    assert code == 0, term.read()[-2000:]


def test_watch_without_outstanding_jobs_shows_no_bar(tmp_path, redis_url):
    env = {"PATH": "/usr/bin:/bin", "MIRO_SYNC_ENV_FILE": "/nonexistent", "MIRO_BOARD_ID": BOARD, "REDIS_URL": redis_url,
           "COLUMNS": "160", "LINES": "50", "TERM": "xterm"}
    term = Terminal(MIRO_SYNC + ["status", "--watch"], env)
    try:
        wait_for(lambda: "healthy" in term.read(), 20, what=lambda: term.read()[-2000:])
        time.sleep(1.5)  # at least one redraw
        assert "backfill" not in term.read()
    finally:
        term.close()
