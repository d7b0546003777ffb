"""Waiting for files that give no "write finished" signal. Pure: the caller passes time and stat.

A file seen created or modified (polling mode, or moved in from another folder under inotify,
which gives no close event) is ready once its (size, mtime_ns) has not changed for
``settle_seconds``. Every new sighting restarts its timer.

A folder that appears (a copy of a folder, a folder moved in from another disk) *arrives*: the
files that land in it are one batch, ready together once nothing in the folder has changed for
``settle_seconds`` (or after :data:`ARRIVAL_LIMIT`), so the caller can queue them in name order rather than in the order the
copy happened to write them. A file closed in an arriving folder joins the batch too (see
:meth:`Settler.arrival_of`); elsewhere a closed file is not held at all.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable

Signature = Hashable  # (size, mtime_ns) or anything comparable the caller chooses

BATCH_GRACE = 0.05
"""Seconds: files that fall due this soon after the first one due are handed over with it. A poll that
finds several new files touches them milliseconds apart; together, they are queued in name order. (Early
is safe: the caller compares the signature with a fresh stat, and a file still changing waits again.)"""

ARRIVAL_LIMIT = 60.0
"""Seconds a folder may go on arriving: then what landed so far is handed over, and later files in it
are on their own. A long copy, or a tethered camera writing into a folder it just made, is not held
back for its whole length (a camera card of a few hundred pictures copies well within it)."""


class Settler:
    def __init__(self, settle_seconds: float, arrival_limit: float = ARRIVAL_LIMIT) -> None:
        self.settle_seconds = settle_seconds
        self.arrival_limit = arrival_limit
        self._pending: dict[str, tuple[float, Signature]] = {}  # path -> (deadline, signature)
        self._heap: list[tuple[float, str]] = []  # may hold stale entries; _pending is the truth
        self._arrivals: dict[str, float] = {}  # arriving folder -> when it is still (last change + settle_seconds)
        self._arrived_by: dict[str, float] = {}  # arriving folder -> when it is handed over, still or not

    def __contains__(self, relpath: str) -> bool:
        return relpath in self._pending

    def __len__(self) -> int:
        return len(self._pending)

    def touch(self, relpath: str, now: float, signature: Signature) -> None:
        """The file changed (or was just seen): wait ``settle_seconds`` from now."""
        deadline = now + self.settle_seconds
        self.stir(relpath, now)
        self._pending[relpath] = (deadline, signature)
        heapq.heappush(self._heap, (deadline, relpath))
        if len(self._heap) > 4 * len(self._pending) + 64:  # many re-touches: rebuild, don't grow
            self._heap = [(d, path) for path, (d, _) in self._pending.items()]
            heapq.heapify(self._heap)

    def forget(self, relpath: str) -> None:
        self._pending.pop(relpath, None)

    # --- folders that arrive --------------------------------------------------------------------------
    def arriving(self, folder: str, now: float) -> bool:
        """``folder`` just appeared: what lands in it is one batch (a folder inside an arriving one joins that).

        True when this starts a batch of its own.
        """
        if self.stir(folder, now):
            return False
        self._arrivals[folder] = now + self.settle_seconds
        self._arrived_by[folder] = now + self.arrival_limit
        return True

    def arrival_of(self, relpath: str) -> str | None:
        """The outermost arriving folder that holds ``relpath`` (or is it), if any."""
        if not self._arrivals:
            return None
        parts = relpath.split("/")
        for depth in range(1, len(parts) + 1):
            folder = "/".join(parts[:depth])
            if folder in self._arrivals:
                return folder
        return None

    def stir(self, relpath: str, now: float) -> bool:
        """Something changed at ``relpath``: its arriving folder, if it is in one, is not still yet."""
        folder = self.arrival_of(relpath)
        if folder is None:
            return False
        self._arrivals[folder] = max(self._arrivals[folder], now + self.settle_seconds)
        return True

    # --- what is ready ------------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def due(self, now: float) -> list[tuple[str, Signature]]:
        """Paths whose timer ran out (with their arriving folder's), with the signature of their last sighting.

        They leave the tracker; the caller compares the signature with a fresh stat and either
        takes the file (stable) or calls :meth:`touch` again (still changing). A batch comes out
        whole, in one call.
        """
        out: list[tuple[str, Signature]] = []
        waiting: list[tuple[float, str, Signature]] = []
        while True:
            self._drop_stale()
            if not self._heap or self._heap[0][0] > (now + BATCH_GRACE if out else now):
                break
            _, relpath = heapq.heappop(self._heap)
            _, signature = self._pending.pop(relpath)
            folder = self.arrival_of(relpath)
            ready_at = min(self._arrivals[folder], self._arrived_by[folder]) if folder is not None else now
            if ready_at > now:  # its batch is still arriving: it waits with it (put back below, not popped again here)
                waiting.append((ready_at, relpath, signature))
                continue
            out.append((relpath, signature))
        for ready_at, relpath, signature in waiting:
            self._pending[relpath] = (ready_at, signature)
            heapq.heappush(self._heap, (ready_at, relpath))
        for folder, still_at in list(self._arrivals.items()):
            if min(still_at, self._arrived_by[folder]) <= now:
                del self._arrivals[folder], self._arrived_by[folder]  # arrived: a later file in it is on its own
        return out

    def _drop_stale(self) -> None:
        heap, pending = self._heap, self._pending
        while heap and pending.get(heap[0][1], (None,))[0] != heap[0][0]:
            heapq.heappop(heap)
