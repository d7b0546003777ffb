"""Drill: what the queue stores in Redis is JSON, never pickle, and carries only (relative path, size, mtime).

A pickle read from Redis runs code chosen by whoever can write to Redis; the JSON serializer is
used by the watcher, the workers and the dashboard (docs/architecture.md, "Queue and jobs").
"""

from __future__ import annotations

import json
import zlib

from tests.fixtures.procs import wait_for

from .redis_dump import decodings, is_pickle, raw_values


def test_every_job_record_is_json_with_only_relative_paths(rig):
    rig.start_watcher()
    rig.start_workers(1)
    expected = rig.drop(3)  # finished jobs, with results
    rig.wait_items(3)
    rig.sandbox.set_faults(error_status=400)  # refused: a failed job, with its exception text
    rig.drop(1, start=10, prefix="refused")
    wait_for(lambda: rig.failed_jobs() == 1, 20, what="a failed job")
    rig.sandbox.set_faults(error_status=503)  # a retried job, with meta: 503s until the job has met one
    expected |= rig.drop(1, start=20, prefix="retried")
    wait_for(lambda: rig.events("upload.retry"), 30, what="the job to meet the 503")
    rig.sandbox.clear_faults()
    rig.wait_items(4, timeout=30)
    rig.wait_idle()
    rig.assert_each_once(expected)  # the refused file is not on the board; its job failed (below)
    assert rig.events("upload.failed") and rig.failed_jobs() == 1

    pickles = [key for key, value in raw_values(rig.redis) if any(is_pickle(d) for d in decodings(value))]
    assert pickles == []

    jobs = [k for k in rig.redis.scan_iter("rq:job:*") if rig.redis.type(k) == b"hash"]
    assert len(jobs) == 5
    folder = str(rig.folder).encode()
    for key in jobs:
        job = rig.redis.hgetall(key)
        func, instance, args, kwargs = json.loads(zlib.decompress(job[b"data"]))
        assert func == "services.worker.tasks.upload_image" and instance is None and kwargs == {}
        path, size, mtime_ns = args
        assert not path.startswith("/") and isinstance(size, int) and isinstance(mtime_ns, int)
        if b"meta" in job:
            json.loads(job[b"meta"])
        assert not any(folder in d for v in job.values() for d in decodings(v)), "an absolute path is stored"
    results = list(rig.redis.scan_iter("rq:results:*"))
    assert results
    for key in results:
        for _, fields in rig.redis.xrange(key):
            if b"return_value" in fields:
                json.loads(decodings(fields[b"return_value"])[1])
    rig.stop_all_cleanly()
