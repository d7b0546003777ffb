"""Background upkeep each worker runs in a thread, so recovery does not wait for RQ's defaults.

* Liveness: every second the worker refreshes ``keys.worker_alive(name)`` (TTL a few seconds).
  A worker killed with SIGKILL stops refreshing it, and its absence is the signal of death.
* Reaping: jobs a dead worker was running, or had just taken off the queue, are put back on the
  queue within seconds. A job whose worker died while running it is counted, put back at the front
  once, then at the back, and quarantined the third time (:mod:`.poison`): a picture that crashes
  its worker does not take every worker down in turn.
  (RQ alone would wait for the job timeout plus its 10-minute maintenance interval, and then
  fail the job instead of retrying it.) Exactly-once is kept by the uploader's intent record.
* Retries: jobs that asked for a retry later sit in RQ's scheduled registry; due ones are
  enqueued here, so no separate scheduler process is needed (one that could die with a worker).
* Recovery: after a Miro outage (5xx, dropped connections) the retries wait with exponential,
  jittered delays, up to minutes after a long outage. The first upload that succeeds afterwards
  marks Miro as back (:func:`miro_answered`) and the next tick queues every waiting retry at once;
  the shared credit limiter still paces them.

Only one worker at a time does the reaping and promoting (a short Redis lock).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import cast

import redis
from rq import Queue
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry

from shared import keys
from shared.log import get_logger

from . import poison, rqcompat

log = get_logger("worker")

ALIVE_TTL = 5
"""Seconds a worker counts as alive after its last refresh."""
TICK = 1.0
"""Seconds between two rounds of upkeep."""
CALM_AFTER = 2 * ALIVE_TTL
"""Seconds without a Redis error before this process judges other workers dead by their keys."""

# While Redis is away no worker can refresh its key, so right after an outage every worker looks
# dead. A process that had trouble with Redis (or just started) waits until the live ones have
# refreshed again, or it would run jobs twice.
_trouble_at = time.monotonic()


def redis_trouble() -> None:
    global _trouble_at
    _trouble_at = time.monotonic()


def can_judge_liveness() -> bool:
    return time.monotonic() - _trouble_at > CALM_AFTER


def refresh_alive(connection: redis.Redis, worker_name: str) -> None:
    connection.set(keys.worker_alive(worker_name), "1", ex=ALIVE_TTL)


def reap_dead_workers(connection: redis.Redis, queue: Queue, board_id: str) -> list[str]:
    """Requeue the jobs whose worker no longer refreshes its liveness key; quarantine a job that killed too many.

    Each death is counted against the job (:mod:`.poison`): the job goes back at the front, then at
    the back, and the third time its worker dies it is taken out (its file rejected).
    """
    requeued = []
    for job_id, execution, worker_name in _claim_started(connection, queue, lambda worker: not worker or not connection.exists(keys.worker_alive(worker))):
        deaths = poison.count_death(connection, job_id)
        verdict = poison.after_death(deaths)
        job = _fetch(connection, queue, job_id, execution)
        if job is None:
            continue
        if verdict is poison.AfterDeath.QUARANTINE:
            poison.quarantine(connection, queue, board_id, job, execution, deaths)
            continue
        reason = f"worker {worker_name or '?'} died while running it ({deaths} of {poison.MAX_DEATHS}, at the {verdict.value})"
        _put_back(connection, queue, job, reason, execution, at_front=verdict is poison.AfterDeath.FRONT)
        requeued.append(job_id)
    return requeued


def requeue_own_jobs(connection: redis.Redis, queue: Queue, worker_name: str) -> list[str]:
    """Requeue the jobs RQ still counts as running in this worker, which runs none right now.

    After RQ's loop broke off (Redis went away mid-job), the job it was running stays in the
    started registry under a worker that is alive, so the reaper would leave it there. Not a
    death of the job's making: not counted.
    """
    requeued = []
    for job_id, execution, _ in _claim_started(connection, queue, lambda worker: worker == worker_name):
        job = _fetch(connection, queue, job_id, execution)
        if job is not None:
            _put_back(connection, queue, job, f"interrupted in worker {worker_name}", execution)
            requeued.append(job_id)
    return requeued


def _claim_started(connection: redis.Redis, queue: Queue, abandoned: Callable[[str], bool]) -> Iterator[tuple[str, Execution, str]]:
    """(job id, execution, worker name) of each started job whose worker is ``abandoned``, claimed by this process."""
    for job_id, execution_id in rqcompat.started_entries(queue):
        execution, worker_name = rqcompat.execution_worker(connection, job_id, execution_id)
        if not abandoned(worker_name):
            continue
        # Claim the entry. A job that ended since it was listed took its entry and execution away
        # together (so no worker name was found): it must not run again.
        if rqcompat.claim_started(connection, queue, execution):
            yield job_id, execution, worker_name


def _fetch(connection: redis.Redis, queue: Queue, job_id: str, execution: Execution | None = None) -> Job | None:
    """A claimed job; None when there is nothing to run (and its ``execution`` is dropped)."""
    try:
        return Job.fetch(job_id, connection=connection, serializer=queue.serializer)
    except Exception:  # the job hash expired or is unreadable: nothing to run
        if execution is not None:
            connection.delete(execution.key)
        return None


def _put_back(connection: redis.Redis, queue: Queue, job: Job, reason: str, execution: Execution | None = None, at_front: bool = True) -> None:
    """Queue a claimed job again (and drop its ``execution``)."""
    with connection.pipeline() as pipe:
        if execution is not None:
            rqcompat.delete_execution(execution, job, pipe)
        # A worker killed between registering the job as started and starting its code leaves it in
        # RQ's intermediate list too, where rescue_taken_jobs would find it and queue it a second time.
        pipe.lrem(rqcompat.intermediate_key(queue), 0, job.id)
        # And forget an old sighting of it there: once queued, the next worker to take it puts it in
        # that list again, and an old sighting would have rescue_taken_jobs queue it a second time
        # under that live worker (two workers on one job).
        pipe.hdel(keys.TAKEN_UNSTARTED, job.id)
        job.set_status(JobStatus.QUEUED, pipeline=pipe)
        rqcompat.enqueue_job(queue, job, pipe, at_front=at_front)
        pipe.execute()
    log.warning("job.requeued", job_id=job.id, file=job.args[0] if job.args else None, reason=reason)


def rescue_taken_jobs(connection: redis.Redis, queue: Queue) -> list[str]:
    """Requeue jobs a worker took off the queue and never started (it died in between).

    Taking a job moves it to RQ's intermediate list; starting it puts it in the started registry.
    A worker killed, or cut from Redis, between the two leaves it in the list, where RQ's own
    clean-up (every 10 minutes) marks it *failed*. Here it goes back to the queue once it has sat
    there, unstarted, for ``ALIVE_TTL`` seconds (first sightings kept in ``keys.TAKEN_UNSTARTED``).
    """
    started = {job_id for job_id, _ in rqcompat.started_entries(queue)}
    stuck = set(rqcompat.intermediate_job_ids(queue)) - started
    seen = {k.decode(): float(v) for k, v in cast("dict[bytes, bytes]", connection.hgetall(keys.TAKEN_UNSTARTED)).items()}
    gone = set(seen) - stuck
    if gone:
        connection.hdel(keys.TAKEN_UNSTARTED, *gone)
    seconds, micros = connection.time()  # one clock for workers on different hosts
    now = seconds + micros / 1e6
    requeued = []
    for job_id in stuck:
        if job_id not in seen:
            connection.hsetnx(keys.TAKEN_UNSTARTED, job_id, now)
            continue
        # Claim it: if its worker started it after all, it has left the list and this removes nothing.
        if now - seen[job_id] < ALIVE_TTL or not connection.lrem(rqcompat.intermediate_key(queue), 1, job_id):
            continue
        connection.hdel(keys.TAKEN_UNSTARTED, job_id)
        # Not counted as a death of the job's making: none of its code ran.
        job = _fetch(connection, queue, job_id)
        if job is not None:
            _put_back(connection, queue, job, "taken by a worker that never started it")
            requeued.append(job_id)
    return requeued


def promote_due_retries(connection: redis.Redis, queue: Queue, everything: bool = False) -> int:
    """Queue the retries whose time has come (``everything``: all of them, now)."""
    registry = ScheduledJobRegistry(queue=queue)
    # rq hints an int; the bound goes to ZRANGEBYSCORE, which takes inf for "every score".
    job_ids = registry.get_jobs_to_schedule(cast(int, float("inf")) if everything else rqcompat.current_timestamp())
    if not job_ids:
        return 0
    jobs = Job.fetch_many(job_ids, connection=connection, serializer=queue.serializer)
    with connection.pipeline() as pipe:
        for job in jobs:
            if job is not None:
                rqcompat.enqueue_job(queue, job, pipe, at_front=job.should_enqueue_at_front())
        for job_id in job_ids:
            registry.remove(job_id, pipeline=pipe)
        pipe.execute()
    return len(job_ids)


def miro_failing(connection: redis.Redis) -> None:
    """A job is retried because Miro failed (5xx, transport): remember that Miro is in trouble."""
    connection.set(keys.MIRO_FAILING, "1", ex=86400)


def miro_answered(connection: redis.Redis) -> bool:
    """An upload succeeded. True for the first success after a failure (the retries then go at once)."""
    if not connection.delete(keys.MIRO_FAILING):
        return False
    retry_waiting_now(connection)
    return True


def retry_waiting_now(connection: redis.Redis) -> None:
    """What the retries waited for is over (Miro is back, the token works): the next tick queues them all."""
    connection.set(keys.MIRO_RECOVERED, "1", ex=86400)


class Upkeep(threading.Thread):
    def __init__(self, connection: redis.Redis, queue: Queue, worker_name: str, board_id: str) -> None:
        super().__init__(name="upkeep", daemon=True)
        self.connection = connection
        self.queue = queue
        self.worker_name = worker_name
        self.board_id = board_id  # where a quarantined file is rejected
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(TICK):
            try:
                self.tick()
            except redis.RedisError as exc:  # Redis restarting: try again next tick
                redis_trouble()
                log.debug("upkeep.redis_error", error=str(exc))
            except Exception:
                log.exception("upkeep.error")

    def tick(self) -> None:
        refresh_alive(self.connection, self.worker_name)
        if self.connection.set(keys.MAINTENANCE_LOCK, self.worker_name, nx=True, px=int(TICK * 2000)):
            if can_judge_liveness():
                reap_dead_workers(self.connection, self.queue, self.board_id)
                rescue_taken_jobs(self.connection, self.queue)
            promote_due_retries(self.connection, self.queue, everything=bool(self.connection.delete(keys.MIRO_RECOVERED)))

    def stop(self) -> None:
        self.stopped.set()
        try:
            self.connection.delete(keys.worker_alive(self.worker_name))
        except redis.RedisError:
            pass
