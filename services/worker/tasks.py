"""The RQ job function. Jobs carry only (path, size, mtime_ns): no secret, no absolute path.

How failures end (policy in :mod:`shared.retry`):

* transient (429, 5xx, timeouts, connection errors, content busy): the job asks RQ to run it again
  later (``Retry`` with an exponential, jittered, capped delay) until ``RETRY_HORIZON`` has passed
  since its first failure; then it fails with the last reason. After a 5xx or a transport error,
  the next successful upload sends every waiting retry at once (:mod:`.maintenance`, recovery);
* refused by Miro (400/404/413...): the job fails at once with Miro's ``code`` and ``message``;
* token refused (401/403): every worker stops taking jobs (see :mod:`services.worker.hold`) and
  this job waits in the scheduled registry; nothing is dropped or failed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from redis.exceptions import RedisError
from rq import Retry, get_current_job

from shared import metrics
from shared import retry as policy
from shared.log import get_logger
from shared.miro import MiroApiError, MiroAuthError, MiroError, MiroServerError, MiroTransportError
from shared.ratelimit import RateLimitTimeout

from . import hold, maintenance
from .context import Stopping, WorkerContext, get_context
from .routes import TunnelUnavailable
from .uploader import ContentBusy, Outcome, Result, Uploader

log = get_logger("worker")

_FOREVER = 10**9  # RQ counts retries against Retry.max; our limit is the time horizon instead


class UploadFailed(Exception):
    """The job cannot succeed by retrying; the message says why (shown in the failed registry)."""


def upload_image(path: str, size: int, mtime_ns: int) -> dict | Retry:
    return _run(path, lambda ctx, job_id: Uploader(ctx, job_id).sync(path, size, mtime_ns), mtime_ns)


def remove_path(path: str, item_id: str) -> dict | Retry:
    """The file ``path`` is gone: do with its item what ``ON_DELETE`` says (queued by the watcher)."""
    from .deleter import Remover

    return _run(path, lambda ctx, job_id: Remover(ctx, job_id).remove(path, item_id))


def _run(path: str, work: Callable[[WorkerContext, str | None], Result], mtime_ns: int | None = None) -> dict | Retry:
    """Every job's way of ending: done, retried later, held (token refused) or failed with a reason."""
    ctx = get_context()
    metrics.use(ctx.redis)
    job = get_current_job()
    try:
        result = work(ctx, job.id if job is not None else None)
        outcome = metrics.Outcome(result.outcome.value)
        changed = outcome in (metrics.Outcome.UPLOADED, metrics.Outcome.UPDATED)  # pixels on the board from this file version
        ready_at = metrics.latency_start(mtime_ns, job.enqueued_at if job is not None else None) if changed and mtime_ns is not None else None
        metrics.record_upload(result.route, outcome, ready_at)
        if result.outcome in (Outcome.UPLOADED, Outcome.UPDATED, Outcome.MOVED, Outcome.DELETED) and maintenance.miro_answered(ctx.redis):
            log.info("miro.recovered", action="retries waiting for Miro go now")
        return result.as_dict()
    except MiroAuthError as exc:
        metrics.record_miro_error(exc.status, exc.code)
        metrics.record_upload(None, metrics.Outcome.HELD)
        hold.block(ctx, exc)
        return Retry(max=_FOREVER, interval=[hold.RECHECK_SECONDS])
    except TunnelUnavailable as exc:
        metrics.record_upload("url", metrics.Outcome.FAILED)
        log.warning("upload.failed", file=path, reason=str(exc))
        raise UploadFailed(str(exc)) from None
    except Stopping:
        # Asked to stop while waiting for credits: back to the queue now, for the next worker (an
        # intent written before the wait makes the next attempt look for an item first).
        log.info("upload.given_back", file=path, reason="worker stopping")
        return Retry(max=_FOREVER, interval=0, enqueue_at_front=True)
    except ContentBusy as exc:
        metrics.record_upload(None, metrics.Outcome.RETRIED)
        log.info("upload.retry", file=path, reason=str(exc), delay_s=2)
        return Retry(max=_FOREVER, interval=[2])
    except (MiroError, RedisError, RateLimitTimeout) as exc:
        if isinstance(exc, MiroError):
            metrics.record_miro_error(exc.status, exc.code)
        attempt = (job.number_of_retries or 0) + 1 if job is not None else 1
        now = time.time()
        first_failed_at = now
        if job is not None:
            first_failed_at = job.meta.setdefault("first_failed_at", now)
            job.save_meta()
        step = policy.plan(exc, attempt, first_failed_at, now, horizon=ctx.settings.retry_horizon)
        if step.decision is not policy.Decision.RETRY:
            reason = _describe(exc) if step.decision is policy.Decision.FAIL and attempt == 1 else step.reason
            metrics.record_upload(None, metrics.Outcome.FAILED)
            log.warning("upload.failed", file=path, reason=reason)
            raise UploadFailed(reason) from None
        if isinstance(exc, (MiroServerError, MiroTransportError)):
            maintenance.miro_failing(ctx.redis)
        metrics.record_upload(None, metrics.Outcome.RETRIED)
        log.info("upload.retry", file=path, reason=_describe(exc), attempt=attempt, delay_s=round(step.delay, 2))
        return Retry(max=_FOREVER, interval=[max(1, round(step.delay))])


def _describe(exc: Exception) -> str:
    if isinstance(exc, MiroApiError):
        return f"Miro answered {exc.status} {exc.code}: {exc.message}"
    return str(exc) or type(exc).__name__
