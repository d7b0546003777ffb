"""Keep one path's item on the board in step with the file, exactly once.

The order of steps is what makes "never twice, never lost" hold across crashes:

1. the file must still be the version the job names (else a newer job follows: skip). A save
   storm thus costs a few calls, not one per save: every superseded version's job skips;
2. the bytes are hashed; a per-path lock keeps two workers off the same path (so the versions of
   one file reach Miro in order and the last bytes win), then the version is checked again;
3. what the version means is decided by :func:`shared.plan.decide` (pure): the path's item gets
   the new bytes (multipart PATCH, same id and cell), or a vanished path's item is taken over
   (a rename: title and place PATCHed, nothing uploaded), or the bytes are shown already
   (``DUPLICATES=skip``), or a new item is made;
4. a create reserves a slot (the same on every retry) and writes an *intent* before Miro is
   called. If a previous attempt left one, it may have created an item and died before the
   ledger write: look for that item (same title, same slot) and adopt it instead of creating a
   second one. PATCHes need no intent: doing one twice is harmless. A url-route create is checked
   later, and repaired if Miro did not fetch it, by :mod:`.verify`; that pending check is written
   just before the ledger write;
5. the ledger entry (and intent removal) is one atomic write, compare-and-set on the item id.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path, PurePosixPath
from typing import Literal

from shared import keys
from shared.image import isolated
from shared.imagetype import SAFE_KINDS, BadImage, ImageInfo, carries_gps, upright
from shared.layout import cell_of_child, child_center, fit_geometry, frame_capacity, frame_folder, slot_center, slot_of_position
from shared.ledger import Delivery, Intent, ItemEntry, Route
from shared.log import get_logger
from shared.miro import MiroApiError, MiroNotFound, MiroRateLimited
from shared.plan import Action, decide
from shared.ratelimit import Cost
from shared.settings import DuplicatePolicy, UploadMode

from .context import WorkerContext
from .frames import Frames
from .maintenance import can_judge_liveness
from .pending import Pending, PendingChecks
from .routes import TunnelUnavailable, upload_by_file, upload_by_url
from .vacated import requeue_if_back

log = get_logger("worker")


class Superseded(Exception):
    """The file changed or vanished since the job was queued; a newer job (or none) applies."""


class ContentBusy(Exception):
    """Another live worker is uploading the same bytes (or syncing the same path) right now."""


class Outcome(str, Enum):
    UPLOADED = "uploaded"  # a new item
    UPDATED = "updated"  # the path's item got the new bytes
    MOVED = "moved"  # a vanished path's item now belongs to this path (rename/move)
    DUPLICATE = "duplicate"
    DELETED = "deleted"  # a gone file's item handled as ON_DELETE says
    SKIPPED = "skipped"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    item_id: str | None = None
    route: str | None = None
    delivery: str | None = None
    reason: str | None = None

    def as_dict(self) -> dict:
        return {k: (v.value if isinstance(v, Enum) else v) for k, v in self.__dict__.items() if v is not None}


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


def path_exists(folder: Path, relpath: str) -> bool:
    return os.path.lexists(folder.joinpath(*PurePosixPath(relpath).parts))


@dataclass(frozen=True)
class _Place:
    slot: int  # in the root grid, or in the folder's frame(s)
    frame: str | None  # the id of the frame holding the item; None: the root grid
    cell: int | None  # the cell inside that frame
    position: dict  # Miro's position: board coordinates, or relative to the frame's top-left corner


@dataclass(frozen=True)
class _Version:
    relpath: str
    path: Path
    size: int
    mtime_ns: int
    sha: str
    info: ImageInfo

    @property
    def title(self) -> str:
        return PurePosixPath(self.relpath).name  # the picture's title is the file name


class Uploader:
    def __init__(self, ctx: WorkerContext, job_id: str | None = None) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.worker_name = ctx.worker_name or f"pid-{os.getpid()}"
        self.job_id = job_id
        self.frames = Frames(ctx, _ContentLock, self.worker_name, job_id)

    # --- entry point ------------------------------------------------------------------------
    def sync(self, relpath: str, size: int, mtime_ns: int, recreate: bool = False) -> Result:
        """Bring the board in step with this version of ``relpath``.

        ``recreate`` (``check --fix``): the path's item is gone from the board; make a new one in its cell.
        """
        ledger = self.ctx.ledger
        if not recreate and ledger.synced([(relpath, size, mtime_ns)])[0]:
            return Result(Outcome.SKIPPED, reason="already synced")
        try:
            path = resolve_in_folder(self.settings.watch_folder, relpath)
            _same_version(path, size, mtime_ns)
            info = isolated.inspect(path)  # native decoders run in the converter child
            sha = file_sha256(path)
            _same_version(path, size, mtime_ns)  # not rewritten while we read it
        except Superseded as exc:
            log.info("file.skipped", file=relpath, reason=str(exc))
            return Result(Outcome.SKIPPED, reason=str(exc))
        except BadImage as exc:
            return self._reject(relpath, size, mtime_ns, str(exc))
        except PermissionError:
            return self._reject(relpath, size, mtime_ns, "unreadable (permission denied)")
        version = _Version(relpath, path, size, mtime_ns, sha, info)
        with self._lock("path:" + relpath):
            try:
                _same_version(path, size, mtime_ns)  # a newer version may have come while we waited
            except Superseded as exc:
                log.info("file.skipped", file=relpath, reason=str(exc))
                return Result(Outcome.SKIPPED, reason=str(exc))
            current = ledger.path(relpath)
            if recreate and current is not None and current.owner:
                log.warning("upload.recreated", file=relpath, item_id=current.item_id, slot=current.slot,
                            reason="item missing on the board; a new item in the same cell (check --fix)")
                with self._content_lock(sha):
                    return self._create(version, keep=current)
            return self._decide_and_do(version)

    def _decide_and_do(self, v: _Version) -> Result:
        ledger = self.ctx.ledger
        current = ledger.path(v.relpath)
        owner = owner_entry = None
        if current is None or not current.owner:  # only a path without an item of its own may take one over
            owner = ledger.owner_of(v.sha)
            owner_entry = ledger.path(owner) if owner and owner != v.relpath else None
        owner_present = owner_entry is not None and owner is not None and path_exists(self.settings.watch_folder, owner)
        action = decide(current, v.sha, owner_entry, owner_present, self.settings.duplicates is DuplicatePolicy.SKIP)
        if action is Action.TOUCH:
            assert current is not None
            ledger.touch(v.relpath, current, v.size, v.mtime_ns)
            return Result(Outcome.SKIPPED, item_id=current.item_id, reason="same bytes")
        if action is Action.UPDATE:
            assert current is not None
            return self._update(v, current)
        if action is Action.MOVE:
            assert owner is not None
            return self._move(owner, v)
        if action is Action.DUPLICATE:
            assert owner is not None and owner_entry is not None
            return self._duplicate(v, owner, owner_entry)
        with self._content_lock(v.sha):
            return self._create(v, keep=current if current is not None and current.owner else None)

    def _content_lock(self, sha: str):
        """Under DUPLICATES=skip two paths with the same bytes must not both create an item."""
        if self.settings.duplicates is DuplicatePolicy.SKIP:
            return self._lock(sha)
        return _NoLock()

    def _content_key(self, sha: str, relpath: str) -> str:
        """The key intents of the first ledger layout were filed under."""
        if self.settings.duplicates is DuplicatePolicy.SKIP:
            return sha
        return f"{sha}-{hashlib.sha1(relpath.encode()).hexdigest()[:12]}"

    def _reject(self, relpath: str, size: int, mtime_ns: int, reason: str) -> Result:
        """A bad file version: one ``file.rejected`` line the first time any process sees it."""
        if self.ctx.ledger.reject(relpath, size, mtime_ns, reason):
            log.warning("file.rejected", file=relpath, reason=reason)
        return Result(Outcome.REJECTED, reason=reason)

    def _duplicate(self, v: _Version, owner: str, owner_entry: ItemEntry) -> Result:
        entry = replace(owner_entry, size=v.size, mtime_ns=v.mtime_ns, delivery=Delivery.DUPLICATE.value, at=time.time(), dup_of=owner)
        self.ctx.ledger.record(v.relpath, entry)
        self.ctx.ledger.give_back(v.relpath, self._folder(v.relpath))  # the cell the watcher reserved stays free
        log.info("file.duplicate", file=v.relpath, item_id=owner_entry.item_id, same_as=owner)
        return Result(Outcome.DUPLICATE, item_id=owner_entry.item_id, delivery=Delivery.DUPLICATE.value)

    # --- edit: the same item gets the new bytes ------------------------------------------------
    def _update(self, v: _Version, current: ItemEntry) -> Result:
        grid = self.settings.grid
        try:
            upload = isolated.prepare_upload(v.path, v.info, self.settings.max_upload_bytes, keep_gps=self.settings.keep_gps)
        except BadImage as exc:  # the new version cannot be converted (or crashed its decoder): the item keeps the old one
            return self._reject(v.relpath, v.size, v.mtime_ns, str(exc))
        # Position and parent stay; the geometry is fitted again for the new aspect ratio.
        data = {"title": v.title, "geometry": fit_geometry(grid, v.info.width, v.info.height)}
        started = time.perf_counter()
        self.ctx.limiter.acquire(Cost.IMAGE_WRITE)
        try:
            self.ctx.miro.update_image_file(self.settings.miro_board_id, current.item_id, upload.content, upload.filename,
                                            upload.content_type, data)
        except MiroNotFound:
            # A person deleted the item on the board; a new version of the file brings it back, in its cell.
            log.warning("upload.recreated", file=v.relpath, item_id=current.item_id, slot=current.slot,
                        reason="item deleted on the board; a new item in the same cell")
            with self._content_lock(v.sha):
                return self._create(v, keep=current)
        except MiroRateLimited as exc:
            self.ctx.limiter.pause_after(exc)
            raise
        entry = replace(current, sha256=v.sha, size=v.size, mtime_ns=v.mtime_ns, route=Route.FILE.value,
                        delivery=Delivery.FILE.value, at=time.time())
        self.ctx.ledger.record(v.relpath, entry)
        log.info("upload.updated", file=v.relpath, item_id=current.item_id, slot=current.slot, bytes=len(upload.content),
                 ms=round((time.perf_counter() - started) * 1000, 1))
        return Result(Outcome.UPDATED, item_id=current.item_id, route=Route.FILE.value, delivery=Delivery.FILE.value)

    # --- rename / move: a vanished path's item, nothing uploaded --------------------------------
    def _move(self, old: str, v: _Version) -> Result:
        ledger = self.ctx.ledger
        with self._lock("path:" + old):
            entry = ledger.path(old)
            if entry is None or entry.sha256 != v.sha or path_exists(self.settings.watch_folder, old):
                # Taken over or deleted meanwhile, or the old file is back: decide again from scratch.
                return self._decide_and_do(v)
            slot, frame, position = entry.slot, entry.frame, None
            folder = self._folder(v.relpath)
            if folder is not None and not (entry.frame is not None and PurePosixPath(old).parent == PurePosixPath(v.relpath).parent):
                # Into the new folder's frame, in a cell of its own. (Out of a frame to the root there
                # is no documented call: such an item keeps its place and gets its new title.)
                place = self._place(v.relpath, folder)
                slot, frame, position = place.slot, place.frame, place.position
            self.ctx.limiter.acquire(Cost.IMAGE_WRITE)
            try:
                self.ctx.miro.update_image(self.settings.miro_board_id, entry.item_id, title=v.title, position=position,
                                           parent_id=frame if position is not None else None)
            except MiroNotFound:
                # Deleted on the board: the old path's entry points at nothing; the new path gets a new item.
                ledger.drop(old, entry.item_id)
                requeue_if_back(self.ctx, old, entry.item_id)
                log.warning("file.moved", file=v.relpath, old=old, item_id=entry.item_id, reason="item deleted on the board; uploading")
                with self._content_lock(v.sha):
                    return self._create(v, keep=None)
            except MiroRateLimited as exc:
                self.ctx.limiter.pause_after(exc)
                raise
            moved = replace(entry, size=v.size, mtime_ns=v.mtime_ns, slot=slot, frame=frame, at=time.time())
            if not ledger.move(old, v.relpath, moved):
                return self._decide_and_do(v)
            if position is None:  # the item kept its cell: the one the watcher reserved for the new name stays free
                ledger.give_back(v.relpath, folder)
        log.info("file.moved", file=v.relpath, old=old, item_id=entry.item_id, frame=moved.frame)
        requeue_if_back(self.ctx, old, entry.item_id)  # renamed back while the item was being retitled
        return Result(Outcome.MOVED, item_id=entry.item_id, route=entry.route, delivery=entry.delivery)

    # --- the create itself --------------------------------------------------------------------
    def _folder(self, relpath: str) -> str | None:
        """The subfolder whose frame holds ``relpath``'s item; None: the root grid."""
        return frame_folder(relpath, self.settings.folders)

    def _place(self, relpath: str, folder: str | None, slot: int | None = None) -> _Place:
        """Where a new item of ``relpath`` goes; its folder's frame is made, or grown, if need be."""
        grid = self.settings.grid
        if slot is None:
            slot = self.ctx.ledger.reserve_slot(relpath, folder)  # usually reserved already, by the watcher
        if folder is None:
            x, y = slot_center(grid, slot)
            return _Place(slot, None, None, {"x": x, "y": y, "origin": "center"})
        frame, cell = self.frames.for_slot(folder, slot)
        x, y = child_center(grid, cell)
        return _Place(slot, frame.id, cell, {"x": x, "y": y, "origin": "center"})

    def _create(self, v: _Version, keep: ItemEntry | None) -> Result:
        """A new item; with ``keep`` (the path's item was deleted on the board) in that item's cell."""
        ledger, grid = self.ctx.ledger, self.settings.grid
        relpath, size, mtime_ns = v.relpath, v.size, v.mtime_ns
        legacy = self._content_key(v.sha, relpath)
        if keep is not None:
            folder = None if keep.frame is None else self._folder(relpath)
            place = self._place(relpath, folder, keep.slot)
        else:
            place = self._place(relpath, self._folder(relpath))
        slot, frame, position = place.slot, place.frame, place.position
        title = v.title
        data: dict = {"title": title, "position": position, "geometry": fit_geometry(grid, v.info.width, v.info.height)}
        if frame is not None:
            data["parent"] = {"id": frame}

        intent = ledger.intent(relpath, legacy)
        if intent is not None:
            item_id = self._find_previous_item(intent)
            if item_id is not None:
                route = intent.route
                delivery = Delivery.FILE
                if route == Route.URL.value:
                    # We cannot know whether Miro fetched the picture before the crash: refill it.
                    upload = isolated.prepare_upload(v.path, v.info, self.settings.max_upload_bytes, keep_gps=self.settings.keep_gps)
                    self.ctx.limiter.acquire(Cost.IMAGE_WRITE)
                    self.ctx.miro.update_image_file(self.settings.miro_board_id, item_id, upload.content, upload.filename, upload.content_type)
                    delivery = Delivery.REPAIRED
                entry = ItemEntry(item_id=item_id, sha256=v.sha, size=size, mtime_ns=mtime_ns, slot=intent.slot, route=route,
                                  delivery=delivery.value, at=time.time(), frame=intent.frame)
                ledger.record(relpath, entry, legacy)
                log.warning("upload.recovered", file=relpath, item_id=item_id, slot=intent.slot, reason="item from an interrupted attempt adopted")
                return Result(Outcome.UPLOADED, item_id=item_id, route=route, delivery=delivery.value)

        route = self._choose_route(v.path, v.info)
        ledger.begin(relpath, slot, title, route.value, frame, place.cell)
        started = time.perf_counter()
        try:
            if route is Route.URL:
                outcome = upload_by_url(self.ctx, v.path, relpath, v.info, data)
            else:
                outcome = upload_by_file(self.ctx, v.path, v.info, data)
        except (BadImage, FileNotFoundError) as exc:
            # Raised while preparing the bytes. On the file route nothing reached Miro yet; on the
            # url route (repair) the item may exist, so its intent stays for a later attempt to adopt.
            if route is Route.FILE:
                ledger.abandon(relpath, legacy)
            if isinstance(exc, FileNotFoundError):
                log.info("file.skipped", file=relpath, reason="file is gone")
                return Result(Outcome.SKIPPED, reason="file is gone")
            return self._reject(relpath, size, mtime_ns, str(exc))
        except MiroRateLimited as exc:
            # Miro refused the call outright: nothing was created, no recovery search needed.
            # Every worker pauses until Miro's reset (its headers may be missing on a 429).
            ledger.abandon(relpath, legacy)
            self.ctx.limiter.pause_after(exc)
            raise
        except MiroApiError as exc:
            # A 4xx means nothing was created; after a 5xx we cannot be sure, so keep the intent.
            if exc.status is not None and exc.status < 500:
                ledger.abandon(relpath, legacy)
            raise
        entry = ItemEntry(item_id=outcome.item_id, sha256=v.sha, size=size, mtime_ns=mtime_ns, slot=slot, route=outcome.route,
                          delivery=outcome.delivery.value, at=time.time(), frame=frame)
        if outcome.delivery is Delivery.UNVERIFIED and outcome.sig:
            # Before the ledger write: the ledger must never name an item nobody will check (see .pending).
            now = time.time()
            PendingChecks(self.ctx.redis, ledger.board_id).schedule(
                Pending(outcome.item_id, v.sha, relpath, outcome.sig, outcome.bytes_sent, now), now + self.settings.verify_grace)
        ledger.record(relpath, entry, legacy)
        log.info(
            "upload.done", file=relpath, item_id=outcome.item_id, route=outcome.route, delivery=outcome.delivery.value,
            slot=slot, frame=frame, bytes=outcome.bytes_sent, converted=outcome.converted, stripped=outcome.stripped,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return Result(Outcome.UPLOADED, item_id=outcome.item_id, route=outcome.route, delivery=outcome.delivery.value)

    def _choose_route(self, path: Path, info: ImageInfo) -> Route:
        mode = self.settings.upload_mode
        # The image server serves the file as it is: only formats Miro surely reads may go by URL;
        # others (webp, tiff, heic...) are converted and uploaded.
        if mode is UploadMode.FILE or info.kind not in SAFE_KINDS:
            return Route.FILE
        # auto: the file route whenever the bytes fit; the tunnel only for what does not.
        if mode is UploadMode.AUTO and (info.size <= self.settings.max_upload_bytes or not self.settings.tunnel_configured):
            return Route.FILE
        # Nor may a photo that says where it was taken (uploaded, its GPS is cut out first), nor a
        # JPEG stored turned (uploaded upright: a renderer may ignore EXIF orientation).
        if not upright(info.orientation) or (not self.settings.keep_gps and carries_gps(path, info.kind)):
            return Route.FILE
        result = self.ctx.tunnel.usable()
        self.ctx.tunnel.warn_once(result, log)
        # A tunnel that answers with an ngrok page, or whose pictures Miro did not fetch, is set
        # aside: new pictures go by file, in UPLOAD_MODE=url too, until a probe passes.
        if self.ctx.circuit.after_probe(result).is_open:
            return Route.FILE
        if mode is UploadMode.URL and not result.ok:
            # Not the tunnel's page but our set-up (no endpoint, refused signature...): say why and
            # let the job fail (requeue from the dashboard).
            raise TunnelUnavailable(result)
        return Route.URL if result.ok else Route.FILE

    def _find_previous_item(self, intent: Intent) -> str | None:
        """The image item with the intent's title at the intent's slot, if an earlier attempt made one."""
        grid = self.settings.grid
        pages = self.ctx.miro.iter_items(self.settings.miro_board_id, type="image", parent_item_id=intent.frame,
                                         before_page=lambda: self.ctx.limiter.acquire(Cost.LIST_PAGE))
        for item in pages:
            pos = item.get("position") or {}
            if (item.get("data") or {}).get("title") != intent.title or "x" not in pos:
                continue
            x, y = float(pos["x"]), float(pos["y"])
            if intent.frame is None and (item.get("parent") or {}).get("id") is None and slot_of_position(grid, x, y) == intent.slot:
                return str(item["id"])
            # No cell in the intent: written by the earlier version, whose frames held FRAME_COLUMNS x FRAME_ROWS cells.
            cell = intent.cell if intent.cell is not None else intent.slot % frame_capacity(grid)
            if intent.frame is not None and cell_of_child(grid, x, y) == cell:
                return str(item["id"])
        return None

    # --- locking ------------------------------------------------------------------------------
    def _lock(self, key: str) -> _ContentLock:
        return _ContentLock(self.ctx, key, self.worker_name, self.job_id)


class _NoLock:
    def __enter__(self) -> _NoLock:
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        return False


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
