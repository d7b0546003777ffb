"""Putting upload jobs on the queue: one job per file version, whoever asks and however often.

The contract (docs/architecture.md, "Queue and jobs"): the job calls
``services.worker.tasks.upload_image(path, size, mtime_ns)`` by name, with the JSON serializer,
on ``settings.queue_name``, under the id ``img-`` + sha256(path \\0 size \\0 mtime_ns)[:40],
enqueued with ``unique=True``. A second enqueue of the same version raises
``DuplicateJobError`` while the job exists, whatever its state:

* queued, started, scheduled, deferred: it will run (or is running): nothing to add;
* finished: that version was done; if the caller (who only enqueues unsynced versions) asks
  again, the path lost its ledger entry since (renamed back, forgotten): the old job is replaced;
* failed: a person requeues it from the dashboard; a new job with the same id would be the same
  version failing the same way.

So a duplicate is skipped, except a finished one asked for again. Failed jobs are kept ``FAILURE_TTL`` (not RQ's default year),
so a version that failed long ago can be queued again by a later scan.
"""

from __future__ import annotations

import hashlib
import logging

from redis import Redis
from rq import Queue
from rq.exceptions import DuplicateJobError
from rq.job import Job
from rq.serializers import JSONSerializer

from .log import get_logger

UPLOAD_FUNCTION = "services.worker.tasks.upload_image"
REMOVE_FUNCTION = "services.worker.tasks.remove_path"

RESULT_TTL = 24 * 3600
"""Seconds a finished job (and its result) stays visible in the dashboard."""

FAILURE_TTL = 7 * 24 * 3600
"""Seconds a failed job stays in the failed registry, for a person to requeue."""

DEFAULT_JOB_TIMEOUT = 180
"""Seconds, when the caller passes no ``job_timeout`` (the settings' default too)."""

log = get_logger("jobs")


def job_id(path: str, size: int, mtime_ns: int) -> str:
    """The id of the job for one file version (``path`` relative, POSIX separators)."""
    digest = hashlib.sha256(f"{path}\0{size}\0{mtime_ns}".encode("utf-8", "surrogateescape")).hexdigest()
    return "img-" + digest[:40]


def upload_queue(connection: Redis, name: str) -> Queue:
    """The project's queue, with the JSON serializer every part uses."""
    return Queue(name, connection=connection, serializer=JSONSerializer)


def enqueue_upload(queue: Queue, path: str, size: int, mtime_ns: int, job_timeout: int = DEFAULT_JOB_TIMEOUT) -> Job | None:
    """Queue the upload of this file version; None when its job already exists (then skipped)."""
    jid = job_id(path, size, mtime_ns)
    for _ in range(2):
        try:
            return queue.enqueue_call(
                UPLOAD_FUNCTION,
                args=(path, size, mtime_ns),
                job_id=jid,
                unique=True,
                timeout=job_timeout,
                result_ttl=RESULT_TTL,
                failure_ttl=FAILURE_TTL,
                description=path,
            )
        except DuplicateJobError:
            status = _status(queue, jid)
            if status == "finished":
                _delete(queue, jid)
                # Done once, yet the caller finds the version unsynced now: the path lost its entry
                # since (a rename back to this name, `miro-sync forget`...). It must run again.
                continue
            if log.isEnabledFor(logging.DEBUG):
                log.debug("job.exists", file=path, job_id=jid, status=status)
            return None
    return None


def removal_job_id(path: str, item_id: str) -> str:
    """The id of the job acting on one deleted file's item (``ON_DELETE``): once per (path, item)."""
    digest = hashlib.sha256(f"{path}\0{item_id}".encode("utf-8", "surrogateescape")).hexdigest()
    return "del-" + digest[:40]


def enqueue_removal(queue: Queue, path: str, item_id: str, job_timeout: int = DEFAULT_JOB_TIMEOUT) -> Job | None:
    """Queue what ``ON_DELETE`` does with the item of the deleted file ``path``; None when already queued."""
    jid = removal_job_id(path, item_id)
    try:
        return queue.enqueue_call(
            REMOVE_FUNCTION, args=(path, item_id), job_id=jid, unique=True, timeout=job_timeout,
            result_ttl=RESULT_TTL, failure_ttl=FAILURE_TTL, description=f"deleted: {path}",
        )
    except DuplicateJobError:
        return None


def _delete(queue: Queue, jid: str) -> None:
    try:
        Job.fetch(jid, connection=queue.connection, serializer=queue.serializer).delete()
    except Exception:  # gone meanwhile: the next enqueue decides
        pass


def _status(queue: Queue, jid: str) -> str | None:
    try:
        status = Job.fetch(jid, connection=queue.connection, serializer=queue.serializer).get_status(refresh=False)
    except Exception:  # gone since, or unreadable: only used for the debug line
        return None
    return getattr(status, "value", status)
