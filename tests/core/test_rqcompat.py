"""The RQ internals the worker relies on (services/worker/rqcompat.py) still behave as assumed.

Each test drives the installed rq against a real Redis the way a worker does, then calls the
adapter: an rq release that renames, reshapes or drops one of them fails here.
"""

from __future__ import annotations

import inspect
import signal
import sys
import threading
import time
from importlib.metadata import version

import pytest
from rq import Queue, SimpleWorker, Worker
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from services.worker import rqcompat


def noop() -> None:
    """A job function (importable by name, as RQ needs)."""


@pytest.fixture
def queue(redis_client):
    return Queue("rqcompat-test", connection=redis_client, serializer=JSONSerializer)


def _start(queue: Queue, worker: Worker) -> Job:
    """What a worker does with a job before running it: take it, create its execution, register it."""
    job, _ = queue.dequeue_any([queue], timeout=None, connection=queue.connection, serializer=queue.serializer)
    worker.prepare_execution(job)
    worker.prepare_job_execution(job, remove_from_intermediate_queue=True)
    return job


def test_rq_is_below_3():
    assert int(version("rq").split(".")[0]) < 3, "pyproject pins rq below 3; rqcompat was written for 2.x"


def test_a_started_job_names_its_worker_can_be_claimed_and_put_back_at_the_front(queue, redis_client):
    worker = SimpleWorker([queue], connection=redis_client, serializer=JSONSerializer, name="compat-worker")
    first = queue.enqueue(noop)
    queue.enqueue(noop)
    assert _start(queue, worker).id == first.id

    [(job_id, execution_id)] = rqcompat.started_entries(queue)
    assert job_id == first.id
    execution, worker_name = rqcompat.execution_worker(redis_client, job_id, execution_id)
    assert worker_name == "compat-worker"

    assert rqcompat.claim_started(redis_client, queue, execution) is True
    assert rqcompat.claim_started(redis_client, queue, execution) is False  # only one claimer wins
    assert rqcompat.started_entries(queue) == []
    job = Job.fetch(job_id, connection=redis_client, serializer=JSONSerializer)
    with redis_client.pipeline() as pipe:
        rqcompat.delete_execution(execution, job, pipe)
        job.set_status(JobStatus.QUEUED, pipeline=pipe)
        rqcompat.enqueue_job(queue, job, pipe, at_front=True)
        pipe.execute()
    assert queue.get_job_ids()[0] == first.id and queue.count == 2
    assert rqcompat.execution_worker(redis_client, job_id, execution_id)[1] == ""  # the execution hash is gone


def test_a_taken_job_sits_in_the_intermediate_list_until_started(queue, redis_client):
    job = queue.enqueue(noop)
    assert rqcompat.intermediate_job_ids(queue) == []
    redis_client.lmove(queue.key, rqcompat.intermediate_key(queue))  # a worker's BLMOVE
    assert rqcompat.intermediate_job_ids(queue) == [job.id]


def test_stop_requested_follows_rqs_warm_shutdown(queue, redis_client):
    worker = SimpleWorker([queue], connection=redis_client, serializer=JSONSerializer)
    assert rqcompat.stop_requested(worker) is False
    worker.set_state("busy")  # RQ marks the stop only while a job runs
    worker.request_stop(signal.SIGTERM, None)
    assert rqcompat.stop_requested(worker) is True


def test_the_worker_methods_overridden_keep_their_signatures():
    """services/worker/main.py overrides these two; a renamed hook would silently never run."""
    assert list(inspect.signature(Worker.check_for_suspension).parameters) == ["self", "burst"]
    assert list(inspect.signature(Worker.handle_warm_shutdown_request).parameters) == ["self"]
    assert rqcompat.current_timestamp() > 0


def test_subscribe_listens_for_commands_and_unsubscribes_within_a_second(queue, redis_client):
    """RQ's own listener waits 60 s per round, and redis-py 8 joins it with no timeout on stop."""
    worker = SimpleWorker([queue], connection=redis_client, serializer=JSONSerializer, name="compat-pubsub")
    received = threading.Event()
    worker.handle_payload = lambda message: received.set()  # RQ's own would act on the command (SIGINT itself)
    rqcompat.subscribe(worker, 0.2)
    assert worker.pubsub_thread is not None and worker.pubsub_thread.is_alive()
    redis_client.publish(worker.pubsub_channel_name, '{"command": "shutdown"}')  # what rq.command sends
    assert received.wait(5), "RQ's commands no longer reach the worker"

    # The state a stop meets under load: RQ's UNSUBSCRIBE answered, the listener waiting for a new subscription.
    worker.pubsub.unsubscribe()
    listener = worker.pubsub_thread
    wait_until = time.monotonic() + 5
    while not _waiting_in(listener, "wait") and time.monotonic() < wait_until:
        time.sleep(0.01)
    assert _waiting_in(listener, "wait")
    done = threading.Event()
    threading.Thread(target=lambda: (worker.unsubscribe(), done.set()), daemon=True).start()
    started = time.monotonic()
    assert done.wait(5), "unsubscribe hung (the listener thread waits for a subscription that never comes)"
    assert time.monotonic() - started < 1.5
    assert not worker.pubsub_thread.is_alive()


def _waiting_in(thread: threading.Thread, function: str) -> bool:
    """Whether ``thread`` is inside a call to ``function`` right now (its stack, innermost first)."""
    frame = sys._current_frames().get(thread.ident or 0)
    while frame is not None:
        if frame.f_code.co_name == function and frame.f_code.co_filename.endswith("threading.py"):
            return True
        frame = frame.f_back
    return False
