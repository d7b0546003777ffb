"""What ``ON_DELETE`` does with the item of a file that is gone, exactly once.

Every step is safe to repeat after a crash: the ledger entry is the record of what is left to
do (compare-and-set on the item id), a DELETE of an item already gone is a 404 taken as done,
and an archive move is a PATCH to a place reserved once for that item.
"""

from __future__ import annotations

from shared import keys
from shared.layout import child_center, frame_part
from shared.ledger import ItemEntry
from shared.log import get_logger
from shared.miro import MiroNotFound, MiroRateLimited
from shared.ratelimit import Cost
from shared.settings import DeletePolicy

from .uploader import Outcome, Result, Uploader, path_exists
from .vacated import requeue_if_back

log = get_logger("worker")

ARCHIVE_COUNTER = "\0archive"
"""The archive's slot counter, next to the folders' (no folder is named with a NUL)."""


class Remover(Uploader):
    def remove(self, relpath: str, item_id: str, policy: DeletePolicy | None = None) -> Result:
        result = self._remove(relpath, item_id, policy or self.settings.on_delete)
        if result.outcome is Outcome.DELETED:
            requeue_if_back(self.ctx, relpath, item_id)  # the file came back while its item was being handled
        return result

    def _remove(self, relpath: str, item_id: str, policy: DeletePolicy) -> Result:
        ledger = self.ctx.ledger
        with self._lock("path:" + relpath):
            entry = ledger.path(relpath)
            if entry is None or entry.item_id != item_id:
                return Result(Outcome.SKIPPED, item_id=item_id, reason="moved or already handled")
            if path_exists(self.settings.watch_folder, relpath):
                return Result(Outcome.SKIPPED, item_id=item_id, reason="the file is back")
            if not entry.owner:
                ledger.drop(relpath, item_id)  # it showed another file's item: nothing of its own on the board
                log.info("file.deleted", file=relpath, item_id=item_id, policy=policy.value, action="duplicate forgotten")
                return Result(Outcome.DELETED, item_id=item_id, reason="duplicate")
            if policy is DeletePolicy.KEEP:
                ledger.release(relpath, entry, policy.value)
                log.info("file.deleted", file=relpath, item_id=item_id, policy=policy.value, action="item kept on the board")
                return Result(Outcome.DELETED, item_id=item_id, reason="kept")
            if policy is DeletePolicy.REMOVE:
                return self._delete(relpath, entry)
            return self._archive(relpath, entry)

    def _delete(self, relpath: str, entry: ItemEntry) -> Result:
        self.ctx.limiter.acquire(Cost.DELETE)
        try:
            self.ctx.miro.delete_item(self.settings.miro_board_id, entry.item_id)
            action = "item deleted"
        except MiroNotFound:
            action = "item was already gone"  # a person, or our own attempt before a crash
        except MiroRateLimited as exc:
            self.ctx.limiter.pause_after(exc)
            raise
        self.ctx.ledger.drop(relpath, entry.item_id)
        log.info("file.deleted", file=relpath, item_id=entry.item_id, policy=DeletePolicy.REMOVE.value, action=action)
        return Result(Outcome.DELETED, item_id=entry.item_id, reason=action)

    def _archive(self, relpath: str, entry: ItemEntry) -> Result:
        grid = self.settings.grid
        board = self.settings.miro_board_id
        slot = self.ctx.ledger.reserve(keys.slots(board), keys.folder_next_slot(board, ARCHIVE_COUNTER), "archive:" + entry.item_id)
        part, cell = frame_part(grid, slot)
        frame = self.frames.archive(part)
        x, y = child_center(grid, cell)
        self.ctx.limiter.acquire(Cost.IMAGE_WRITE)
        try:
            self.ctx.miro.update_item(board, entry.item_id, position={"x": x, "y": y, "origin": "center"}, parent_id=frame.id)
        except MiroNotFound:
            self.ctx.ledger.drop(relpath, entry.item_id)
            log.info("file.deleted", file=relpath, item_id=entry.item_id, policy=DeletePolicy.ARCHIVE.value, action="item was already gone")
            return Result(Outcome.DELETED, item_id=entry.item_id, reason="item was already gone")
        except MiroRateLimited as exc:
            self.ctx.limiter.pause_after(exc)
            raise
        self.ctx.ledger.release(relpath, entry, DeletePolicy.ARCHIVE.value, frame.id)
        log.info("file.deleted", file=relpath, item_id=entry.item_id, policy=DeletePolicy.ARCHIVE.value, action="item archived", frame=frame.id)
        return Result(Outcome.DELETED, item_id=entry.item_id, reason="archived")
