"""Waiting for files that give no "write finished" signal. Pure: the caller passes time and stat.

A file seen created or modified (polling mode, or moved in from another folder under inotify,
which gives no close event) is ready once its (size, mtime_ns) has not changed for
``settle_seconds``. Every new sighting restarts its timer.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable

Signature = Hashable  # (size, mtime_ns) or anything comparable the caller chooses


class Settler:
    def __init__(self, settle_seconds: float) -> None:
        self.settle_seconds = settle_seconds
        self._pending: dict[str, tuple[float, Signature]] = {}  # path -> (deadline, signature)
        self._heap: list[tuple[float, str]] = []  # may hold stale entries; _pending is the truth

    def __contains__(self, relpath: str) -> bool:
        return relpath in self._pending

    def __len__(self) -> int:
        return len(self._pending)

    def touch(self, relpath: str, now: float, signature: Signature) -> None:
        """The file changed (or was just seen): wait ``settle_seconds`` from now."""
        deadline = now + self.settle_seconds
        self._pending[relpath] = (deadline, signature)
        heapq.heappush(self._heap, (deadline, relpath))
        if len(self._heap) > 4 * len(self._pending) + 64:  # many re-touches: rebuild, don't grow
            self._heap = [(d, path) for path, (d, _) in self._pending.items()]
            heapq.heapify(self._heap)

    def forget(self, relpath: str) -> None:
        self._pending.pop(relpath, None)

    def next_deadline(self) -> float | None:
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def due(self, now: float) -> list[tuple[str, Signature]]:
        """Paths whose timer ran out, with the signature recorded at their last sighting.

        They leave the tracker; the caller compares the signature with a fresh stat and either
        takes the file (stable) or calls :meth:`touch` again (still changing).
        """
        out: list[tuple[str, Signature]] = []
        while True:
            self._drop_stale()
            if not self._heap or self._heap[0][0] > now:
                return out
            _, relpath = heapq.heappop(self._heap)
            _, signature = self._pending.pop(relpath)
            out.append((relpath, signature))

    def _drop_stale(self) -> None:
        heap, pending = self._heap, self._pending
        while heap and pending.get(heap[0][1], (None,))[0] != heap[0][0]:
            heapq.heappop(heap)
