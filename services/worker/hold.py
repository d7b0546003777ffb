"""Hold every worker when Miro refuses the token (401/403): jobs wait, none is dropped or failed.

The first worker to see the refusal writes ``keys.AUTH_BLOCKED`` and logs one line saying what is
wrong. Every worker then stops taking jobs; one of them re-checks the token every
``RECHECK_SECONDS`` with a cheap board read and lifts the hold when Miro accepts it again.
"""

from __future__ import annotations

import json
import time

from shared import keys
from shared.log import get_logger
from shared.miro import MiroAuthError, MiroError
from shared.preflight import explain_auth
from shared.ratelimit import Cost

from . import maintenance

log = get_logger("worker")

RECHECK_SECONDS = 30


def block(ctx, exc: MiroAuthError) -> None:
    _block(ctx, exc.status, exc.code, explain_auth(exc))


def block_for(ctx, reason: str) -> None:
    """Hold at start-up: no usable stored token pair (the reason says to run `miro-sync login`)."""
    _block(ctx, 401, None, reason)


def _block(ctx, status: int | None, code: str | None, reason: str) -> None:
    value = json.dumps({"status": status, "code": code, "message": reason, "at": time.time()})
    if ctx.redis.set(keys.AUTH_BLOCKED, value, nx=True):
        log.error("miro.token_refused", status=status, code=code, reason=reason, action="all workers hold jobs until the token works")


def blocked(ctx) -> dict | None:
    raw = ctx.redis.get(keys.AUTH_BLOCKED)
    return json.loads(raw) if raw else None


def recheck(ctx) -> bool:
    """One worker at a time asks Miro again; True when the hold was lifted."""
    if not ctx.redis.set(keys.AUTH_RECHECK, "1", nx=True, ex=RECHECK_SECONDS):
        return False
    try:
        ctx.limiter.acquire(Cost.BOARD_GET)
        ctx.miro.get_board(ctx.settings.miro_board_id)
    except MiroError:  # still refused (MiroAuthError), or Miro unreachable: ask again later
        return False
    lift(ctx.redis)
    log.info("miro.token_accepted", action="workers resume")
    return True


def lift(connection) -> None:
    """End the hold; the jobs that waited for the token go now, not at their next recheck."""
    connection.delete(keys.AUTH_BLOCKED)
    maintenance.retry_waiting_now(connection)
