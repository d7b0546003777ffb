"""Every use of RQ's private parts, in one place. rq is pinned ``>=2.8,<3`` (pyproject.toml).

RQ has no public call for what the upkeep does (put a claimed job back at the front of its queue,
tell which worker runs a started job, see jobs a worker took and never started) nor for "has this
worker been asked to stop", and none to set how long its command listener (pubsub) thread waits. Each function below names the internal it leans on;
``tests/core/test_rqcompat.py`` runs each against the installed rq and a real Redis, so an rq
upgrade that changes one fails there, not in production.
"""

from __future__ import annotations

import redis
from rq import Queue
from rq.executions import Execution
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.utils import current_timestamp
from rq.worker import BaseWorker

__all__ = [
    "claim_started", "current_timestamp", "delete_execution", "enqueue_job", "execution_worker", "intermediate_job_ids",
    "intermediate_key", "started_entries", "stop_requested", "subscribe",
]


def enqueue_job(queue: Queue, job: Job, pipeline: redis.client.Pipeline, at_front: bool) -> None:
    """Put an existing job (already in Redis) on the queue inside ``pipeline``: ``Queue._enqueue_job``.

    The public ``Queue.enqueue_job`` is this plus a dependency set-up our jobs (which have no
    dependencies) do not need; kept as it was written and tested against rq 2.x.
    """
    queue._enqueue_job(job, pipeline=pipeline, at_front=at_front)


def started_entries(queue: Queue) -> list[tuple[str, str]]:
    """(job id, execution id) for every job RQ counts as running, without RQ's own clean-up."""
    return StartedJobRegistry(queue=queue).get_job_and_execution_ids(cleanup=False)


def execution_worker(connection: redis.Redis, job_id: str, execution_id: str) -> tuple[Execution, str]:
    """The execution, and the name of the worker running it ("" when the execution hash is gone).

    Reads the ``worker_name`` field of the execution's raw hash: ``Execution.fetch`` raises when
    the hash has expired, which is exactly the case the reaper must handle.
    """
    execution = Execution(execution_id, job_id, connection=connection)
    raw = connection.hget(execution.key, "worker_name") or b""
    return execution, raw.decode() if isinstance(raw, bytes) else str(raw)


def claim_started(connection: redis.Redis, queue: Queue, execution: Execution) -> bool:
    """Remove the execution's entry from the started registry; False if it was already gone."""
    return bool(connection.zrem(StartedJobRegistry(queue=queue).key, execution.composite_key))


def delete_execution(execution: Execution, job: Job, pipeline: redis.client.Pipeline) -> None:
    execution.delete(job, pipeline=pipeline)


def intermediate_key(queue: Queue) -> str:
    """The list a job sits in between a worker's BLMOVE and its start (``rq.intermediate_queue``)."""
    return IntermediateQueue(queue.key, queue.connection).key


def intermediate_job_ids(queue: Queue) -> list[str]:
    return IntermediateQueue(queue.key, queue.connection).get_job_ids()


def stop_requested(worker: BaseWorker) -> bool:
    """Whether a warm shutdown was asked for: ``Worker._stop_requested``, set by RQ's signal handler."""
    return bool(worker._stop_requested)


def subscribe(worker: BaseWorker, wait: float) -> None:
    """``BaseWorker.subscribe`` with its listener thread waking every ``wait`` seconds, not every 60.

    RQ starts the thread with ``run_in_thread(sleep_time=60)``. Once RQ's teardown has unsubscribed,
    redis-py's ``get_message`` waits up to that long for a subscription that never comes, and
    redis-py 8's ``PubSubWorkerThread.stop()`` joins the thread with no timeout: every stop of an
    idle worker took up to a minute. Uses ``Worker._pubsub_exception_handler`` (RQ's retry on a
    lost connection) and sets ``worker.pubsub`` / ``worker.pubsub_thread`` as RQ's own does.
    """
    worker.pubsub = worker.connection.pubsub()
    worker.pubsub.subscribe(**{worker.pubsub_channel_name: worker.handle_payload})
    worker.pubsub_thread = worker.pubsub.run_in_thread(  # type: ignore[assignment]  # rq annotates it None
        sleep_time=wait, daemon=True, exception_handler=worker._pubsub_exception_handler)
