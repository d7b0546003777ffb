"""Drill: a picture whose job kills every worker that runs it is quarantined; the rest flows.

The "poison" is played by the drill: it watches RQ's started registry and SIGKILLs the worker
process running that file's job, each time, as a decoder crash or the OOM killer would end it. The
picture is big enough (converted before upload) that the kill lands before Miro is called, as a
crash while decoding does. Four workers, none restarted: the one left reaps the third death.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess

import pytest
from PIL import Image

from services.worker import rqcompat
from shared.jobs import job_id, upload_queue
from tests.fixtures.procs import MIRO_SYNC, wait_for

from .harness import drop_file, read

BAD = "bad.png"
REASON = "a worker died 3 times on this file"


def big_picture() -> bytes:
    """Noise, 7.7 MB as PNG: over Miro's 6 MB, so its job decodes and converts it for a while before any upload."""
    im = Image.frombytes("RGB", (1600, 1600), os.urandom(1600 * 1600 * 3))
    buf = io.BytesIO()
    im.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


@pytest.mark.slow
def test_a_picture_that_kills_its_workers_is_rejected_after_three_deaths_and_released_by_retry(rig):
    watcher = rig.start("watch", RESCAN_INTERVAL="1")  # boots beside the workers
    workers = {proc.pid: proc for proc in rig.start_workers(4)}  # one outlives the three deaths
    wait_for(lambda: '"watch.started"' in read(watcher), 60, what="the watcher to start")
    queue = upload_queue(rig.redis, "miro-sync")
    drop_file(rig.folder / BAD, big_picture())
    stat = (rig.folder / BAD).stat()
    bad_job = job_id(BAD, stat.st_size, stat.st_mtime_ns)
    good = rig.drop(10)

    def running_bad_job() -> int | None:
        """The pid of the live worker running the bad picture's job code (a worker's name is host-pid-random).

        A killed worker's entry stays in the registry until the reaper takes it back. A job still in
        RQ's intermediate list is in RQ's bookkeeping, not yet in its own code.
        """
        for jid, execution_id in rqcompat.started_entries(queue):
            _, worker_name = rqcompat.execution_worker(rig.redis, jid, execution_id)
            pid = int(worker_name.rsplit("-", 2)[-2]) if worker_name else None
            # Read after the registry: RQ takes the job out of that list once it is registered as started.
            if jid == bad_job and pid in workers and bad_job not in rqcompat.intermediate_job_ids(queue):
                return pid
        return None

    for death in range(1, 4):
        pid = wait_for(running_bad_job, 40, interval=0.01, what=lambda death=death: f"the bad job to run again (death {death})\n" + rig.tail())
        victim = workers.pop(pid)
        os.killpg(victim.pid, signal.SIGKILL)
        victim.popen.wait(5)
        if death == 1:
            good |= rig.drop(10, start=10)  # dropped while workers die: they arrive all the same

    rejected = wait_for(lambda: [e for e in rig.events("file.rejected") if e.get("file") == BAD], 30,
                        what=lambda: "the bad picture to be rejected\n" + rig.tail())
    assert [e["reason"] for e in rejected] == [REASON]
    requeued = [e["reason"] for e in sorted(rig.events("job.requeued"), key=lambda e: e["ts"]) if e.get("file") == BAD]
    assert [r.split("(")[-1] for r in requeued] == ["1 of 3, at the front)", "2 of 3, at the back)"], requeued
    rig.wait_items(20)
    rig.assert_each_once(good)  # the kills landed before Miro was called: no bad.png item
    assert rig.failed_jobs() == 0

    scans = len(rig.events("watch.scan"))
    # status --json names it with the reason.
    status = cli(rig, "status", "--json")
    data = json.loads(status.stdout)
    assert data["rejected"] == 1 and data["synced"] == 20, status.stdout
    assert [(r["path"], r["reason"]) for r in data["recent_rejections"]] == [(BAD, REASON)]

    # Rescans (every second here) leave it alone: two full ones after the rejection, no new job
    # (and, the sentinel for the check above: nothing else was on its way).
    wait_for(lambda: len(rig.events("watch.scan")) >= scans + 2, 20, what="two more rescans")
    assert [e["file"] for e in rig.events("file.queued")].count(BAD) == 1
    assert rig.pending_jobs() == {}

    # `retry PATH` releases it; nothing kills its worker now, so it arrives.
    done = cli(rig, "retry", BAD)
    assert done.returncode == 0 and f"released {BAD}" in done.stdout, done.stdout + done.stderr
    items = rig.wait_items(21)
    rig.wait_idle()
    assert sorted(i["data"]["title"] for i in items) == sorted([*good, BAD])  # bad.png once (converted: its own bytes differ)
    assert rig.failed_jobs() == 0
    rig.stop_all_cleanly()


def cli(rig, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(MIRO_SYNC + list(args), env={"PATH": "/usr/bin:/bin", **rig.process_env()},
                          capture_output=True, text=True, timeout=60)
