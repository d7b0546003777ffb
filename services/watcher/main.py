"""`miro-sync watch`: watch WATCH_FOLDER and queue an upload job for each new image.

Exit codes: 0 after SIGTERM/SIGINT (or ``--once``), 1 when the observer dies, 2 on a
configuration problem (one line on stderr, from the CLI).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
import time

import redis

from shared import keys, redis_down
from shared.jobs import upload_queue
from shared.ledger import Ledger
from shared.log import configure, get_logger, register_secrets
from shared.preflight import check_board
from shared.settings import Need, load_settings

from .observer import start_observer
from .watcher import EVENT_TYPES, Watcher

log = get_logger("watcher")

REDIS_WAIT_SECONDS = 60.0
ALIVE_TTL = 15
"""Seconds the watcher counts as alive after its loop last refreshed its key (`miro-sync health watcher`)."""


class Liveness:
    """Refreshes the watcher's liveness key, at most once a second; a Redis error is left to the loop."""

    def __init__(self, connection: redis.Redis) -> None:
        self.connection = connection
        self.key = keys.watcher_alive(f"{socket.gethostname()}-{os.getpid()}")
        self.last = 0.0

    def beat(self) -> None:
        now = time.monotonic()
        if now - self.last < 1.0:
            return
        try:
            self.connection.set(self.key, "1", ex=ALIVE_TTL)
            self.last = now
        except redis.RedisError:
            pass

    def clear(self) -> None:
        try:
            self.connection.delete(self.key)
        except redis.RedisError:
            pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--once", action="store_true", help="scan the folder once, queue what is new, and exit (no watching)")


def run(args: argparse.Namespace) -> int:
    # The watcher uploads nothing: it needs the board id (the ledger's key) but not the token.
    settings = load_settings(needs=(Need.BOARD, Need.FOLDER))
    register_secrets(settings.secrets)
    configure(settings.log_level, settings.log_format)
    if settings.miro_access_token or settings.oauth:
        # Given a token (compose passes the whole .env), refuse a wrong token or board as the
        # workers do, rather than fill the queue for uploads that cannot happen.
        verdict = check_board(settings)
        if verdict.fatal:
            print(f"miro-sync watch: {verdict.detail}", file=sys.stderr)
            return 2

    stop = threading.Event()
    connection = redis.Redis.from_url(settings.redis_url, health_check_interval=30)
    watcher = Watcher(
        folder=settings.watch_folder,
        ledger=Ledger(connection, settings.miro_board_id),
        jobs=upload_queue(connection, settings.queue_name),
        settle_seconds=settings.settle_seconds,
        rescan_interval=settings.rescan_interval,
        job_timeout=settings.job_timeout,
        close_events=False,  # set once the observer is known
        delete_settle=settings.delete_settle,
        max_delete=settings.max_delete,
        folders=settings.folders,
    )

    watcher.progress_every = settings.scan_progress_seconds
    watcher.redis_url = settings.redis_url
    liveness = Liveness(connection)
    watcher.heartbeat = liveness.beat

    def on_signal(signum, _frame):
        stop.set()
        watcher.wake()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if not redis_down.wait_until_answers(connection, settings.redis_url, log, pause=stop.wait, give_up_after=REDIS_WAIT_SECONDS):
        return 0 if stop.is_set() else 1
    watcher.ledger.migrate()  # a ledger of the first layout is brought into the path model, once

    if args.once:
        stats = watcher.scan()
        watcher.settle_all(stop)  # files written moments before the scan are taken once still, not left behind
        log.info("watch.scan", **stats.fields())
        return 0

    # Watch first, then scan: a file arriving during the scan is seen by one or the other.
    observer = start_observer(settings.watch_mode, settings.watch_folder, watcher.handler(), settings.poll_interval, EVENT_TYPES)
    watcher.close_events = "Inotify" in type(observer).__name__
    log.info("watch.started", folder=str(settings.watch_folder), mode=settings.watch_mode.value, observer=type(observer).__name__,
             board=settings.miro_board_id, queue=settings.queue_name)
    def alive() -> bool:
        ok = observer.is_alive() and all(e.is_alive() for e in observer.emitters)
        if ok:
            liveness.beat()
        return ok

    try:
        healthy = watcher.run(stop, alive=alive)
    finally:
        liveness.clear()
        observer.stop()
        observer.join(timeout=5)
    if not healthy:
        log.error("watch.failed", reason="the file observer stopped (was the folder removed or unmounted?)")
        return 1
    log.info("watch.stopped")
    return 0
