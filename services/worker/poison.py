"""Poison jobs: a job whose worker died while running it is tried again, but not forever.

A picture that crashes the decoder, or makes the kernel's OOM killer end the worker, would otherwise
be put back by the reaper and kill every worker in turn. Each death is counted in Redis
(``keys.job_deaths``: it outlives the reaping worker, the maintenance lock's holder and, with AOF, a
Redis restart); the count decides what happens next (:func:`after_death`, pure):

* the first death: back at the **front** of the queue. One death says little (a deploy's SIGKILL,
  the OOM killer, a host restart ends every job in flight) and the job keeps its place: a create
  reserves its grid slot before it decodes anything, but a death before that (reading the file)
  would otherwise give the picture a later cell than the backfill's order;
* the second: at the **back**. Two deaths are a pattern; the rest of the backlog flows past the
  job, and its last try costs a worker only after everything else is up;
* the third (:data:`MAX_DEATHS`): quarantined. An upload's file version is rejected like a bad
  picture (``keys.rejected``, reason "a worker died 3 times on this file"), so ``status`` lists it
  and no scan queues it again; any other job (a deletion) is failed with that reason.

The count is per job id. An upload's id is the file version (``img-`` + hash of path, size, mtime),
so a rescan that enqueues the same version again adds to the same count, and an edited file (a new
version, a new id) starts with none. The count is kept after the quarantine, so a copy of the job
queued in a race with it dies once more at most; ``miro-sync retry PATH`` clears it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum

import redis
from rq import Queue
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry
from rq.results import Result

from shared import keys
from shared.jobs import FAILURE_TTL, UPLOAD_FUNCTION
from shared.ledger import rejection_record
from shared.log import get_logger

from . import rqcompat

log = get_logger("worker")

MAX_DEATHS = 3
"""Worker deaths that quarantine a job: it is tried again twice, not a third time."""
DEATHS_TTL = FAILURE_TTL
"""Seconds a job's death count is kept after its last death: longer than any backlog it waits behind."""


class AfterDeath(str, Enum):
    FRONT = "front"  # back on the queue, first in line
    BACK = "back"  # back on the queue, behind everything queued
    QUARANTINE = "quarantine"


def after_death(deaths: int) -> AfterDeath:
    """What to do with a job whose worker died while running it, ``deaths`` times in all (this one included)."""
    if deaths >= MAX_DEATHS:
        return AfterDeath.QUARANTINE
    return AfterDeath.FRONT if deaths <= 1 else AfterDeath.BACK


def quarantine_reason(deaths: int) -> str:
    return f"a worker died {deaths} times on this file"


def count_death(connection: redis.Redis, job_id: str) -> int:
    """Count one more death of ``job_id``'s worker; returns the deaths so far."""
    with connection.pipeline() as pipe:
        pipe.incr(keys.job_deaths(job_id))
        pipe.expire(keys.job_deaths(job_id), DEATHS_TTL)
        deaths, _ = pipe.execute()
    return int(deaths)


def forget_deaths(connection: redis.Redis, job_id: str) -> None:
    """A person released the job (``miro-sync retry``): it gets its tries again."""
    connection.delete(keys.job_deaths(job_id))


def upload_version(job: Job) -> tuple[str, int, int] | None:
    """(path, size, mtime_ns) of an upload job; None for any other job."""
    if job.func_name != UPLOAD_FUNCTION or len(job.args) != 3:
        return None
    path, size, mtime_ns = job.args
    return str(path), int(size), int(mtime_ns)


def quarantine(connection: redis.Redis, queue: Queue, board_id: str, job: Job, execution: Execution | None, deaths: int) -> None:
    """Take a claimed job out of circulation for good: its file version rejected, or the job failed."""
    reason = quarantine_reason(deaths)
    version = upload_version(job)
    with connection.pipeline() as pipe:
        if execution is not None:
            rqcompat.delete_execution(execution, job, pipe)
        pipe.lrem(rqcompat.intermediate_key(queue), 0, job.id)  # as maintenance._put_back does
        pipe.hdel(keys.TAKEN_UNSTARTED, job.id)
        if version is not None:
            path, size, mtime_ns = version
            pipe.hset(keys.rejected(board_id), path, rejection_record(size, mtime_ns, reason, deaths=deaths))
            job.delete(pipeline=pipe)  # a scan finds the version rejected, a person's retry queues it again
        else:
            ttl = job.failure_ttl or FAILURE_TTL
            job.ended_at = datetime.now(UTC)
            job.set_status(JobStatus.FAILED, pipeline=pipe)
            FailedJobRegistry(queue=queue).add(job, ttl=ttl, exc_string=reason, pipeline=pipe)
            Result.create_failure(job, ttl, reason, pipeline=pipe)  # where `status` and the dashboard read the reason
        pipe.execute()
    if version is not None:
        log.warning("file.rejected", file=version[0], job_id=job.id, reason=reason)
    else:
        log.warning("job.failed", file=job.description, job_id=job.id, reason=reason)
