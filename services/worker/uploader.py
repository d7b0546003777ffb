"""Put one file version on the board exactly once.

The order of steps is what makes "never twice, never lost" hold across crashes:

1. the file must still be the version the job names (else a newer job follows: skip);
2. the bytes are hashed; bytes already on the board are not uploaded again (``DUPLICATES``);
3. a per-content lock keeps two workers off the same bytes;
4. a grid slot is reserved for the bytes (the same slot on every retry);
5. an *intent* is written before Miro is called. If a previous attempt left one, it may have
   created an item and died before the ledger write: look for that item (same title, same slot)
   and adopt it instead of creating a second one;
6. the item is created (file route, or url route: checked later, and repaired if Miro did not
   fetch it, by :mod:`.verify`; that pending check is written just before the next step);
7. ledger entry and intent removal are written in one MULTI.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from shared import keys
from shared.imagetype import SAFE_KINDS, BadImage, ImageInfo, carries_gps, inspect, prepare_upload
from shared.layout import fit_geometry, slot_center, slot_of_position
from shared.ledger import ContentEntry, Delivery, Intent
from shared.log import get_logger
from shared.miro import MiroApiError, MiroRateLimited
from shared.ratelimit import Cost
from shared.settings import DuplicatePolicy, UploadMode

from .context import WorkerContext
from .maintenance import can_judge_liveness
from .pending import Pending, PendingChecks
from .routes import upload_by_file, upload_by_url, TunnelUnavailable

log = get_logger("worker")


class Superseded(Exception):
    """The file changed or vanished since the job was queued; a newer job (or none) applies."""


class ContentBusy(Exception):
    """Another live worker is uploading the same bytes right now."""


@dataclass(frozen=True)
class Result:
    outcome: str  # uploaded | duplicate | skipped | rejected
    item_id: str | None = None
    route: str | None = None
    delivery: str | None = None
    reason: str | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def resolve_in_folder(folder: Path, relpath: str) -> Path:
    """The file ``relpath`` names inside ``folder``; refuse anything that could leave it."""
    parts = PurePosixPath(relpath).parts
    if not parts or PurePosixPath(relpath).is_absolute() or any(p in ("..", ".", "") for p in parts):
        raise BadImage("path leaves the watch folder")
    path = folder.joinpath(*parts)
    # Every component must be a real directory/file, not a link that points elsewhere.
    current = folder
    for part in parts:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            raise Superseded("file is gone") from None
        if stat.S_ISLNK(mode):
            raise BadImage("symbolic link (refused: it can point outside the folder)")
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _same_version(path: Path, size: int, mtime_ns: int) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise Superseded("file is gone") from None
    if not stat.S_ISREG(st.st_mode):
        raise BadImage("not a regular file")
    if st.st_size != size or st.st_mtime_ns != mtime_ns:
        raise Superseded("file changed since it was queued")


class Uploader:
    def __init__(self, ctx: WorkerContext, job_id: str | None = None) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.worker_name = ctx.worker_name or f"pid-{os.getpid()}"
        self.job_id = job_id

    # --- entry point ------------------------------------------------------------------------
    def sync(self, relpath: str, size: int, mtime_ns: int) -> Result:
        ledger = self.ctx.ledger
        if ledger.synced([(relpath, size, mtime_ns)])[0]:
            return Result("skipped", reason="already synced")
        try:
            path = resolve_in_folder(self.settings.watch_folder, relpath)
            _same_version(path, size, mtime_ns)
            info = inspect(path)
            sha = file_sha256(path)
            _same_version(path, size, mtime_ns)  # not rewritten while we read it
        except Superseded as exc:
            log.info("file.skipped", file=relpath, reason=str(exc))
            return Result("skipped", reason=str(exc))
        except BadImage as exc:
            return self._reject(relpath, size, mtime_ns, str(exc))
        except PermissionError:
            return self._reject(relpath, size, mtime_ns, "unreadable (permission denied)")

        key = self._content_key(sha, relpath)
        existing = ledger.content(key)
        if existing is not None:
            return self._duplicate(relpath, size, mtime_ns, key, existing)
        with self._content_lock(key):
            existing = ledger.content(key)
            if existing is not None:
                return self._duplicate(relpath, size, mtime_ns, key, existing)
            return self._create(path, relpath, size, mtime_ns, key, info)

    def _content_key(self, sha: str, relpath: str) -> str:
        if self.settings.duplicates is DuplicatePolicy.SKIP:
            return sha
        return f"{sha}-{hashlib.sha1(relpath.encode()).hexdigest()[:12]}"

    def _reject(self, relpath: str, size: int, mtime_ns: int, reason: str) -> Result:
        """A bad file version: one ``file.rejected`` line the first time any process sees it."""
        if self.ctx.ledger.reject(relpath, size, mtime_ns, reason):
            log.warning("file.rejected", file=relpath, reason=reason)
        return Result("rejected", reason=reason)

    def _duplicate(self, relpath: str, size: int, mtime_ns: int, key: str, existing: ContentEntry) -> Result:
        self.ctx.ledger.record(relpath, size, mtime_ns, key, None)
        log.info("file.duplicate", file=relpath, item_id=existing.item_id, same_as=existing.path)
        return Result("duplicate", item_id=existing.item_id, delivery=Delivery.DUPLICATE.value)

    # --- the create itself --------------------------------------------------------------------
    def _create(self, path: Path, relpath: str, size: int, mtime_ns: int, key: str, info: ImageInfo) -> Result:
        ledger, grid = self.ctx.ledger, self.settings.grid
        slot = ledger.reserve_slot(key)
        x, y = slot_center(grid, slot)
        title = PurePosixPath(relpath).name
        data = {"title": title, "position": {"x": x, "y": y, "origin": "center"}, "geometry": fit_geometry(grid, info.width, info.height)}

        intent = ledger.intent(key)
        if intent is not None:
            item_id = self._find_previous_item(intent)
            if item_id is not None:
                route = intent.route
                delivery = Delivery.FILE
                if route == "url":
                    # We cannot know whether Miro fetched the picture before the crash: refill it.
                    upload = prepare_upload(path, info, self.settings.max_upload_bytes, keep_gps=self.settings.keep_gps)
                    self.ctx.limiter.acquire(Cost.IMAGE_WRITE)
                    self.ctx.miro.update_image_file(self.settings.miro_board_id, item_id, upload.content, upload.filename, upload.content_type)
                    delivery = Delivery.REPAIRED
                entry = ContentEntry(item_id=item_id, route=route, delivery=delivery.value, slot=slot, path=relpath, at=time.time())
                ledger.record(relpath, size, mtime_ns, key, entry)
                log.warning("upload.recovered", file=relpath, item_id=item_id, slot=slot, reason="item from an interrupted attempt adopted")
                return Result("uploaded", item_id=item_id, route=route, delivery=delivery.value)

        route = self._choose_route(path, info)
        ledger.begin(key, slot, title, route)
        started = time.perf_counter()
        try:
            if route == "url":
                outcome = upload_by_url(self.ctx, path, relpath, info, data)
            else:
                outcome = upload_by_file(self.ctx, path, info, data)
        except (BadImage, FileNotFoundError) as exc:
            # Raised while preparing the bytes. On the file route nothing reached Miro yet; on the
            # url route (repair) the item may exist, so its intent stays for a later attempt to adopt.
            if route == "file":
                ledger.abandon(key)
            if isinstance(exc, FileNotFoundError):
                log.info("file.skipped", file=relpath, reason="file is gone")
                return Result("skipped", reason="file is gone")
            return self._reject(relpath, size, mtime_ns, str(exc))
        except MiroRateLimited as exc:
            # Miro refused the call outright: nothing was created, no recovery search needed.
            # Every worker pauses until Miro's reset (its headers may be missing on a 429).
            ledger.abandon(key)
            self.ctx.limiter.pause_after(exc)
            raise
        except MiroApiError as exc:
            # A 4xx means nothing was created; after a 5xx we cannot be sure, so keep the intent.
            if exc.status is not None and exc.status < 500:
                ledger.abandon(key)
            raise
        entry = ContentEntry(item_id=outcome.item_id, route=outcome.route, delivery=outcome.delivery.value, slot=slot, path=relpath, at=time.time())
        if outcome.delivery is Delivery.UNVERIFIED and outcome.sig:
            # Before the ledger write: the ledger must never name an item nobody will check (see .pending).
            now = time.time()
            PendingChecks(self.ctx.redis, ledger.board_id).schedule(
                Pending(outcome.item_id, key, relpath, outcome.sig, outcome.bytes_sent, now), now + self.settings.verify_grace)
        ledger.record(relpath, size, mtime_ns, key, entry)
        log.info(
            "upload.done", file=relpath, item_id=outcome.item_id, route=outcome.route, delivery=outcome.delivery.value,
            slot=slot, bytes=outcome.bytes_sent, converted=outcome.converted, stripped=outcome.stripped,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return Result("uploaded", item_id=outcome.item_id, route=outcome.route, delivery=outcome.delivery.value)

    def _choose_route(self, path: Path, info: ImageInfo) -> str:
        mode = self.settings.upload_mode
        # The image server serves the file as it is: only formats Miro surely reads may go by URL;
        # others (webp, tiff, heic...) are converted and uploaded.
        if mode is UploadMode.FILE or info.kind not in SAFE_KINDS:
            return "file"
        # auto: the file route whenever the bytes fit; the tunnel only for what does not.
        if mode is UploadMode.AUTO and (info.size <= self.settings.max_upload_bytes or not self.settings.tunnel_configured):
            return "file"
        # Nor may a photo that says where it was taken: uploaded, its GPS is cut out first.
        if not self.settings.keep_gps and carries_gps(path, info.kind):
            return "file"
        result = self.ctx.tunnel.usable()
        self.ctx.tunnel.warn_once(result, log)
        # A tunnel that answers with an ngrok page, or whose pictures Miro did not fetch, is set
        # aside: new pictures go by file, in UPLOAD_MODE=url too, until a probe passes.
        if self.ctx.circuit.after_probe(result).is_open:
            return "file"
        if mode is UploadMode.URL and not result.ok:
            # Not the tunnel's page but our set-up (no endpoint, refused signature...): say why and
            # let the job fail (requeue from the dashboard).
            raise TunnelUnavailable(result)
        return "url" if result.ok else "file"

    def _find_previous_item(self, intent: Intent) -> str | None:
        """The image item with the intent's title at the intent's slot, if an earlier attempt made one."""
        grid = self.settings.grid
        pages = self.ctx.miro.iter_items(self.settings.miro_board_id, type="image",
                                         before_page=lambda: self.ctx.limiter.acquire(Cost.LIST_PAGE))
        for item in pages:
            pos = item.get("position") or {}
            if (item.get("data") or {}).get("title") != intent.title or "x" not in pos:
                continue
            if slot_of_position(grid, float(pos["x"]), float(pos["y"])) == intent.slot:
                return str(item["id"])
        return None

    # --- locking ------------------------------------------------------------------------------
    def _content_lock(self, key: str):
        return _ContentLock(self.ctx, key, self.worker_name, self.job_id)


_SWAP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class _ContentLock:
    """SET NX lock on the bytes, held by (worker, job).

    A held lock is stale, and taken over, when its worker is no longer alive, when it is our own
    worker's (a worker runs one job at a time), or when it is an earlier attempt of this same job
    (RQ runs a job in one place at a time). The last two happen when Redis went away mid-upload
    and the release could not be written.
    """

    def __init__(self, ctx: WorkerContext, key: str, worker: str, job_id: str | None = None, wait: float = 10.0) -> None:
        self.redis = ctx.redis
        self.key = keys.content_lock(ctx.ledger.board_id, key)
        self.worker = worker
        self.job_id = job_id
        self.value = json.dumps({"worker": worker, "job": job_id})
        self.ttl = ctx.settings.job_timeout + 30
        self.wait = wait
        self._swap = self.redis.register_script(_SWAP)
        self._release = self.redis.register_script(_RELEASE)

    def __enter__(self):
        deadline = time.monotonic() + self.wait
        while True:
            if self.redis.set(self.key, self.value, nx=True, ex=self.ttl):
                return self
            raw = self.redis.get(self.key)
            holder = json.loads(raw) if raw else {}
            worker, job = holder.get("worker"), holder.get("job")
            stale = worker == self.worker or (self.job_id and job == self.job_id) or (
                worker and can_judge_liveness() and not self.redis.exists(keys.worker_alive(worker)))
            # Compare-and-set: of two workers that both saw the same stale holder, only one wins.
            if raw and stale and self._swap(keys=[self.key], args=[raw, self.value, self.ttl]):
                return self
            if time.monotonic() > deadline:
                raise ContentBusy(f"another worker ({worker}) is uploading the same bytes")
            time.sleep(0.1)

    def __exit__(self, *exc):
        self._release(keys=[self.key], args=[self.value])  # only our own lock
        return False
