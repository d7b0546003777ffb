"""Walking the watch folder cheaply: ``os.scandir``, one lstat per file, no reads, in chunks.

The walk streams: a 100,000-file folder is handed over a chunk at a time and never held as a
whole, and the directory stack holds only folders still to visit.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    """Every candidate entry below ``folder/under`` (files, links, oddities; not folders).

    Hidden folders and ignored names are skipped; links to folders are reported (as entries)
    and never followed.
    """
    stack = [under]
    batch: list[Seen] = []
    while stack:
        rel_dir = stack.pop()
        try:
            with os.scandir(os.path.join(folder, rel_dir) if rel_dir else folder) as entries:
                for entry in entries:
                    relpath = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            if not entry.name.startswith("."):
                                stack.append(relpath)
                            continue
                        if ignore_reason(relpath):
                            continue
                        st = entry.stat(follow_symlinks=False)
                    except OSError:  # vanished mid-walk
                        continue
                    if stat.S_ISDIR(st.st_mode):
                        continue
                    batch.append(Seen(relpath, st.st_size, st.st_mtime_ns))
                    if len(batch) >= chunk:
                        yield batch
                        batch = []
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue  # a folder removed (or closed to us) mid-walk: its files have no future here
    if batch:
        yield batch
