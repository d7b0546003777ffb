"""Frames on the board, each made exactly once: one per subfolder (and continuation), the archive.

Same pattern as an image create: a lock per frame, a place reserved once (kept across retries),
an *intent* before the create call; an attempt that finds an intent looks for a frame with that
title at that place (made by an attempt that died before its record) and adopts it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared import keys
from shared.layout import ARCHIVE_TITLE, archive_frame_center, folder_frame_center, frame_size, frame_title
from shared.log import get_logger
from shared.miro import MiroApiError, MiroRateLimited
from shared.ratelimit import Cost

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


class Frames:
    def __init__(self, ctx: WorkerContext, lock: type[_ContentLock], worker: str, job_id: str | None) -> None:
        self.ctx = ctx
        self.board = ctx.settings.miro_board_id
        self._lock = lambda key: lock(ctx, key, worker, job_id)

    def for_folder(self, folder: str, part: int) -> Frame:
        key = f"folder:{folder}#{part}"

        def place() -> tuple[float, float]:
            index = self.ctx.ledger.reserve(keys.frame_index(self.board), keys.next_frame_index(self.board), key)
            return folder_frame_center(self.ctx.settings.grid, index)

        return self._ensure(key, frame_title(folder, part), place)

    def archive(self, part: int) -> Frame:
        return self._ensure(f"archive#{part}", frame_title(ARCHIVE_TITLE, part),
                            lambda: archive_frame_center(self.ctx.settings.grid, part))

    def known(self) -> dict[str, Frame]:
        """Every frame recorded, by frame key."""
        raw = self.ctx.redis.hgetall(keys.frames(self.board))
        return {(k.decode() if isinstance(k, bytes) else k): Frame(**json.loads(v)) for k, v in raw.items()}

    def _get(self, key: str) -> Frame | None:
        raw = self.ctx.redis.hget(keys.frames(self.board), key)
        return Frame(**json.loads(raw)) if raw else None

    def _ensure(self, key: str, title: str, place) -> Frame:
        found = self._get(key)
        if found is not None:
            return found
        with self._lock("frame:" + key):
            found = self._get(key)
            if found is not None:
                return found
            x, y = place()
            intent_key = keys.frame_intent(self.board, key)
            if self.ctx.redis.get(intent_key) is not None:
                adopted = self._find(title, x, y)
                if adopted is not None:
                    log.warning("frame.recovered", frame=title, item_id=adopted, reason="frame from an interrupted attempt adopted")
                    return self._record(key, Frame(adopted, title, x, y))
            self.ctx.redis.set(intent_key, json.dumps({"title": title, "x": x, "y": y}))
            w, h = frame_size(self.ctx.settings.grid)
            self.ctx.limiter.acquire(Cost.FRAME_CREATE)
            try:
                item = self.ctx.miro.create_frame(self.board, title, {"x": x, "y": y, "origin": "center"}, {"width": w, "height": h})
            except MiroRateLimited as exc:
                self.ctx.redis.delete(intent_key)  # refused outright: nothing made
                self.ctx.limiter.pause_after(exc)
                raise
            except MiroApiError as exc:
                if exc.status is not None and exc.status < 500:
                    self.ctx.redis.delete(intent_key)
                raise
            frame = self._record(key, Frame(str(item["id"]), title, x, y))
            log.info("frame.created", frame=title, item_id=frame.id, x=x, y=y)
            return frame

    def _record(self, key: str, frame: Frame) -> Frame:
        pipe = self.ctx.redis.pipeline(transaction=True)
        pipe.hset(keys.frames(self.board), key, json.dumps(frame.__dict__))
        pipe.delete(keys.frame_intent(self.board, key))
        pipe.execute()
        return frame

    def _find(self, title: str, x: float, y: float) -> str | None:
        pages = self.ctx.miro.iter_items(self.board, type="frame", before_page=lambda: self.ctx.limiter.acquire(Cost.LIST_PAGE))
        for item in pages:
            pos = item.get("position") or {}
            if (item.get("data") or {}).get("title") == title and abs(float(pos.get("x", 1e18)) - x) < 1e-6 \
                    and abs(float(pos.get("y", 1e18)) - y) < 1e-6:
                return str(item["id"])
        return None
