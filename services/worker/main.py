"""`miro-sync worker`: an RQ worker for the upload queue.

It runs jobs in its own process (RQ's SimpleWorker: no fork per job). A fork per job costs about
40 ms here, more than everything else an upload does on our side, and buys isolation we do not
need: the job code is ours, and the worker keeps its Miro session and Redis pool warm. Job
timeouts still apply (SIGALRM), and the upkeep thread gives the liveness that SimpleWorker lacks.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
import uuid

import redis
from rq import Queue, SimpleWorker
from rq.exceptions import StopRequested

from shared import redis_down
from shared.jobs import upload_queue
from shared.log import configure, get_logger, register_secrets
from shared.preflight import check_board
from shared.ratelimit import Cost
from shared.settings import load_settings

from . import hold, rqcompat
from .context import WorkerContext, set_context
from .maintenance import Upkeep, redis_trouble, refresh_alive, requeue_own_jobs
from .verify import Verifier

log = get_logger("worker")


PUBSUB_WAIT = 0.5
"""Seconds RQ's command listener thread waits per round: how long a stop may wait for it (RQ: 60)."""


class MiroSyncWorker(SimpleWorker):
    """Waits, instead of taking jobs, while Miro refuses the token (see :mod:`hold`)."""

    context: WorkerContext

    @property
    def stopping(self) -> bool:
        return self.context.stopping.is_set()

    def subscribe(self) -> None:
        rqcompat.subscribe(self, PUBSUB_WAIT)

    def handle_warm_shutdown_request(self) -> None:
        # RQ marks a stop (rqcompat.stop_requested) only when a job is running; an idle worker just leaves
        # ``work()``, which would look like a Redis hiccup to ``run`` and start a new loop. The job
        # running, if any, sees the event in its waits and is given back (tasks.py).
        self.context.stopping.set()
        super().handle_warm_shutdown_request()

    def check_for_suspension(self, burst: bool) -> None:
        if self.stopping:  # asked before RQ's own signal handlers were in place
            raise StopRequested()
        super().check_for_suspension(burst)
        announced = False
        while not self.stopping and (held := hold.blocked(self.context)):
            if not announced:
                log.warning("worker.holding", worker=self.name, reason=held["message"])
                announced = True
            if hold.recheck(self.context) or self.context.stopping.wait(1):
                break


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--burst", action="store_true", help="exit when the queue is empty (default: run until stopped)")
    parser.add_argument("--name", help="worker name (default: host-pid-random)")
    parser.add_argument("--skip-checks", action="store_true", help="do not check the token and board at start-up")


def wait_for_redis(connection: redis.Redis, url: str, stop: threading.Event) -> bool:
    """Block until Redis answers (compose may start us first), saying so every 30 s meanwhile.

    False when ``stop`` was set first.
    """
    return redis_down.wait_until_answers(connection, url, log, pause=stop.wait, on_failure=redis_trouble)


def _stop_on_signals(stop: threading.Event) -> None:
    """Outside RQ's loop (start-up, waiting for Redis), SIGTERM/SIGINT only ask for a stop: nothing
    runs then that a signal should cut short, and RQ installs its own handlers in ``work()``."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())


def _after_broken_loop(connection: redis.Redis, queue: Queue, worker: MiroSyncWorker) -> None:
    try:
        # A registration left without its death makes RQ refuse the next loop under the same name.
        worker.register_death()
    except redis.RedisError:
        pass
    requeue_own_jobs(connection, queue, worker.name)


def check_miro(ctx: WorkerContext) -> str | None:
    """None when the token and board are fine (or Miro is unreachable for now), else the reason.

    With no usable stored token pair the worker starts and holds, so that `miro-sync login`
    resumes it without a restart.
    """
    ctx.limiter.acquire(Cost.BOARD_GET)
    verdict = check_board(ctx.settings, ctx.miro)
    if verdict.fatal:
        return verdict.detail
    if verdict.login:
        hold.block_for(ctx, verdict.detail)
    elif not verdict.ok:
        log.warning("miro.unavailable", reason=verdict.detail)
    elif hold.blocked(ctx):
        hold.lift(ctx.redis)
        log.info("miro.token_accepted", action="hold lifted at start-up")
    return None


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    configure(settings.log_level, settings.log_format)
    register_secrets(settings.secrets)
    connection = redis.Redis.from_url(settings.redis_url, health_check_interval=30)
    name = args.name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    ctx = WorkerContext(settings=settings, redis=connection, worker_name=name)
    set_context(ctx)
    _stop_on_signals(ctx.stopping)
    if not wait_for_redis(connection, settings.redis_url, ctx.stopping):
        return 0
    ctx.ledger.migrate()  # a ledger of the first layout is brought into the path model, once

    if not args.skip_checks:
        problem = check_miro(ctx)
        if problem:
            print(f"miro-sync worker: {problem}", file=sys.stderr)
            return 2

    # Pictures are decoded in a converter child (shared.image.isolated): started now, it loads the
    # decoders while the worker connects, so the first job does not wait for it.
    from shared.image import isolated

    isolated.converter().start()
    if ctx.stopping.is_set():
        return 0

    queue = upload_queue(connection, settings.queue_name)
    refresh_alive(connection, name)
    upkeep = Upkeep(connection, queue, name, settings.miro_board_id)
    upkeep.start()
    verifier = Verifier(ctx)
    verifier.start()
    log.info("worker.started", worker=name, queue=settings.queue_name, board=settings.miro_board_id, mode=settings.upload_mode.value)
    try:
        while True:
            worker = MiroSyncWorker([queue], connection=connection, name=name, serializer=queue.serializer)
            worker.context = ctx
            worker.log_job_description = False
            try:
                worker.work(burst=args.burst, logging_level="WARNING", with_scheduler=False)
            except redis.RedisError as exc:  # raised by RQ's own teardown when Redis is gone
                log.warning("worker.redis_lost", worker=name, error=str(exc))
            _stop_on_signals(ctx.stopping)  # RQ's handlers would raise StopRequested where nothing catches it
            if args.burst or worker.stopping or rqcompat.stop_requested(worker):
                break
            # RQ leaves its loop on an unexpected Redis error (e.g. Redis restarting): wait, tidy
            # up what the broken loop left (its registration, the job it was running), go on.
            if not wait_for_redis(connection, settings.redis_url, ctx.stopping):
                break
            _after_broken_loop(connection, queue, worker)
    finally:
        verifier.stop()
        upkeep.stop()
    log.info("worker.stopped", worker=name)
    return 0
