"""Walking the watch folder cheaply: ``os.scandir``, one lstat per file, no reads, in chunks.

The walk goes in name order (:func:`shared.layout.natural_key`), so a backfill takes its cells
in that order: each folder's names are read and sorted, then its files handed over a chunk at a
time, then its subfolders visited. Only one folder's names are held at once (and the stack of
folders still to visit): for 100,000 files in one folder, 15 MB more at the peak and 0.25 s more
than an unsorted walk (0.5 s) on the 2-core test machine.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.layout import natural_key
from shared.log import get_logger

from .filters import ignore_reason

log = get_logger("watcher")

CHUNK = 1000
"""Files per chunk: one pipelined ledger lookup each."""


@dataclass(frozen=True)
class Seen:
    relpath: str
    size: int
    mtime_ns: int


@dataclass
class ScanStats:
    files: int = 0
    queued: int = 0
    synced: int = 0
    rejected: int = 0
    pending: int = 0  # still being written: left to the settle timer
    gone: int = 0  # ledger paths whose file is gone (pending deletions)
    seconds: float = 0.0

    def fields(self) -> dict[str, Any]:
        """The ``watch.scan`` log line's fields."""
        # Any, not int | float: the dict is spread into log.info(), whose exc_info/extra/... a narrower type clashes with.
        return {"files": self.files, "queued": self.queued, "synced": self.synced, "rejected": self.rejected,
                "pending": self.pending, "gone": self.gone, "seconds": round(self.seconds, 3)}


class ScanProgress:
    """One ``watch.scan_progress`` line every ``every`` seconds of a long scan: files seen, queued, rate."""

    def __init__(self, every: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self.clock = clock
        self.started = self.last = clock()

    def update(self, stats: ScanStats) -> None:
        now = self.clock()
        if now - self.last < self.every:
            return
        self.last = now
        elapsed = max(now - self.started, 1e-9)
        log.info("watch.scan_progress", files=stats.files, queued=stats.queued, synced=stats.synced,
                 rejected=stats.rejected, rate=round(stats.files / elapsed, 1), seconds=round(elapsed, 1))


def walk(folder: Path, under: str = "", chunk: int = CHUNK) -> Iterator[list[Seen]]:
    """Every candidate entry below ``folder/under`` (files, links, oddities; not folders), in name order.

    Hidden folders and ignored names are skipped; links to folders are reported (as entries)
    and never followed.
    """
    stack = [under]
    batch: list[Seen] = []
    while stack:
        rel_dir = stack.pop()
        try:
            with os.scandir(os.path.join(folder, rel_dir) if rel_dir else folder) as entries:
                names = sorted((entry.name for entry in entries), key=natural_key)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue  # a folder removed (or closed to us) mid-walk: its files have no future here
        subfolders = []
        for name in names:
            relpath = f"{rel_dir}/{name}" if rel_dir else name
            try:
                st = os.lstat(os.path.join(folder, relpath))
            except OSError:  # vanished mid-walk
                continue
            if stat.S_ISDIR(st.st_mode):
                if not name.startswith("."):
                    subfolders.append(relpath)
                continue
            if ignore_reason(relpath):
                continue
            batch.append(Seen(relpath, st.st_size, st.st_mtime_ns))
            if len(batch) >= chunk:
                yield batch
                batch = []
        stack.extend(reversed(subfolders))  # the first in name order is visited next
    if batch:
        yield batch
