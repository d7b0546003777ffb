"""What a worker process builds once and reuses for every job: settings, Redis, Miro client, limiter.

Jobs run in the worker's own process (no fork per job), so the HTTP session, the Redis pool and
the imported libraries are warm for every upload.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cached_property

import redis
from rq import Queue

from shared.jobs import upload_queue
from shared.ledger import Ledger
from shared.miro import MiroClient
from shared.ratelimit import CreditLimiter
from shared.settings import Settings, load_settings
from shared.tokens import token_source
from shared.tunnel import TunnelState

from .breaker import TunnelCircuit


class Stopping(Exception):
    """The worker was asked to stop while a job waited (for credits): the job is given back, not finished."""


@dataclass
class WorkerContext:
    settings: Settings
    redis: redis.Redis
    worker_name: str = ""
    stopping: threading.Event = field(default_factory=threading.Event)
    """Set by SIGTERM/SIGINT: a wait inside a job (a rate-limit pause may last minutes) ends at once."""

    def pause(self, seconds: float) -> None:
        """Sleep, unless the worker is stopping: then raise :class:`Stopping` (nothing was sent yet)."""
        if self.stopping.wait(seconds):
            raise Stopping()

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.redis, self.settings.miro_board_id)

    @cached_property
    def jobs(self) -> Queue:
        return upload_queue(self.redis, self.settings.queue_name)

    @cached_property
    def limiter(self) -> CreditLimiter:
        return CreditLimiter.from_settings(self.redis, self.settings, sleep=self.pause)

    @cached_property
    def miro(self) -> MiroClient:
        return MiroClient(self.settings.miro_api_url, token_source(self.settings, self.redis), on_rate=self.limiter.observe)

    @cached_property
    def tunnel(self) -> TunnelState:
        return TunnelState(self.redis, self.settings)

    @cached_property
    def circuit(self) -> TunnelCircuit:
        return TunnelCircuit(self.redis, self.settings.circuit_limits, self.tunnel)


_context: WorkerContext | None = None


def get_context() -> WorkerContext:
    """The process's context, built on first use (the worker's start-up builds it before any job)."""
    global _context
    if _context is None:
        settings = load_settings()
        _context = WorkerContext(settings=settings, redis=redis.Redis.from_url(settings.redis_url, health_check_interval=30))
    return _context


def set_context(context: WorkerContext | None) -> None:
    global _context
    _context = context
