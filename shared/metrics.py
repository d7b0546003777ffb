"""The counters behind `miro-sync metrics`, kept in Redis so they add up across every process.

Why Redis rather than prometheus-client's multiprocess mode: that mode sums per-process files in
one shared directory, which workers in other containers (or on other hosts, ``--scale worker=N``)
do not share, and a restarted worker's files must be cleaned up by hand. Every part of the stack
already shares Redis, so a counter is one ``HINCRBY`` there and the exporter
(:mod:`services.metrics`) reads them at each scrape through a custom collector.

Recording never fails an upload: a Redis error while counting is swallowed (the job itself will
meet Redis trouble soon enough and retry). Each ``record_*`` call is one pipelined round trip.

Layout (all under ``keys.METRICS_PREFIX``): one hash per counter, field = the JSON list of its
label values; one hash per histogram with fields ``b:<upper bound>`` (per-bucket counts, made
cumulative when read), ``sum`` and ``count``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

import redis

from . import keys
from .log import get_logger

log = get_logger("metrics")


class Outcome(str, Enum):
    """How a job's attempt ended, as the ``outcome`` label says it."""

    UPLOADED = "uploaded"  # a new item
    UPDATED = "updated"  # an edited file's item got the new bytes
    MOVED = "moved"  # a renamed or moved file kept its item
    DELETED = "deleted"  # a gone file's item handled as ON_DELETE says
    DUPLICATE = "duplicate"
    SKIPPED = "skipped"
    REJECTED = "rejected"
    RETRIED = "retried"
    HELD = "held"
    FAILED = "failed"


@dataclass(frozen=True)
class Counter:
    name: str
    help: str
    labels: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{keys.METRICS_PREFIX}:{self.name}"


@dataclass(frozen=True)
class Histogram:
    name: str
    help: str
    buckets: tuple[float, ...]

    @property
    def key(self) -> str:
        return f"{keys.METRICS_PREFIX}:{self.name}"


UPLOADS = Counter("miro_sync_uploads", "Upload job attempts, by route (file, url, none) and outcome.", ("route", "outcome"))
MIRO_ERRORS = Counter("miro_sync_miro_errors", "Error answers from Miro during uploads, by HTTP status and Miro code.", ("status", "code"))
RATE_LIMITED = Counter("miro_sync_rate_limited", "429 answers from Miro (every worker pauses until the reset).", ())
LATENCY = Histogram(
    "miro_sync_upload_latency_seconds",
    "Seconds from the file's last write (or its queueing, for a file already there) to its item on the board.",
    (0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600),
)
CONVERSION = Histogram(
    "miro_sync_conversion_seconds",
    "Seconds spent converting or downscaling a picture before upload (only pictures that needed it).",
    (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
)
COUNTERS = (UPLOADS, MIRO_ERRORS, RATE_LIMITED)
HISTOGRAMS = (LATENCY, CONVERSION)

QUEUED_LONG_AGO = 60.0
"""Seconds: a file whose last write is this much older than its queueing was already there
(start-up scan, backfill); its latency counts from the queueing, not from the write."""

_connection: redis.Redis | None = None


def use(connection: redis.Redis | None) -> None:
    """The Redis the ``record_*`` calls of this process write to (the worker sets it at start)."""
    global _connection
    _connection = connection


def _write(commands: Iterable[tuple[str, str, str, float]], last_upload: float | None = None) -> None:
    if _connection is None:
        return
    try:
        with _connection.pipeline(transaction=False) as pipe:
            for op, key, field, amount in commands:
                if op == "int":
                    pipe.hincrby(key, field, int(amount))
                else:
                    pipe.hincrbyfloat(key, field, amount)
            if last_upload is not None:
                pipe.set(keys.LAST_UPLOAD_AT, repr(last_upload))
            pipe.execute()
    except redis.RedisError as exc:
        log.debug("metrics.lost", error=str(exc))


def _count(counter: Counter, *values: object) -> tuple[str, str, str, float]:
    return ("int", counter.key, json.dumps([str(v) for v in values]), 1)


def _observe(histogram: Histogram, seconds: float) -> list[tuple[str, str, str, float]]:
    bound = next((b for b in histogram.buckets if seconds <= b), None)
    field = f"b:{bound!r}" if bound is not None else "b:+Inf"
    return [("int", histogram.key, field, 1), ("int", histogram.key, "count", 1), ("float", histogram.key, "sum", seconds)]


def latency_start(mtime_ns: int, enqueued_at: datetime | None) -> float:
    """When the file was ready: its last write, unless it was queued long after (a backfill).

    ``enqueued_at`` is RQ's job attribute (a naive UTC datetime).
    """
    written = mtime_ns / 1e9
    if enqueued_at is None:
        return written
    queued = (enqueued_at if enqueued_at.tzinfo else enqueued_at.replace(tzinfo=UTC)).timestamp()
    return queued if queued - written > QUEUED_LONG_AGO else written


def record_upload(route: str | None, outcome: Outcome, ready_at: float | None = None) -> None:
    """One job attempt ended; ``ready_at`` (see :func:`latency_start`) for an item just created."""
    commands = [_count(UPLOADS, route or "none", outcome.value)]
    now = time.time()
    if ready_at is not None:
        commands += _observe(LATENCY, max(0.0, now - ready_at))
    _write(commands, last_upload=now if outcome in (Outcome.UPLOADED, Outcome.UPDATED) else None)


def record_miro_error(status: int | None, code: str | None) -> None:
    """Miro answered an upload's call with an error (``status`` None: no answer at all)."""
    commands = [_count(MIRO_ERRORS, status if status is not None else "none", code or "none")]
    if status == 429:
        commands.append(_count(RATE_LIMITED))
    _write(commands)


def record_conversion(seconds: float) -> None:
    _write(_observe(CONVERSION, seconds))


# --- reading (the exporter, tests) -----------------------------------------------------------


def read_counter(connection: redis.Redis, counter: Counter) -> dict[tuple[str, ...], int]:
    raw = connection.hgetall(counter.key)
    return {tuple(json.loads(field)): int(value) for field, value in raw.items()}


def read_histogram(connection: redis.Redis, histogram: Histogram) -> tuple[list[tuple[str, int]], float, int]:
    """Cumulative ``(le, count)`` buckets ending with ``+Inf``, the sum and the count."""
    raw = {k.decode() if isinstance(k, bytes) else k: v for k, v in connection.hgetall(histogram.key).items()}
    running, buckets = 0, []
    for bound in histogram.buckets:
        running += int(raw.get(f"b:{bound!r}", 0))
        buckets.append((repr(float(bound)), running))
    running += int(raw.get("b:+Inf", 0))
    buckets.append(("+Inf", running))
    return buckets, float(raw.get("sum", 0.0)), int(raw.get("count", 0))
