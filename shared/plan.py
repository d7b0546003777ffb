"""Sync decisions, pure: what a file version or a vanished file means for the board. No I/O.

The worker (:mod:`services.worker.uploader`), the watcher's deletions, ``miro-sync check`` and
``miro-sync sync --dry-run`` all decide through here, so they can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .ledger import ItemEntry


class Action(str, Enum):
    CREATE = "create"  # a new item
    UPDATE = "update"  # the path's item gets the new bytes (multipart PATCH)
    MOVE = "move"  # a vanished path's item, same bytes, now belongs to this path
    DUPLICATE = "duplicate"  # the bytes are on the board under another, present, path
    TOUCH = "touch"  # same bytes, new mtime: nothing to send


def decide(current: ItemEntry | None, sha256: str, owner: ItemEntry | None, owner_present: bool, skip_duplicates: bool) -> Action:
    """What to do with a file version whose bytes hash to ``sha256``.

    ``current``: the path's ledger entry; ``owner``: the entry of *another* path owning an item
    with the same bytes, and ``owner_present`` whether that path's file still exists.
    """
    if current is not None and current.sha256 == sha256:
        return Action.TOUCH
    if current is not None and current.owner:
        return Action.UPDATE
    if owner is not None and owner.owner:
        if not owner_present:
            return Action.MOVE
        if skip_duplicates:
            return Action.DUPLICATE
    return Action.CREATE


class DeleteVerdict(str, Enum):
    PROCEED = "proceed"
    TOO_MANY = "too many at once"  # more than MAX_DELETE waiting: a dropped mount, a wiped folder
    FOLDER_GONE = "watch folder missing or empty"  # an unmounted volume looks exactly like this


def judge_deletions(pending: int, max_delete: int, folder_has_entries: bool) -> DeleteVerdict:
    """May the deletions now waiting be acted on? All of them, or none (the mass-delete guard)."""
    if pending == 0:
        return DeleteVerdict.PROCEED
    if not folder_has_entries:
        return DeleteVerdict.FOLDER_GONE
    if pending > max_delete:
        return DeleteVerdict.TOO_MANY
    return DeleteVerdict.PROCEED


@dataclass(frozen=True)
class Drift:
    """What ``miro-sync check`` finds between folder, ledger and board (lists of relative paths)."""

    missing_on_board: list[str]  # the ledger's item is not on the board (deleted by a person?)
    changed: list[str]  # the file changed since its upload
    orphaned: list[str]  # the file is gone, its item is still on the board
    dangling: list[str]  # the file is gone and so is the item: the entry points at nothing
    unsynced: list[str]  # a file with no entry (new, or forgotten)

    @property
    def in_sync(self) -> bool:
        return not (self.missing_on_board or self.changed or self.orphaned or self.dangling or self.unsynced)


def compare(files: dict[str, tuple[int, int]], ledger: dict[str, ItemEntry], board: set[str]) -> Drift:
    """Folder (path -> (size, mtime_ns)), ledger and the ids of the board's items: the differences."""
    missing: list[str] = []
    changed: list[str] = []
    orphaned: list[str] = []
    dangling: list[str] = []
    for relpath, entry in sorted(ledger.items()):
        on_board = entry.item_id in board
        version = files.get(relpath)
        if version is None:
            (orphaned if on_board and entry.owner else dangling).append(relpath)
            continue
        if not on_board:
            missing.append(relpath)
        elif version != (entry.size, entry.mtime_ns):
            changed.append(relpath)
    unsynced = sorted(p for p in files if p not in ledger)
    return Drift(missing, changed, orphaned, dangling, unsynced)
