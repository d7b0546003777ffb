"""The watcher's loop: file events and scans in, one RQ job per complete image version out.

When is a file complete?

* inotify ``FileClosedEvent`` (close after write) or ``FileMovedEvent`` into the folder
  (browser downloads, atomic saves): at once;
* a created file with no close event (moved in from another folder under inotify; any new or
  changed file in polling mode): when its size and mtime have not changed for
  ``SETTLE_SECONDS`` (:mod:`.settle`). Under inotify a new file that a process opens waits for
  that process's close instead, however slowly it writes;
* the start-up scan and the periodic rescan (missed events, inotify overflows): files not in
  the ledger, unless they changed within ``SETTLE_SECONDS`` (then the settle timer decides);
* a folder that appears (``cp -r``, a copy from a camera card): its files as one batch, once
  nothing in it has changed for ``SETTLE_SECONDS`` (a minute at most; :mod:`.settle`), closed or not.

Pictures that arrive together take their cells in name order (:func:`shared.layout.natural_key`):
a scan walks each folder in that order, a batch the settle timer hands over is sorted, and the
cell is reserved here, as the job is queued, so two workers finishing in any order keep it.

Everything runs on one thread: the observer's thread only hands events over a queue, so the
ledger, the settle timers and the debounce map need no locks. Scans go a chunk at a time and
events are handled between chunks, so a long rescan does not delay a new file.
"""

from __future__ import annotations

import os
import queue
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from enum import Enum
from pathlib import Path

import redis
from rq import Queue
from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)

from shared import redis_down
from shared.jobs import enqueue_removal, enqueue_upload
from shared.layout import frame_folder, natural_key
from shared.ledger import Ledger
from shared.log import get_logger
from shared.settings import FolderMode

from .deletions import UNKNOWN, Deletions
from .files import Candidate, Gone, NotAFile, Refused, examine
from .filters import ignore_reason, printable
from .scan import ScanProgress, ScanStats, Seen, walk
from .settle import Settler

log = get_logger("watcher")

EVENT_TYPES = [
    FileClosedEvent, FileClosedNoWriteEvent, FileOpenedEvent, FileCreatedEvent, FileModifiedEvent,
    FileMovedEvent, FileDeletedEvent, DirCreatedEvent, DirMovedEvent, DirDeletedEvent,
]
"""What the observer reports to us (attribute changes are noise)."""

RECENT_MAX = 10_000
RECENT_SECONDS = 30.0
"""File versions handled in the last RECENT_SECONDS are not looked up again on further events, so
a burst of events costs one Redis round trip. Scans always look (they are the safety net)."""

REDIS_RETRY_SECONDS = 2.0


class Taken(str, Enum):
    """What :meth:`Watcher.take` did with one file."""

    QUEUED = "queued"
    EXISTS = "exists"  # its job is already queued, running or done
    SYNCED = "synced"
    REJECTED = "rejected"
    PENDING = "pending"  # an edit of a file on the board: the settle timer takes it once it is quiet
    IGNORED = "ignored"
    GONE = "gone"
    FOLDER = "folder"


class Trigger(str, Enum):
    """Why a file is looked at (the ``trigger`` of its ``file.queued`` line)."""

    CLOSED = "closed"  # inotify: its writer closed it
    MOVED = "moved"  # renamed into the folder
    SETTLED = "settled"  # size and mtime still for SETTLE_SECONDS
    SCAN = "scan"


class Marker(Enum):
    """Stand-ins where a file's version (size, mtime_ns) is expected; no file has them."""

    VANISHED = "vanished"  # remembered for a file that was deleted before we saw it
    RETRY = "retry"  # a settle signature: the timer runs once more, then the file is taken
    FOLDER = "folder"  # what _signature says of a directory


class EventInbox(FileSystemEventHandler):
    """Runs on the observer's thread: only hands events to the loop."""

    def __init__(self, inbox: queue.SimpleQueue[FileSystemEvent | None]) -> None:
        self.inbox = inbox

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.inbox.put(event)


