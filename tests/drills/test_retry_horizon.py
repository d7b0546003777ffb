"""Drill: Miro answering 500 for good; a job retries until RETRY_HORIZON, then fails with the reason.

The horizon counts from the job's first failure (``first_failed_at`` in the job's meta), which must
survive every retry: were it reset on each attempt, the job would retry for ever.
"""

from __future__ import annotations

import rq
from rq.serializers import JSONSerializer

from tests.fixtures.procs import wait_for

HORIZON = 5  # seconds


def test_a_job_fails_after_the_retry_horizon_not_before(rig):
    rig.sandbox.set_faults(error_status=500)  # until cleared: never
    rig.start_watcher()
    rig.start_worker(RETRY_HORIZON=str(HORIZON))
    rig.drop(1)

    queue = rq.Queue("miro-sync", connection=rig.redis, serializer=JSONSerializer)
    failed = wait_for(lambda: queue.failed_job_registry.get_job_ids(), HORIZON + 60, interval=0.2,
                      what=lambda: "the job to fail\n" + rig.tail())
    assert len(failed) == 1
    job = queue.fetch_job(failed[0])
    result = job.latest_result()
    assert f"gave up after {HORIZON}s of retries" in result.exc_string, result.exc_string

    # A retry after a 5xx first looks for an item the failed create may have made (a list call).
    calls = [r for r in rig.sandbox.requests() if r["path"].startswith("/v2/")]
    calls = calls[next(i for i, r in enumerate(calls) if r["method"] == "POST"):]  # from the first create on
    assert all(r["status"] == 500 for r in calls), calls
    retries = rig.events("upload.retry")
    assert len(retries) >= 2, retries
    # first_failed_at is the first attempt's failure and stayed so: the last attempt came at the horizon.
    first_failed_at = float(job.meta["first_failed_at"])
    assert abs(first_failed_at - calls[0]["done_at"]) < 2, (first_failed_at, calls[0])
    assert calls[-1]["at"] - first_failed_at >= HORIZON - 1, (first_failed_at, calls[-1])
    assert len(rig.events("upload.failed")) == 1
    assert rig.items() == [] and rig.pending_jobs() == {}
    rig.stop_all_cleanly()
