"""`miro-sync metrics`: Prometheus metrics of the whole stack, served on METRICS_BIND.

A custom collector reads, at each scrape, the counters every worker keeps in Redis
(:mod:`shared.metrics`) and the live gauges (queue depth by state, credits left, workers alive,
files synced). The endpoint is its own process, bound to loopback by default (the compose file
publishes it on 127.0.0.1 only): the image server, which the tunnel makes public, never serves it.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, cast
from wsgiref.simple_server import WSGIRequestHandler, make_server

import redis
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import Collector

from shared import keys, redis_down
from shared import metrics as m
from shared.log import configure, get_logger
from shared.status import credits_left
from shared.status_read import queue_sizes

from .status import StatusReader, settings_for_reading

log = get_logger("metrics")


class RedisCollector(Collector):
    def __init__(self, reader: StatusReader) -> None:
        self.reader = reader

    def collect(self) -> Iterator[Metric]:
        connection, board = self.reader.connection, self.reader.settings.miro_board_id
        # Redis away fails the whole scrape (see serving_app): an empty one (and `up` still 1) would look like zero.
        yield from self._counters(connection)
        yield from self._gauges(connection, board)

    def _counters(self, connection: redis.Redis) -> Iterator[Metric]:
        for counter in m.COUNTERS:
            family = CounterMetricFamily(counter.name, counter.help, labels=list(counter.labels))
            for values, count in sorted(m.read_counter(connection, counter).items()):
                family.add_metric(list(values), count)
            yield family
        for histogram in m.HISTOGRAMS:
            buckets, total, _count = m.read_histogram(connection, histogram)
            yield HistogramMetricFamily(histogram.name, histogram.help, buckets=buckets, sum_value=total)

    def _gauges(self, connection: redis.Redis, board: str) -> Iterator[Metric]:
        depth = GaugeMetricFamily("miro_sync_queue_depth", "Upload jobs by state (queued, in_flight, scheduled, failed).", labels=["state"])
        for state, count in queue_sizes(connection, self.reader.queue).items():
            depth.add_metric([state], count)
        yield depth
        seconds, micros = connection.time()
        raw = cast("dict[bytes, bytes]", connection.hgetall(keys.RATE_BUCKET))  # this connection answers bytes
        bucket = {k.decode(): v.decode() for k, v in raw.items()}
        left = credits_left(bucket, seconds + micros / 1e6, self.reader.rate, self.reader.capacity)
        credits = GaugeMetricFamily("miro_sync_credits_left", "Miro credits left in the shared budget (full before the first call).")
        credits.add_metric([], self.reader.capacity if left is None else left)
        yield credits
        alive = sum(1 for _ in connection.scan_iter(match=keys.worker_alive("*"), count=500))
        yield GaugeMetricFamily("miro_sync_workers_alive", "Workers refreshing their liveness key.", value=alive)
        yield GaugeMetricFamily("miro_sync_synced_files", "Files with a ledger entry (on the board).", value=connection.hlen(keys.ledger_paths(board)))
        yield GaugeMetricFamily("miro_sync_rejected_files", "Files refused as bad.", value=connection.hlen(keys.rejected(board)))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bind", default=None, metavar="HOST:PORT", help="where to listen (default: METRICS_BIND, else 127.0.0.1:9108)")


def build_registry(reader: StatusReader) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(reader))
    return registry


def serving_app(registry: CollectorRegistry, redis_url: str) -> Callable:
    """prometheus_client's WSGI app; a scrape while Redis is away gets a 503 with the one line, not a traceback."""
    inner = make_wsgi_app(registry)
    reminder = redis_down.Reminder()

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        try:
            return inner(environ, start_response)  # it collects everything before it starts the response
        except redis.RedisError as exc:
            if reminder.due():
                log.warning("redis.unavailable", **redis_down.fields(redis_url, exc))
            start_response("503 Service Unavailable", [("Content-Type", "text/plain; charset=utf-8")])
            return [(redis_down.problem(redis_url, exc) + "\n").encode()]

    return app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # a line per scrape says nothing
        pass


def run(args: argparse.Namespace) -> int:
    settings = settings_for_reading()
    configure(settings.log_level, settings.log_format)
    bind = args.bind or settings.metrics_bind
    host, _, port = bind.rpartition(":")
    reader = StatusReader(settings)
    redis_down.say_if_down(reader.connection, settings.redis_url, log, "scrapes answer 503 with this line")
    app = serving_app(build_registry(reader), settings.redis_url)
    server = make_server(host or "127.0.0.1", int(port), app, ThreadingWSGIServer, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="metrics-http")
    thread.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log.info("metrics.started", bind=bind, path="/metrics")
    stop.wait()
    server.shutdown()
    thread.join(5)
    log.info("metrics.stopped")
    return 0
