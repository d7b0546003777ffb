"""Drill: a wrong token stops the workers with one clear line; no job is lost or failed.

* A worker started with a token Miro refuses exits at once (code 2) with one line saying so.
* A token revoked while workers run: the first refusal holds every worker (one
  ``miro.token_refused`` line), jobs wait instead of failing, and the watcher keeps queueing.
  The user then sets a valid token and restarts the workers: every waiting job finishes at once.
"""

from __future__ import annotations

import time

from tests.fixtures.procs import MIRO_SYNC, wait_for

from .harness import events, read

GOOD, REVOKED, WRONG = "drill-token-good-0001", "drill-token-revoked-0002", "drill-token-wrong-0003"
SCOPES = {"boards:read", "boards:write"}


def test_worker_refuses_to_start_with_a_wrong_token(rig_factory, spawn):
    rig = rig_factory(tokens={GOOD: set(SCOPES)})
    proc = spawn(MIRO_SYNC + ["worker"], "wrong-token", env=rig.process_env(MIRO_ACCESS_TOKEN=WRONG))
    assert proc.popen.wait(30) == 2
    lines = [line for line in read(proc).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "MIRO_ACCESS_TOKEN" in lines[0] and "401" in lines[0]
    assert WRONG not in lines[0]


def test_revoked_token_holds_jobs_until_a_valid_one_is_set(rig_factory):
    rig = rig_factory(tokens={REVOKED: set(SCOPES)})
    rig.start_watcher()
    workers = rig.start_workers(2, MIRO_ACCESS_TOKEN=REVOKED)
    rig.sandbox.set_faults(latency_ms=50)
    expected = rig.drop(40)
    wait_for(lambda: len(rig.items()) >= 5, 20, what="uploads to start")

    del rig.sandbox.config.tokens[REVOKED]  # revoked in Miro's settings while the workers run
    wait_for(lambda: rig.events("miro.token_refused"), 20, what="the refusal to be reported")
    on_board = len(rig.items())
    assert on_board < len(expected), "every upload finished before the revocation; the drill proves nothing"
    expected |= rig.drop(5, start=100, prefix="while-held")  # still queued while the workers hold
    wait_for(lambda: len(rig.events("file.queued")) == len(expected), 20, what="the watcher to queue the late files")
    # Held: no job runs, every file not on the board waits in the queue, and it stays so (1 s
    # of idle workers polling the queue: a worker that was not holding takes a job in ms).
    wait_for(held_for(rig, len(expected), 1.0), 30, interval=0.05, what=lambda: f"every job held: {rig.pending_jobs()}\n" + rig.tail())
    refusal = min(r["done_at"] for r in rig.sandbox.requests() if r["status"] == 401)
    late = [r for r in rig.sandbox.requests() if r["at"] > refusal and r["status"] is not None and r["status"] < 300]
    assert late == [], f"Miro accepted calls after the token was refused: {late}"
    assert rig.failed_jobs() == 0

    refused = rig.events("miro.token_refused")
    assert len(refused) == 1, refused  # one clear line, whichever worker met the refusal first
    assert "MIRO_ACCESS_TOKEN" in refused[0]["reason"] and REVOKED not in rig.output()
    for proc in workers:
        assert len([e for e in _events(proc) if e["event"] == "worker.holding"]) <= 1

    # The user sets a valid token and restarts the workers.
    rig.sandbox.config.tokens[GOOD] = set(SCOPES)
    for proc in workers:
        rig.stop_cleanly(proc)
    rig.start_workers(2, MIRO_ACCESS_TOKEN=GOOD)
    rig.wait_items(len(expected), timeout=20)
    rig.wait_idle()
    rig.assert_each_once(expected)
    assert rig.failed_jobs() == 0
    rig.stop_all_cleanly()


def held_for(rig, total: int, quiet: float):
    """A predicate: true once no job has run and none reached the board for ``quiet`` seconds."""
    state = {"since": None, "seen": None}

    def check() -> bool:
        pending = rig.pending_jobs()
        seen = (len(rig.items()), pending.get("queued", 0) + pending.get("scheduled", 0))
        if pending.get("started") or pending.get("intermediate") or sum(seen) != total:
            state["since"] = None
            return False
        now = time.monotonic()
        if state["since"] is None or seen != state["seen"]:
            state["since"], state["seen"] = now, seen
            return False
        return now - state["since"] >= quiet

    return check


def _events(proc):
    return events(read(proc))
