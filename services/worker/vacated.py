"""A path the worker has just taken an entry from gets a job if its file is there again.

The watcher decides from the ledger: a file version the ledger holds is synced and nothing is
queued. The worker moves an item to a file's new name, or drops a deleted file's path, in two
steps: it checks that the old file is gone, then (after a Miro call) writes the ledger. A rename
back between the two is seen by the watcher while the old entry still stands, so it queues
nothing; the write then takes the entry away and leaves the file with no entry and no job until
the next rescan, with the item titled with the other name. So the worker looks at the path again
after its write: whichever of the two reads second sees the file unsynced and queues it.
"""

from __future__ import annotations

import os
import stat
from pathlib import PurePosixPath

from rq.job import Job

from shared.jobs import enqueue_upload
from shared.log import get_logger

from .context import WorkerContext

log = get_logger("worker")


def requeue_if_back(ctx: WorkerContext, relpath: str, item_id: str) -> Job | None:
    """Queue the file at ``relpath`` (whose entry for ``item_id`` was just moved or dropped), if there is one."""
    try:
        st = os.lstat(ctx.settings.watch_folder.joinpath(*PurePosixPath(relpath).parts))
    except OSError:
        return None  # still gone: the usual case
    if not stat.S_ISREG(st.st_mode):
        return None  # a link or a folder now: the watcher reports it
    job = enqueue_upload(ctx.jobs, relpath, st.st_size, st.st_mtime_ns, job_timeout=ctx.settings.job_timeout)
    if job is not None:
        log.info("file.requeued", file=relpath, item_id=item_id, job_id=job.id, reason="back under its name as its item left it")
    return job
