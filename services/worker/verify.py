"""Deferred verification of pictures created by URL: a thread in every worker, beside upkeep.

After a URL create the job records the item as ``unverified``, schedules a check ``VERIFY_GRACE``
seconds later (:mod:`.pending`) and ends: no worker waits for Miro's fetch. Here, every ``TICK``,
a verifier claims the checks that are due, from any worker of the board, and for each

* passes it when the image server has served the signed URL in full (``keys.served``): ``verified``;
* otherwise counts a failed verification against the tunnel circuit (:mod:`.breaker`) and repairs
  the item by file, a multipart PATCH of the same item (same id, same position): ``repaired``.

Why a thread and not a scheduled RQ job: a check is one Redis read, and a job would queue behind a
burst of uploads (FIFO) and cost an RQ round trip each. Why not the upkeep thread itself: a repair
is an upload that may take seconds, and upkeep must refresh the worker's liveness every second or
the worker is judged dead and its job run twice. The verifier has its own Miro session and Redis
pool (:class:`WorkerContext` copy); the shared credit limiter paces its calls with the jobs'.

The check is durable (a claimed one comes back when its lease ends), and repeating it is harmless.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import redis

from shared.image import isolated
from shared.imagetype import BadImage
from shared.ledger import Delivery
from shared.log import get_logger
from shared.miro import MiroBadRequest, MiroError, MiroNotFound, MiroRateLimited
from shared.ratelimit import RateLimitTimeout

from .context import WorkerContext
from .maintenance import redis_trouble
from .pending import Pending, PendingChecks
from .routes import repair_by_file, served_in_full
from .uploader import Superseded, file_sha256, resolve_in_folder

log = get_logger("worker")

TICK = 0.5
"""Seconds between two looks for due checks."""
BATCH = 8
"""Checks one verifier claims at a time."""
RETRY_CAP = 300.0
"""Seconds, at most, before a repair that Miro refused for now (5xx, 429, network) is tried again."""


def lease(ctx: WorkerContext) -> float:
    """Seconds a claimed check stays with its verifier: longer than one repair upload may take."""
    return float(ctx.settings.job_timeout)


class Verifier(threading.Thread):
    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__(name="verifier", daemon=True)
        # Its own Miro session and Redis pool: requests sessions are not shared between threads.
        self.ctx = WorkerContext(settings=ctx.settings, redis=redis.Redis.from_url(ctx.settings.redis_url, health_check_interval=30),
                                 worker_name=ctx.worker_name)
        self.checks = PendingChecks(self.ctx.redis, ctx.settings.miro_board_id)
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(TICK):
            try:
                self.tick()
            except redis.RedisError as exc:  # Redis restarting: claimed checks come back when their lease ends
                redis_trouble()
                log.debug("verify.redis_error", error=str(exc))
            except Exception:
                log.exception("verify.error")

    def tick(self) -> None:
        circuit = self.ctx.circuit
        state = circuit.current()
        if state.is_open and (state.until is None or time.time() >= state.until):
            # No upload may come to probe again: re-test here, so the URL route resumes on its own.
            circuit.after_probe(self.ctx.tunnel.usable())
        for pending in self.checks.claim(time.time(), lease(self.ctx), BATCH):
            if self.stopped.is_set():
                self.checks.schedule(pending, time.time())  # hand it back to the other verifiers now
                continue
            check(self.ctx, self.checks, pending)

    def stop(self, wait: float = 5.0) -> None:
        """Finish the check in hand (up to ``wait`` s); the others go back to the pending set at once."""
        self.stopped.set()
        self.join(wait)


def check(ctx: WorkerContext, checks: PendingChecks, pending: Pending) -> Delivery | None:
    """Verify one picture created by URL, or repair it; the ledger's new delivery (None: not known)."""
    fields: dict[str, Any] = {"file": pending.path, "item_id": pending.item_id}
    if served_in_full(ctx.redis, pending.sig, pending.size):
        checks.complete(pending, ctx.ledger, Delivery.VERIFIED)
        log.info("upload.verified", **fields, after_s=round(time.time() - pending.created_at, 1))
        return Delivery.VERIFIED
    if pending.attempts == 0:
        ctx.circuit.verification_failed()
    try:
        path = resolve_in_folder(ctx.settings.watch_folder, pending.path)
        info = isolated.inspect(path)
        if info.size != pending.size or file_sha256(path) != pending.sha256:
            raise Superseded("file changed since it was uploaded")
        sent = repair_by_file(ctx, path, info, pending.item_id)
    except (Superseded, BadImage, FileNotFoundError, PermissionError) as exc:
        # The bytes Miro should have fetched are gone: nothing to repair with. A newer version of the
        # file is a new job of its own; the item stays as Miro made it.
        checks.complete(pending, ctx.ledger, None)
        log.warning("upload.unrepairable", **fields, reason=f"Miro did not fetch the signed URL, and {exc}")
        return None
    except MiroNotFound:  # the item was deleted from the board meanwhile
        checks.complete(pending, ctx.ledger, None)
        log.warning("upload.unrepairable", **fields, reason="the item is no longer on the board")
        return None
    except MiroBadRequest as exc:
        checks.complete(pending, ctx.ledger, None)
        log.warning("upload.unrepairable", **fields, reason=f"Miro refused the repair: {exc.status} {exc.code}: {exc.message}")
        return None
    except MiroRateLimited as exc:
        ctx.limiter.pause_after(exc)
        _later(checks, pending, fields, exc)
        return None
    except (MiroError, RateLimitTimeout) as exc:  # 5xx, network, token refused: try again later
        _later(checks, pending, fields, exc)
        return None
    checks.complete(pending, ctx.ledger, Delivery.REPAIRED)
    log.info("upload.repaired", **fields, bytes=sent, reason="Miro did not fetch the signed URL")
    return Delivery.REPAIRED


def _later(checks: PendingChecks, pending: Pending, fields: dict[str, Any], exc: Exception) -> None:
    delay = min(RETRY_CAP, 5.0 * 2 ** pending.attempts)
    checks.postpone(pending, time.time() + delay)
    log.info("upload.repair_retry", **fields, reason=str(exc) or type(exc).__name__, attempt=pending.attempts + 1, delay_s=delay)
    return None
