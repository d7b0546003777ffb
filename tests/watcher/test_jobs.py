"""shared.jobs.enqueue_upload against a real Redis, inspected with rq."""

from __future__ import annotations

import hashlib

from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from shared.jobs import FAILURE_TTL, RESULT_TTL, UPLOAD_FUNCTION, enqueue_upload, job_id, upload_queue


def test_job_id_is_the_documented_hash():
    digest = hashlib.sha256(b"sub/a b.png\x0012345\x001700000000123456789").hexdigest()
    assert job_id("sub/a b.png", 12345, 1700000000123456789) == "img-" + digest[:40]
    assert job_id("a.png", 1, 2) != job_id("a.png", 1, 3) != job_id("a.png", 2, 2)


def test_enqueue_builds_the_contract_job(redis_client):
    queue = upload_queue(redis_client, "q-test")
    job = enqueue_upload(queue, "sub/a b.png", 12345, 1700000000123456789, job_timeout=77)
    assert job is not None and job.id == job_id("sub/a b.png", 12345, 1700000000123456789)
    stored = Job.fetch(job.id, connection=redis_client, serializer=JSONSerializer)
    assert stored.func_name == UPLOAD_FUNCTION
    assert stored.args == ["sub/a b.png", 12345, 1700000000123456789]
    assert (stored.timeout, stored.result_ttl, stored.failure_ttl) == (77, RESULT_TTL, FAILURE_TTL)
    assert stored.description == "sub/a b.png"
    assert queue.job_ids == [job.id]


def test_same_version_twice_gives_one_job(redis_client):
    queue = upload_queue(redis_client, "q-test")
    assert enqueue_upload(queue, "a.png", 10, 20) is not None
    assert enqueue_upload(queue, "a.png", 10, 20) is None
    assert enqueue_upload(queue, "a.png", 10, 21) is not None  # a new version is a new job
    assert len(queue.job_ids) == 2


def test_failed_job_is_left_for_the_dashboard(redis_client):
    queue = upload_queue(redis_client, "q-test")
    job = enqueue_upload(queue, "a.png", 10, 20)
    queue.remove(job.id)
    FailedJobRegistry(queue=queue).add(job, exc_string="boom")
    job.set_status(JobStatus.FAILED)
    assert enqueue_upload(queue, "a.png", 10, 20) is None
    assert queue.job_ids == []
    assert Job.fetch(job.id, connection=redis_client, serializer=JSONSerializer).get_status() == JobStatus.FAILED


def test_a_finished_version_asked_for_again_runs_again(redis_client):
    """The caller only asks for unsynced versions: a finished job means the path lost its entry since."""
    queue = upload_queue(redis_client, "q-test")
    job = enqueue_upload(queue, "a.png", 10, 20)
    queue.remove(job.id)
    job.set_status(JobStatus.FINISHED)
    again = enqueue_upload(queue, "a.png", 10, 20)
    assert again is not None and again.id == job.id and queue.job_ids == [job.id]
    assert again.get_status() == JobStatus.QUEUED


def test_removal_jobs_are_once_per_path_and_item(redis_client):
    from shared.jobs import REMOVE_FUNCTION, enqueue_removal

    queue = upload_queue(redis_client, "q-test")
    job = enqueue_removal(queue, "gone.png", "345")
    assert job is not None and job.func_name == REMOVE_FUNCTION and list(job.args) == ["gone.png", "345"]
    assert enqueue_removal(queue, "gone.png", "345") is None
    assert enqueue_removal(queue, "gone.png", "346") is not None