class Watcher:
    progress_every: float = 5.0
    """Seconds between two progress lines of a long full scan."""
    heartbeat: Callable[[], None] = staticmethod(lambda: None)
    """Called between scan chunks, so a long scan still shows the watcher alive."""
    redis_url: str = ""
    """Named (without its password) in the line that says Redis went away."""

    def __init__(
        self,
        folder: Path,
        ledger: Ledger,
        jobs: Queue,
        settle_seconds: float,
        rescan_interval: float,
        job_timeout: int,
        close_events: bool,
        clock: Callable[[], float] = time.monotonic,
        delete_settle: float = 10.0,
        max_delete: int = 50,
        folders: FolderMode = FolderMode.FRAMES,
    ) -> None:
        self.folder = folder
        self.ledger = ledger
        self.jobs = jobs
        self.settle_seconds = settle_seconds
        self.rescan_interval = rescan_interval
        self.job_timeout = job_timeout
        self.close_events = close_events  # inotify: in-place writes end with a close event
        self.folders = folders  # where a file's cell is: its folder's frame, or the root grid
        self.clock = clock
        self._held: set[str] = set()  # new files a process has open: their close decides
        self.inbox: queue.SimpleQueue[FileSystemEvent | None] = queue.SimpleQueue()
        self.settler = Settler(settle_seconds)
        self._recent: OrderedDict[str, tuple[tuple[int, int] | Marker, float]] = OrderedDict()  # key -> (version, when)
        self._redis_down = False
        self.deletions = Deletions(delete_settle, max_delete)

    # --- the loop -------------------------------------------------------------------------------
    def handler(self) -> EventInbox:
        return EventInbox(self.inbox)

    def wake(self) -> None:
        self.inbox.put(None)

    def run(self, stop: threading.Event, alive: Callable[[], bool] = lambda: True) -> bool:
        """Scan, then follow events until ``stop``; False if ``alive()`` says the observer died."""
        next_scan: float | None = self.clock()
        while not stop.is_set():
            if not alive():
                return False
            if next_scan is not None and self.clock() >= next_scan:
                next_scan = self._scan_and_schedule(stop)
                continue
            self._pump(self._timeout(next_scan))
            self._settled()
            self._guarded(self._enact_deletions)
        return True

    def _timeout(self, next_scan: float | None) -> float:
        now = self.clock()
        wake_at = [t for t in (next_scan, self.settler.next_deadline(), self.deletions.next_deadline()) if t is not None]
        return max(0.0, min([now + 1.0, *wake_at]) - now)

    def _pump(self, timeout: float) -> None:
        """Handle the next event (waiting up to ``timeout``) and whatever else is queued."""
        try:
            event = self.inbox.get(timeout=timeout) if timeout > 0 else self.inbox.get_nowait()
        except queue.Empty:
            return
        while True:
            if event is not None:
                self._guarded(self._on_event, event)
            try:
                event = self.inbox.get_nowait()
            except queue.Empty:
                return

    def _guarded(self, fn, *args) -> None:
        try:
            fn(*args)
            if self._redis_down:
                self.ledger.redis.ping()  # fn may not have needed Redis: ask before saying it is back
                self._redis_down = False
                log.info("redis.available")
        except redis.RedisError as exc:
            if not self._redis_down:
                self._redis_down = True
                log.warning("redis.unavailable", **redis_down.fields(self.redis_url, exc))

    # --- events -------------------------------------------------------------------------------
    def _relative(self, path: str | bytes) -> str | None:
        path = os.fsdecode(path)
        rel = os.path.relpath(path, self.folder)
        if rel == "." or rel.startswith(".." + os.sep) or rel == "..":
            return None
        return rel.replace(os.sep, "/")

    def _on_event(self, event: FileSystemEvent) -> None:
        if isinstance(event, (FileMovedEvent, DirMovedEvent)):
            src = self._relative(event.src_path)
            if src is not None:
                self.settler.forget(src)
                self._held.discard(src)
                self._recent.pop(printable(src), None)  # the same version coming back is news
            dest = self._relative(event.dest_path)
            if dest is None or (not event.is_directory and ignore_reason(dest)):
                if src is not None and event.is_directory:  # moved out of the folder: gone for us
                    self._sweep(src)
                elif src is not None:  # moved out, or to a name we ignore
                    self._gone(src)
                return
            if event.is_directory:
                self._scan_subtree(dest)
            elif self.settler.stir(dest, self.clock()):
                self._watch_settle(dest)  # into an arriving folder: with its batch
            else:
                self.take(dest, Trigger.MOVED)
            return
        rel = self._relative(event.src_path)
        if rel is None:
            return
        self.settler.stir(rel, self.clock())  # a copy into an arriving folder is still going on
        if isinstance(event, DirDeletedEvent):
            self._sweep(rel)
        elif isinstance(event, DirCreatedEvent):
            # A folder copied or moved in from elsewhere brings files that give no event of their
            # own, and a copy writes in no particular order: its files are one batch.
            if self.settler.arriving(rel, self.clock()) and not ignore_reason(rel + "/x"):
                log.info("folder.arriving", folder=printable(rel), reason=f"queued in name order once still for {self.settle_seconds:g} s")
            self._scan_subtree(rel)
        elif isinstance(event, FileClosedEvent):
            self._held.discard(rel)
            self.settler.forget(rel)
            if self.settler.arrival_of(rel) is not None:
                self._watch_settle(rel)  # with its batch
            else:
                self.take(rel, Trigger.CLOSED)
        elif isinstance(event, FileCreatedEvent):
            self._watch_settle(rel)
        elif isinstance(event, FileModifiedEvent):
            # With close events, a writer's close tells us when it is done; without, stability does.
            if not self.close_events or rel in self.settler:
                self._watch_settle(rel)
        elif isinstance(event, FileOpenedEvent):
            if rel in self.settler:  # a new file being written in place (or read): wait for its close
                self.settler.forget(rel)
                self._held.add(rel)
        elif isinstance(event, FileClosedNoWriteEvent):
            if rel in self._held:  # it was only read: back to waiting for it to settle
                self._held.discard(rel)
                self._watch_settle(rel)
        elif isinstance(event, FileDeletedEvent):
            if rel in self.settler or rel in self._held:
                self._report_vanished(rel)
            self.settler.forget(rel)
            self._held.discard(rel)
            if self._recent.get(printable(rel), (Marker.VANISHED,))[0] is not Marker.VANISHED:
                self._recent.pop(printable(rel), None)  # the same version coming back is news
            self._gone(rel)

    def _watch_settle(self, rel: str) -> None:
        reason = ignore_reason(rel)
        if reason:
            log.debug("file.ignored", file=printable(rel), reason=reason)
            return
        signature = _signature(os.path.join(self.folder, rel))
        if signature is None:
            self._report_vanished(rel)
        elif signature is not Marker.FOLDER:
            self.settler.touch(rel, self.clock(), signature)

    def _settled(self) -> None:
        for rel, signature in sorted(self.settler.due(self.clock()), key=lambda due: natural_key(due[0])):
            now = _signature(os.path.join(self.folder, rel))
            if now is None:
                self._report_vanished(rel)
                continue
            if now is Marker.FOLDER:
                continue
            if now != signature:
                self.settler.touch(rel, self.clock(), now)
                continue
            self._guarded(self.take, rel, Trigger.SETTLED)

    # --- one file -------------------------------------------------------------------------------
    def take(self, rel: str, why: Trigger) -> Taken:
        """Look at one file and queue it if it is a new, complete image version.

        Returns what happened (a :class:`Taken`); ``pending`` is
        an edit of a file on the board, queued once it is quiet (see below).
        With Redis unreachable the file goes back to the settle timer, to be tried again.
        """
        try:
            return self._take(rel, why)
        except redis.RedisError:
            self.settler.touch(rel, self.clock(), Marker.RETRY)
            raise

    def _take(self, rel: str, why: Trigger) -> Taken:
        reason = ignore_reason(rel)
        if reason:
            log.debug("file.ignored", file=printable(rel), reason=reason)
            return Taken.IGNORED
        outcome = examine(self.folder, rel)
        if isinstance(outcome, Gone):
            if why is not Trigger.SCAN:
                self._report_vanished(rel)
            return Taken.GONE
        if isinstance(outcome, NotAFile):
            log.debug("file.ignored", file=printable(rel), reason="folder")
            return Taken.FOLDER
        key = printable(rel)
        version = (outcome.size, outcome.mtime_ns)
        if why is not Trigger.SCAN and self._recently_handled(key, version):
            return Taken.EXISTS
        if isinstance(outcome, Refused):
            if self.ledger.reject(key, outcome.size, outcome.mtime_ns, outcome.reason):
                log.warning("file.rejected", file=key, reason=outcome.reason)
            self._remember(key, version)
            return Taken.REJECTED
        assert isinstance(outcome, Candidate)
        self.deletions.forget(key)  # back (or never gone)
        entry = [(key, outcome.size, outcome.mtime_ns)]
        if self.ledger.synced(entry)[0]:
            self._remember(key, version)
            return Taken.SYNCED
        if self.ledger.rejected(entry)[0]:
            self._remember(key, version)
            return Taken.REJECTED
        if why in (Trigger.CLOSED, Trigger.MOVED) and self.settle_seconds > 0 and self.ledger.path(key) is not None:
            # An edit of a file already on the board: an editor's save storm must cost a PATCH or
            # two, not one per save, so edits wait until the file is quiet for SETTLE_SECONDS.
            self.settler.touch(rel, self.clock(), version)
            return Taken.PENDING
        if self.ledger.path(key) is None:
            # Its cell, now: the queue's order is the order cells are taken in, whichever worker is first.
            self.ledger.reserve_slot(rel, frame_folder(rel, self.folders))
        job = enqueue_upload(self.jobs, rel, outcome.size, outcome.mtime_ns, job_timeout=self.job_timeout)
        self._remember(key, version)
        if job is None:
            return Taken.EXISTS
        log.info("file.queued", file=rel, size=outcome.size, job_id=job.id, kind=outcome.kind, trigger=why.value)
        return Taken.QUEUED

    def _report_vanished(self, rel: str) -> None:
        """A new file deleted before we could look at it: one line, however many events follow."""
        key = printable(rel)
        if not self._recently_handled(key, Marker.VANISHED):
            self._remember(key, Marker.VANISHED)
            log.info("file.rejected", file=key, reason="deleted before it could be read")

    def _recently_handled(self, key: str, version: tuple[int, int] | Marker) -> bool:
        seen = self._recent.get(key)
        return seen is not None and seen[0] == version and self.clock() - seen[1] < RECENT_SECONDS

    def _remember(self, key: str, version: tuple[int, int] | Marker) -> None:
        self._recent[key] = (version, self.clock())
        self._recent.move_to_end(key)
        if len(self._recent) > RECENT_MAX:
            self._recent.popitem(last=False)

    # --- deletions --------------------------------------------------------------------------------
    def _gone(self, rel: str) -> None:
        """A file vanished: if it has an item, its deletion waits (see :mod:`.deletions`)."""
        if ignore_reason(rel):
            return
        key = printable(rel)
        if os.path.lexists(os.path.join(self.folder, rel)):
            return
        entry = self.ledger.path(key)
        # No entry yet: its upload may be in flight (the item made, the ledger write to come); look again later.
        self.deletions.note(key, entry.item_id if entry is not None else UNKNOWN, self.clock())

    def _sweep(self, under: str = "") -> int:
        """Every ledger path below ``under`` whose file is gone becomes a pending deletion."""
        gone: set[str] = set()
        for relpath, entry in self.ledger.iter_paths():
            if under and not relpath.startswith(under + "/"):
                continue
            if not os.path.lexists(os.path.join(self.folder, relpath)):
                gone.add(relpath)
                self.deletions.note(relpath, entry.item_id, self.clock())
        if not under:
            self.deletions.keep_only(gone)
        return len(gone)

    def _folder_has_files(self) -> bool:
        for chunk in walk(self.folder):
            return bool(chunk)
        return False

    def _enact_deletions(self) -> None:
        for relpath, item_id in self.deletions.due(self.clock(), self._folder_has_files):
            if os.path.lexists(os.path.join(self.folder, relpath)):
                continue
            entry = self.ledger.path(relpath)
            if entry is None and item_id == UNKNOWN:
                self.deletions.look_again(relpath, self.clock())
                continue
            if entry is not None and item_id == UNKNOWN:
                self.deletions.note(relpath, entry.item_id, self.clock())  # known now: through the guard like the rest
                continue
            if entry is None or entry.item_id != item_id:
                continue  # taken over by a rename, or handled already
            job = enqueue_removal(self.jobs, relpath, item_id, job_timeout=self.job_timeout)
            if job is not None:
                log.info("file.gone", file=relpath, item_id=item_id, job_id=job.id)

    # --- scans ----------------------------------------------------------------------------------
    def _scan_and_schedule(self, stop: threading.Event) -> float | None:
        try:
            stats = self.scan(stop)
        except redis.RedisError as exc:
            log.warning("watch.scan_failed", error=str(exc), retry_in=REDIS_RETRY_SECONDS)
            self._redis_down = True
            return self.clock() + REDIS_RETRY_SECONDS
        if stop.is_set():
            return None
        log.info("watch.scan", **stats.fields())
        return self.clock() + self.rescan_interval if self.rescan_interval > 0 else None

    def scan(self, stop: threading.Event | None = None, under: str = "") -> ScanStats:
        """Queue every unsynced, settled image below ``under``.

        A full scan (``stop`` given) serves events between chunks; a subtree scan runs from an
        event handler and must not.
        """
        started = time.perf_counter()
        stats = ScanStats()
        progress = ScanProgress(self.progress_every)
        for chunk in walk(self.folder, under):
            self._scan_chunk(chunk, stats)
            progress.update(stats)
            self.heartbeat()
            if stop is None:
                continue
            if stop.is_set():
                break
            self._pump(0)
            self._settled()
        if stop is not None and not under and not stop.is_set():
            stats.gone = self._sweep()
        stats.seconds = time.perf_counter() - started
        return stats

    def _scan_chunk(self, chunk: list[Seen], stats: ScanStats) -> None:
        entries = [(printable(s.relpath), s.size, s.mtime_ns) for s in chunk]
        synced = self.ledger.synced(entries)
        rejected = self.ledger.rejected(entries)
        fresh_after = time.time_ns() - int(self.settle_seconds * 1e9)
        for seen, is_synced, is_rejected in zip(chunk, synced, rejected):
            stats.files += 1
            if is_synced:
                stats.synced += 1
            elif is_rejected:
                stats.rejected += 1
            elif seen.relpath in self.settler or seen.relpath in self._held:
                stats.pending += 1
            elif seen.mtime_ns > fresh_after or self.settler.arrival_of(seen.relpath) is not None:
                # Written moments ago and maybe still being written (or in a batch still arriving): let the timer decide.
                self.settler.touch(seen.relpath, self.clock(), (seen.size, seen.mtime_ns))
                stats.pending += 1
            else:
                outcome = self.take(seen.relpath, Trigger.SCAN)
                if outcome is Taken.QUEUED:
                    stats.queued += 1
                elif outcome is Taken.REJECTED:
                    stats.rejected += 1
                elif outcome is Taken.SYNCED:
                    stats.synced += 1

    def settle_all(self, stop: threading.Event) -> None:
        """Wait until every file the settle timer holds is still, and take each (``watch --once``)."""
        while not stop.is_set() and (deadline := self.settler.next_deadline()) is not None:
            stop.wait(max(0.0, deadline - self.clock()))
            self._settled()

    def _scan_subtree(self, rel: str) -> None:
        if ignore_reason(rel + "/x"):
            return
        stats = self.scan(under=rel)
        if stats.files:
            log.info("watch.scan", folder=printable(rel), **stats.fields())




def _signature(path: str) -> tuple[int, int] | Marker | None:
    """(size, mtime_ns) from lstat; None when the path is gone, FOLDER for a directory."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if stat.S_ISDIR(st.st_mode):
        return Marker.FOLDER
    return (st.st_size, st.st_mtime_ns)
