"""Deleted files, held for DELETE_SETTLE_SECONDS, then handed to the workers all together or not at all.

A deletion waits so that a file which reappears (an editor's delete-then-write save), or whose
bytes show up at a new path (a move that arrives as delete + create), is not a deletion. While
more than MAX_DELETE wait, or the watch folder is missing or empty, none is acted on
(:func:`shared.plan.judge_deletions`): one log line says so, and the board is left alone.
"""

from __future__ import annotations

from collections.abc import Callable

from shared.log import get_logger
from shared.plan import DeleteVerdict, judge_deletions

log = get_logger("watcher")


UNKNOWN = ""
"""The item id of a file that vanished while its upload was in flight (its entry comes later)."""
LOOKUPS = 6
"""How many settle periods a vanished file without a ledger entry (yet) is looked up again."""


HELD_ADVICE = {
    # Never "apply them" here: these deletions are what a missing or unmounted folder looks like.
    DeleteVerdict.FOLDER_GONE: "nothing deleted; check that the watch folder is mounted and WATCH_FOLDER is right: "
                               "its files count as present again as soon as they are back",
    DeleteVerdict.TOO_MANY: "nothing deleted; if the files really were deleted, run `miro-sync check --fix --max-delete N` "
                            "to apply them, or raise MAX_DELETE",
}
"""What the ``delete.held`` line tells a person to do, by why the deletions are held."""


class Deletions:
    def __init__(self, settle_seconds: float, max_delete: int) -> None:
        self.settle_seconds = settle_seconds
        self.max_delete = max_delete
        self._pending: dict[str, tuple[str, float]] = {}  # relpath -> (item id or UNKNOWN, when first seen gone)
        self._lookups: dict[str, int] = {}
        self._held: DeleteVerdict | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, relpath: str) -> bool:
        return relpath in self._pending

    @property
    def held(self) -> DeleteVerdict | None:
        return self._held

    def note(self, relpath: str, item_id: str, now: float) -> None:
        if relpath not in self._pending or self._pending[relpath][0] != item_id:
            self._pending[relpath] = (item_id, now)

    def look_again(self, relpath: str, now: float) -> None:
        """A vanished file still without an entry: its upload may still be finishing."""
        tries = self._lookups.get(relpath, 0) + 1
        if tries <= LOOKUPS:
            self._lookups[relpath] = tries
            self._pending[relpath] = (UNKNOWN, now)
        else:  # never uploaded (a file deleted before its upload, or a bad one): nothing on the board
            self.forget(relpath)

    def forget(self, relpath: str) -> None:
        self._pending.pop(relpath, None)
        self._lookups.pop(relpath, None)
        if not self._pending:
            self._held = None

    def keep_only(self, relpaths: set[str]) -> None:
        """After a full sweep: what is no longer gone (or no longer in the ledger) is not pending."""
        for relpath in [p for p in self._pending if p not in relpaths]:
            self.forget(relpath)

    def next_deadline(self) -> float | None:
        if not self._pending or self._held is not None:
            return None
        return min(seen for _, seen in self._pending.values()) + self.settle_seconds

    def due(self, now: float, folder_has_entries: Callable[[], bool]) -> list[tuple[str, str]]:
        """(relpath, item id) of the deletions to act on now; [] while the guard holds them."""
        if not self._pending:
            return []
        if self._held is None:
            if min(seen for _, seen in self._pending.values()) + self.settle_seconds > now:
                return []
            known = sum(1 for item, _ in self._pending.values() if item != UNKNOWN)
            verdict = judge_deletions(known, self.max_delete, folder_has_entries())
            if verdict is not DeleteVerdict.PROCEED:
                self._held = verdict
                log.warning("delete.held", count=known, max_delete=self.max_delete, reason=verdict.value, action=HELD_ADVICE[verdict])
                return []
        else:
            return []
        out = [(p, item) for p, (item, seen) in self._pending.items() if seen + self.settle_seconds <= now]
        for relpath, _ in out:
            del self._pending[relpath]
        return out
