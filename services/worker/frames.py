"""Frames on the board, each made exactly once: one per subfolder, growing as it fills; the archive.

Same pattern as an image create: a lock per frame, a place reserved once (kept across retries),
an *intent* before the create call; an attempt that finds an intent looks for a frame with that
title at that place (made by an attempt that died before its record) and adopts it.

A folder's frame grows a row at a time (layout in :mod:`shared.layout`): before a child goes into
a row the frame does not have yet, the frame is made taller with one PATCH, its top-left corner
(which children are measured from) staying where it is. It grows to hold every cell reserved so
far (the watcher reserves as it queues), so a copied folder costs a resize or so, not one per row.
A PATCH done twice is harmless, so a resize needs no intent: an attempt that died after it does it again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

from shared import keys
from shared.layout import (
    ARCHIVE_TITLE,
    Box,
    archive_frame_center,
    folder_frame_box,
    frame_part,
    frame_rows,
    frame_size,
    frame_title,
    row_of,
    stacked_frame_center,
)
from shared.log import get_logger
from shared.miro import MiroApiError, MiroRateLimited
from shared.ratelimit import Cost
from shared.settings import Grid

from .context import WorkerContext

if TYPE_CHECKING:
    from .uploader import _ContentLock

log = get_logger("worker")


@dataclass(frozen=True)
class Frame:
    id: str
    title: str
    x: float  # centre, board coordinates
    y: float
    rows: int | None = None  # a folder's growing frame: its height in rows; None: a fixed-size frame


class Frames:
    def __init__(self, ctx: WorkerContext, lock: type[_ContentLock], worker: str, job_id: str | None) -> None:
        self.ctx = ctx
        self.board = ctx.settings.miro_board_id
        self.grid = ctx.settings.grid
        self._lock = lambda key: lock(ctx, key, worker, job_id)

    def for_slot(self, folder: str, slot: int) -> tuple[Frame, int]:
        """The frame holding ``folder``'s ``slot`` and the slot's cell in it; the frame is made or grown if need be."""
        column = self.ctx.ledger.frame_column(folder)
        if column is None:
            # A folder laid out by the earlier version keeps its fixed-size frames, and their continuations.
            part, cell = frame_part(self.grid, slot)
            return self._stacked(folder, part), cell
        return self._growing(folder, column, row_of(self.grid, slot) + 1), slot

    def archive(self, part: int) -> Frame:
        return self._ensure(f"archive#{part}", frame_title(ARCHIVE_TITLE, part), lambda: _fixed(self.grid, archive_frame_center(self.grid, part)))

    def known(self) -> dict[str, Frame]:
        """Every frame recorded, by frame key."""
        raw = self.ctx.redis.hgetall(keys.frames(self.board))
        return {(k.decode() if isinstance(k, bytes) else k): Frame(**json.loads(v)) for k, v in raw.items()}

    # --- a folder's frame ---------------------------------------------------------------------------
    def _growing(self, folder: str, column: int, need: int) -> Frame:
        key = f"folder:{folder}"
        found = self._get(key)
        if found is not None and (found.rows or 0) >= need:
            return found
        with self._lock("frame:" + key):
            found = self._get(key)
            if found is not None and (found.rows or 0) >= need:
                return found
            rows = max(need, frame_rows(self.grid, self.ctx.ledger.reserved(folder)))
            box = folder_frame_box(self.grid, column, rows)
            if found is None:
                found = self._make(key, folder, box, grows=True)
            if (found.rows or 0) < need:  # made smaller by an attempt that died, or full
                found = self._grow(key, found, box, rows)
            return found

    def _grow(self, key: str, frame: Frame, box: Box, rows: int) -> Frame:
        x, y = box.center
        self.ctx.limiter.acquire(Cost.FRAME_UPDATE)
        try:
            self.ctx.miro.update_frame(self.board, frame.id, {"x": x, "y": y}, {"width": box.width, "height": box.height})
        except MiroRateLimited as exc:
            self.ctx.limiter.pause_after(exc)
            raise
        grown = self._record(key, replace(frame, x=x, y=y, rows=rows))
        log.info("frame.grown", frame=frame.title, item_id=frame.id, rows=rows, before=frame.rows)
        return grown

    def _stacked(self, folder: str, part: int) -> Frame:
        key = f"folder:{folder}#{part}"

        def place() -> Box:
            index = self.ctx.ledger.reserve(keys.frame_index(self.board), keys.next_frame_index(self.board), key)
            return _fixed(self.grid, stacked_frame_center(self.grid, index))

        return self._ensure(key, frame_title(folder, part), place)

    # --- made once ----------------------------------------------------------------------------------
    def _get(self, key: str) -> Frame | None:
        raw = self.ctx.redis.hget(keys.frames(self.board), key)
        return Frame(**json.loads(raw)) if raw else None

    def _ensure(self, key: str, title: str, place: Callable[[], Box]) -> Frame:
        found = self._get(key)
        if found is not None:
            return found
        with self._lock("frame:" + key):
            found = self._get(key)
            if found is not None:
                return found
            return self._make(key, title, place(), grows=False)

    def _make(self, key: str, title: str, box: Box, grows: bool) -> Frame:
        """Create the frame (under its lock), or adopt the one an interrupted attempt made at ``box``'s corner."""
        x, y = box.center
        intent_key = keys.frame_intent(self.board, key)
        if self.ctx.redis.get(intent_key) is not None:
            adopted = self._find(title, box)
            if adopted is not None:
                item_id, height = adopted
                log.warning("frame.recovered", frame=title, item_id=item_id, reason="frame from an interrupted attempt adopted")
                rows = round(height / self.grid.cell_height) if grows else None
                return self._record(key, Frame(item_id, title, x, box.top + height / 2, rows))
        self.ctx.redis.set(intent_key, json.dumps({"title": title, "x": x, "y": y}))
        self.ctx.limiter.acquire(Cost.FRAME_CREATE)
        try:
            item = self.ctx.miro.create_frame(self.board, title, {"x": x, "y": y, "origin": "center"}, {"width": box.width, "height": box.height})
        except MiroRateLimited as exc:
            self.ctx.redis.delete(intent_key)  # refused outright: nothing made
            self.ctx.limiter.pause_after(exc)
            raise
        except MiroApiError as exc:
            if exc.status is not None and exc.status < 500:
                self.ctx.redis.delete(intent_key)
            raise
        rows = round(box.height / self.grid.cell_height) if grows else None
        frame = self._record(key, Frame(str(item["id"]), title, x, y, rows))
        log.info("frame.created", frame=title, item_id=frame.id, x=x, y=y, rows=rows)
        return frame

    def _record(self, key: str, frame: Frame) -> Frame:
        pipe = self.ctx.redis.pipeline(transaction=True)
        pipe.hset(keys.frames(self.board), key, json.dumps(asdict(frame)))
        pipe.delete(keys.frame_intent(self.board, key))
        pipe.execute()
        return frame

    def _find(self, title: str, box: Box) -> tuple[str, float] | None:
        """(id, height) of a frame titled ``title`` whose top-left corner is ``box``'s (a grown frame keeps its corner)."""
        pages = self.ctx.miro.iter_items(self.board, type="frame", before_page=lambda: self.ctx.limiter.acquire(Cost.LIST_PAGE))
        for item in pages:
            pos, geo = item.get("position") or {}, item.get("geometry") or {}
            if (item.get("data") or {}).get("title") != title or "x" not in pos or "width" not in geo:
                continue
            width, height = float(geo["width"]), float(geo.get("height", 0.0))
            if abs(float(pos["x"]) - width / 2 - box.left) < 1e-6 and abs(float(pos.get("y", 0.0)) - height / 2 - box.top) < 1e-6:
                return str(item["id"]), height
        return None


def _fixed(grid: Grid, center: tuple[float, float]) -> Box:
    """A fixed-size frame's box from its centre."""
    w, h = frame_size(grid)
    return Box(center[0] - w / 2, center[1] - h / 2, w, h)
