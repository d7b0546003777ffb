"""Poison jobs (services/worker/poison.py): what a worker's death does to the job it was running.

The decision is pure; the counting, requeueing and quarantine run against a real Redis and the
installed rq, with the state a SIGKILLed worker leaves (the job started under a worker name whose
liveness key is gone). The drill with real workers is tests/drills/test_poison_jobs.py.
"""

from __future__ import annotations

import argparse
import json
import time

import pytest
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from services import retry
from services.worker import maintenance, poison, rqcompat
from services.worker.poison import AfterDeath
from shared import keys
from shared.jobs import enqueue_removal, enqueue_upload, upload_queue
from shared.ledger import Ledger
from shared.settings import load_settings
from shared.status_read import failure_reason
from tests.fixtures.redis import RedisServer

BOARD = "poison-board"
QUEUE = "poison-test"


@pytest.mark.parametrize(("deaths", "then"), [(1, AfterDeath.FRONT), (2, AfterDeath.BACK), (3, AfterDeath.QUARANTINE), (4, AfterDeath.QUARANTINE)])
def test_a_job_is_tried_again_twice_first_in_line_then_last_then_quarantined(deaths, then):
    assert poison.after_death(deaths) is then
    assert poison.quarantine_reason(3) == "a worker died 3 times on this file"


@pytest.fixture
def queue(redis_client) -> Queue:
    return upload_queue(redis_client, QUEUE)


def die_running(queue: Queue, job: Job) -> None:
    """What a worker SIGKILLed inside ``job`` leaves: the job started under a worker with no liveness key."""
    queue.remove(job.id)  # taken off the queue, wherever it stood
    worker = SimpleWorker([queue], connection=queue.connection, serializer=JSONSerializer, name=f"gone-{time.monotonic_ns()}")
    worker.prepare_execution(job)
    worker.prepare_job_execution(job)


def upload(queue: Queue, path: str, mtime_ns: int = 1) -> Job:
    job = enqueue_upload(queue, path, 100, mtime_ns)
    assert job is not None
    return job


def test_put_back_first_in_line_then_last_then_rejected_with_the_reason(queue, redis_client):
    bad = upload(queue, "bad.heic")
    others = [upload(queue, f"good-{i}.png").id for i in range(2)]

    die_running(queue, bad)
    assert maintenance.reap_dead_workers(redis_client, queue, BOARD) == [bad.id]
    assert queue.get_job_ids() == [bad.id, *others]  # one death: it keeps its place

    die_running(queue, bad)
    assert maintenance.reap_dead_workers(redis_client, queue, BOARD) == [bad.id]
    assert queue.get_job_ids() == [*others, bad.id]  # two: the rest goes first

    die_running(queue, bad)
    assert maintenance.reap_dead_workers(redis_client, queue, BOARD) == []
    assert queue.get_job_ids() == others
    assert not Job.exists(bad.id, connection=redis_client)
    assert rqcompat.started_entries(queue) == []
    ledger = Ledger(redis_client, BOARD)
    assert ledger.rejected([("bad.heic", 100, 1), ("bad.heic", 100, 2)]) == [True, False]  # a scan skips this version only
    record = ledger.rejection("bad.heic")
    assert record is not None and record["reason"] == "a worker died 3 times on this file" and record["deaths"] == 3


def test_a_worker_killed_before_the_job_code_leaves_it_queued_once(queue, redis_client):
    """Killed between RQ's two steps of starting a job: started, and still in the list of taken jobs."""
    job = upload(queue, "a.png")
    taken, _ = queue.dequeue_any([queue], timeout=None, connection=redis_client, serializer=JSONSerializer)
    assert taken is not None and taken.id == job.id
    SimpleWorker([queue], connection=redis_client, serializer=JSONSerializer, name="gone-early").prepare_execution(taken)
    assert rqcompat.intermediate_job_ids(queue) == [job.id]
    assert maintenance.reap_dead_workers(redis_client, queue, BOARD) == [job.id]
    assert rqcompat.intermediate_job_ids(queue) == []  # else rescue_taken_jobs would queue it a second time
    assert queue.get_job_ids() == [job.id]


def test_the_count_is_the_file_versions_and_outlives_its_job(queue, redis_client):
    first = upload(queue, "bad.heic", mtime_ns=1)
    for _ in range(2):
        die_running(queue, first)
        maintenance.reap_dead_workers(redis_client, queue, BOARD)
    first.delete()  # the job is gone (expired, or replaced): a scan queues the same version again
    again = upload(queue, "bad.heic", mtime_ns=1)
    assert again.id == first.id
    die_running(queue, again)
    maintenance.reap_dead_workers(redis_client, queue, BOARD)
    assert Ledger(redis_client, BOARD).rejected([("bad.heic", 100, 1)]) == [True]  # the third death, not a first

    edited = upload(queue, "bad.heic", mtime_ns=2)  # new bytes: a fresh chance
    die_running(queue, edited)
    assert maintenance.reap_dead_workers(redis_client, queue, BOARD) == [edited.id]
    assert queue.get_job_ids() == [edited.id]


def test_the_count_survives_a_redis_restart(tmp_path):
    server = RedisServer(tmp_path / "redis").start()  # AOF on, like the stack's
    try:
        client = server.client()
        queue = upload_queue(client, QUEUE)
        bad = upload(queue, "bad.heic")
        for _ in range(2):
            die_running(queue, bad)
            maintenance.reap_dead_workers(client, queue, BOARD)
        server.restart()
        client = server.client()
        queue = upload_queue(client, QUEUE)
        bad = Job.fetch(bad.id, connection=client, serializer=JSONSerializer)
        die_running(queue, bad)
        assert maintenance.reap_dead_workers(client, queue, BOARD) == []
        assert Ledger(client, BOARD).rejected([("bad.heic", 100, 1)]) == [True]
        assert 0 < client.ttl(keys.job_deaths(bad.id)) <= poison.DEATHS_TTL  # kept for a racing copy, not forever
        client.close()
    finally:
        server.stop()


