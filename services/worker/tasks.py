"""The RQ job function. Jobs carry only (path, size, mtime_ns): no secret, no absolute path.

How failures end (policy in :mod:`shared.retry`):

* transient (429, 5xx, timeouts, connection errors, content busy): the job asks RQ to run it again
  later (``Retry`` with an exponential, jittered, capped delay) until ``RETRY_HORIZON`` has passed
  since the job was created; then it fails with the last reason;
* refused by Miro (400/404/413...): the job fails at once with Miro's ``code`` and ``message``;
* token refused (401/403): every worker stops taking jobs (see :mod:`services.worker.hold`) and
  this job waits in the scheduled registry; nothing is dropped or failed.
"""

from __future__ import annotations

import time
from datetime import timezone

from rq import Retry, get_current_job

from shared import retry as policy
from shared.log import get_logger
from shared.miro import MiroApiError, MiroAuthError, MiroError

from . import hold
from .context import get_context
from .routes import TunnelUnavailable
from .uploader import ContentBusy, Uploader

log = get_logger("worker")

_FOREVER = 10**9  # RQ counts retries against Retry.max; our limit is the time horizon instead


class UploadFailed(Exception):
    """The job cannot succeed by retrying; the message says why (shown in the failed registry)."""


def upload_image(path: str, size: int, mtime_ns: int) -> dict | Retry:
    ctx = get_context()
    job = get_current_job()
    try:
        return Uploader(ctx, ctx.worker_name).sync(path, size, mtime_ns).as_dict()
    except MiroAuthError as exc:
        hold.block(ctx, exc)
        return Retry(max=_FOREVER, interval=[hold.RECHECK_SECONDS])
    except TunnelUnavailable as exc:
        log.warning("upload.failed", file=path, reason=str(exc))
        raise UploadFailed(str(exc)) from None
    except (MiroError, ContentBusy) as exc:
        decision = policy.classify(exc)
        if decision is policy.Decision.FAIL:
            reason = _describe(exc)
            log.warning("upload.failed", file=path, reason=reason)
            raise UploadFailed(reason) from None
        attempt = (job.number_of_retries or 0) if job is not None else 0
        created = job.created_at.replace(tzinfo=timezone.utc).timestamp() if job is not None and job.created_at else time.time()
        delay = policy.next_delay(exc, attempt, created_at=created, horizon=ctx.settings.retry_horizon)
        if delay is None:
            reason = f"gave up after {ctx.settings.retry_horizon} s of retries: {_describe(exc)}"
            log.warning("upload.failed", file=path, reason=reason)
            raise UploadFailed(reason) from None
        log.info("upload.retry", file=path, reason=_describe(exc), attempt=attempt + 1, delay_s=round(delay, 2))
        return Retry(max=_FOREVER, interval=[max(1, round(delay))])


def _describe(exc: Exception) -> str:
    if isinstance(exc, MiroApiError):
        return f"Miro answered {exc.status} {exc.code}: {exc.message}"
    return str(exc) or type(exc).__name__
