"""Read what `miro-sync status` and the metrics exporter report, from Redis, into a Snapshot.

Only reads: registry sizes are taken with ZCARD, not RQ's ``count`` (which cleans registries up,
moving jobs, as a side effect). Counting is :func:`shared.status.summarize`'s job.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

import redis
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from . import keys
from .status import RECENT, FailedJob, Snapshot


def _text(value: bytes | str | None) -> str | None:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _names(connection: redis.Redis, pattern: str) -> list[str]:
    prefix = pattern.rstrip("*")
    return sorted(_text(k)[len(prefix):] for k in connection.scan_iter(match=pattern, count=500))  # type: ignore[index]


def timestamp(moment: datetime | None) -> float | None:
    """RQ's naive UTC datetimes as UNIX time."""
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def failure_reason(job: Job) -> str:
    """The last line of the job's exception, without the exception's class name."""
    text = (job.exc_info or "").strip()
    last = text.splitlines()[-1] if text else "failed (no reason recorded)"
    head, sep, rest = last.partition(": ")
    return rest if sep and " " not in head else last


def recent_failed(connection: redis.Redis, queue: Queue, count: int = RECENT) -> list[FailedJob]:
    # The registry's score is when the entry expires: the highest scores failed last.
    ids = [_text(i) for i in cast("list[bytes]", connection.zrange(FailedJobRegistry(queue=queue).key, -count, -1))]
    jobs = Job.fetch_many([i for i in ids if i], connection=connection, serializer=queue.serializer)
    return [FailedJob(path=job.description or (job.args[0] if job.args else job.id), reason=failure_reason(job), at=timestamp(job.ended_at))
            for job in jobs if job is not None]


def queue_sizes(connection: redis.Redis, queue: Queue) -> dict[str, int]:
    with connection.pipeline(transaction=False) as pipe:
        pipe.llen(queue.key)
        for registry in (StartedJobRegistry, ScheduledJobRegistry, FailedJobRegistry):
            pipe.zcard(registry(queue=queue).key)
        queued, started, scheduled, failed = pipe.execute()
    return {"queued": queued, "in_flight": started, "scheduled": scheduled, "failed": failed}


def read_snapshot(connection: redis.Redis, board_id: str, queue: Queue, credit_rate: float, credit_capacity: float) -> Snapshot:
    """One look at Redis (the ledger's paths are listed, for the per-folder counts)."""
    seconds, micros = connection.time()  # one clock with the workers
    with connection.pipeline(transaction=False) as pipe:
        pipe.hkeys(keys.ledger_paths(board_id))
        pipe.hgetall(keys.rejected(board_id))
        pipe.zcard(keys.verify_pending(board_id))
        pipe.get(keys.AUTH_BLOCKED)
        pipe.hgetall(keys.RATE_BUCKET)
        pipe.get(keys.RATE_PAUSE_UNTIL)
        pipe.get(keys.TUNNEL_PROBE)
        pipe.get(keys.TUNNEL_CIRCUIT)
        pipe.get(keys.LAST_UPLOAD_AT)
        paths, rejected, verify, blocked, bucket, pause, probe, circuit, last = pipe.execute()
    sizes = queue_sizes(connection, queue)
    return Snapshot(
        now=seconds + micros / 1e6,
        synced_paths=[_text(p) for p in paths],  # type: ignore[misc]
        rejected={_text(k): _text(v) for k, v in rejected.items()},  # type: ignore[misc]
        queued=sizes["queued"],
        in_flight=sizes["in_flight"],
        scheduled=sizes["scheduled"],
        failed=sizes["failed"],
        recent_failed=recent_failed(connection, queue) if sizes["failed"] else [],
        verify_pending=int(verify),
        auth_blocked=_text(blocked),
        workers_alive=_names(connection, keys.worker_alive("*")),
        watchers_alive=_names(connection, keys.watcher_alive("*")),
        bucket={_text(k): _text(v) for k, v in bucket.items()},  # type: ignore[misc]
        credit_rate=credit_rate,
        credit_capacity=credit_capacity,
        pause_until=_text(pause),
        tunnel_probe=_text(probe),
        tunnel_circuit=_text(circuit),
        last_upload_at=_text(last),
    )