def test_a_deletion_that_kills_its_workers_is_failed_with_the_reason(queue, redis_client):
    job = enqueue_removal(queue, "gone.png", "item-1")
    assert job is not None
    for _ in range(3):
        die_running(queue, job)
        maintenance.reap_dead_workers(redis_client, queue, BOARD)
    registry = FailedJobRegistry(queue=queue)
    assert registry.get_job_ids() == [job.id]
    assert failure_reason(Job.fetch(job.id, connection=redis_client, serializer=JSONSerializer)) == "a worker died 3 times on this file"
    assert Ledger(redis_client, BOARD).rejections() == {}


def test_jobs_interrupted_or_never_started_are_not_counted(queue, redis_client):
    interrupted = upload(queue, "a.png")
    worker = SimpleWorker([queue], connection=redis_client, serializer=JSONSerializer, name="alive-worker")
    queue.remove(interrupted.id)
    worker.prepare_execution(interrupted)
    worker.prepare_job_execution(interrupted)
    assert maintenance.requeue_own_jobs(redis_client, queue, "alive-worker") == [interrupted.id]

    taken = upload(queue, "b.png")
    redis_client.lrem(queue.key, 1, taken.id)
    redis_client.rpush(rqcompat.intermediate_key(queue), taken.id)  # what a worker killed before starting it left
    redis_client.hset(keys.TAKEN_UNSTARTED, taken.id, time.time() - 2 * maintenance.ALIVE_TTL)
    assert maintenance.rescue_taken_jobs(redis_client, queue) == [taken.id]

    assert redis_client.keys(keys.job_deaths("*")) == []


def test_retry_releases_a_quarantined_file_and_its_count(queue, redis_client, redis_url, tmp_path):
    settings = load_settings(needs=(), environ={"REDIS_URL": redis_url, "MIRO_BOARD_ID": BOARD, "QUEUE_NAME": QUEUE,
                                                "WATCH_FOLDER": str(tmp_path)})
    bad = upload(queue, "bad.heic")
    for _ in range(3):
        die_running(queue, bad)
        maintenance.reap_dead_workers(redis_client, queue, BOARD)
    Ledger(redis_client, BOARD).reject("broken.png", 5, 1, "not a picture")  # a bad file: not quarantined, not released
    assert list(retry.quarantined(redis_client, settings)) == ["bad.heic"]

    assert retry.release(redis_client, settings, ["bad.heic", "broken.png"]) == {"bad.heic": "a worker died 3 times on this file"}
    assert queue.get_job_ids() == [bad.id]
    assert not redis_client.exists(keys.job_deaths(bad.id))
    assert json.loads(redis_client.hget(keys.rejected(BOARD), "broken.png"))["reason"] == "not a picture"
    assert Ledger(redis_client, BOARD).rejection("bad.heic") is None
    die_running(queue, Job.fetch(bad.id, connection=redis_client, serializer=JSONSerializer))
    assert maintenance.reap_dead_workers(redis_client, queue, BOARD) == [bad.id]  # its tries are back
    assert queue.get_job_ids() == [bad.id]


def test_retry_all_leaves_quarantined_files_and_names_them(queue, redis_client, redis_url, tmp_path, monkeypatch, capsys):
    for name, value in {"MIRO_SYNC_ENV_FILE": "/nonexistent", "REDIS_URL": redis_url, "MIRO_BOARD_ID": BOARD, "QUEUE_NAME": QUEUE,
                        "WATCH_FOLDER": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    bad = upload(queue, "my bad.heic")
    for _ in range(3):
        die_running(queue, bad)
        maintenance.reap_dead_workers(redis_client, queue, BOARD)

    assert retry.run(argparse.Namespace(all=True, paths=[])) == 0
    assert capsys.readouterr().out.splitlines() == [
        "no failed jobs", "· my bad.heic stays quarantined (a worker died 3 times on this file): `miro-sync retry 'my bad.heic'` releases it"]
    assert queue.get_job_ids() == [] and redis_client.exists(keys.job_deaths(bad.id))

    assert retry.run(argparse.Namespace(all=False, paths=[str(tmp_path / "my bad.heic")])) == 0  # as a path to the file too
    assert capsys.readouterr().out == "✔ released my bad.heic (quarantined: a worker died 3 times on this file); queued again\n"
    assert queue.get_job_ids() == [bad.id]


def test_a_job_put_back_is_not_queued_again_under_the_next_worker_that_takes_it(queue, redis_client):
    """A sighting of the job in RQ's intermediate list from before its worker died is stale once the
    reaper has queued it again: the next worker to take it passes through that list, and an old
    sighting made the rescue queue it a second time, under that live worker (two workers, one job)."""
    job = upload(queue, "photo.png")
    die_running(queue, job)
    redis_client.hset(keys.TAKEN_UNSTARTED, job.id, redis_client.time()[0] - 60)  # seen stuck long ago
    assert maintenance.reap_dead_workers(redis_client, queue, BOARD) == [job.id]
    redis_client.lmove(queue.key, rqcompat.intermediate_key(queue))  # a live worker takes it (BLMOVE)
    assert maintenance.rescue_taken_jobs(redis_client, queue) == []
    assert queue.get_job_ids() == []
