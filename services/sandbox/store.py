"""The boards' contents: items and the bytes behind them, in memory, optionally saved to a file.

Items keep Miro's own coordinates: ``x, y`` is the centre, relative to the canvas centre, or to the
parent frame's top-left corner when the item is in a frame. Image bytes are stored once per
content (sha256), whatever number of items show them.

With a state file, every change rewrites ``FILE`` (JSON, items only, atomically) and writes new
bytes to ``FILE.blobs/<sha256>`` once, so a demo survives restarts without rewriting every image.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.log import get_logger

log = get_logger("sandbox")

FIRST_ITEM_ID = 3458764600000000001
"""Miro item ids are 19-digit numbers in strings (``"3458764597687208572"``); ours count up from here."""
FIRST_RESOURCE_ID = 3458764515000000001


@dataclass
class Fetch:
    """How the sandbox got an image from ``data.url`` (for the admin view)."""

    url: str
    user_agent: str | None
    status: int | None
    content_type: str | None
    error: str | None = None


@dataclass
class Item:
    id: str
    board_id: str
    type: str  # "image" or "frame"
    title: str
    x: float
    y: float
    width: float
    height: float
    created_at: float
    created_by: str
    modified_at: float
    modified_by: str
    parent_id: str | None = None
    rotation: float | None = None
    # images
    resource_id: str | None = None
    sha256: str | None = None
    content_type: str | None = None
    bytes_len: int | None = None
    decodes: bool | None = None
    alt_text: str | None = None
    fetch: Fetch | None = None
    # frames
    fill_color: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Item:
        fetch = data.get("fetch")
        return cls(**{**data, "fetch": Fetch(**fetch) if fetch else None})


@dataclass
class _Board:
    id: str
    created_at: float
    items: dict[str, Item] = field(default_factory=dict)  # insertion order = creation order


class Store:
    def __init__(self, boards: list[str], state_path: str | None = None) -> None:
        self._lock = threading.RLock()
        self._path = Path(state_path) if state_path else None
        now = time.time()
        self._boards = {b: _Board(b, now) for b in boards}
        self._blobs: dict[str, bytes] = {}
        self._ids = itertools.count(FIRST_ITEM_ID)
        self._resource_ids = itertools.count(FIRST_RESOURCE_ID)
        if self._path and self._path.exists():
            self._load()

    # ---- reading -------------------------------------------------------------------------

    def board_ids(self) -> list[str]:
        return list(self._boards)

    def has_board(self, board_id: str) -> bool:
        return board_id in self._boards

    def board_created_at(self, board_id: str) -> float:
        return self._boards[board_id].created_at

    def get(self, board_id: str, item_id: str) -> Item | None:
        with self._lock:
            board = self._boards.get(board_id)
            return board.items.get(item_id) if board else None

    def items(self, board_id: str) -> list[Item]:
        with self._lock:
            return list(self._boards[board_id].items.values())

    def children(self, board_id: str, frame_id: str) -> list[Item]:
        return [i for i in self.items(board_id) if i.parent_id == frame_id]

    def by_resource(self, board_id: str, resource_id: str) -> Item | None:
        return next((i for i in self.items(board_id) if i.resource_id == resource_id), None)

    def blob(self, sha256: str) -> bytes:
        with self._lock:
            return self._blobs[sha256]

    # ---- changing ------------------------------------------------------------------------

    def new_ids(self) -> tuple[str, str]:
        """A fresh item id and resource id."""
        with self._lock:
            return str(next(self._ids)), str(next(self._resource_ids))

    def put_blob(self, content: bytes) -> str:
        sha = hashlib.sha256(content).hexdigest()
        with self._lock:
            if sha not in self._blobs:
                self._blobs[sha] = content
                self._write_blob(sha, content)
        return sha

    def add(self, item: Item) -> None:
        with self._lock:
            self._boards[item.board_id].items[item.id] = item
            self._save()

    def update(self, item: Item, **changes: Any) -> Item:
        with self._lock:
            for key, value in changes.items():
                setattr(item, key, value)
            self._save()
            return item

    def delete(self, board_id: str, item_id: str) -> Item | None:
        with self._lock:
            item = self._boards[board_id].items.pop(item_id, None)
            self._save()
            return item

    def reset(self) -> None:
        with self._lock:
            for board in self._boards.values():
                board.items.clear()
            self._blobs.clear()
            self._save()

    # ---- persistence ---------------------------------------------------------------------

    def _blob_dir(self) -> Path:
        assert self._path is not None
        return self._path.with_name(self._path.name + ".blobs")

    def _write_blob(self, sha: str, content: bytes) -> None:
        if not self._path:
            return
        target = self._blob_dir() / sha
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(content)
        os.replace(tmp, target)

    def _save(self) -> None:
        if not self._path:
            return
        state = {
            "version": 1,
            "boards": {b.id: {"created_at": b.created_at, "items": [dataclasses.asdict(i) for i in b.items.values()]}
                       for b in self._boards.values()},
        }
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_name(self._path.name + ".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self._path)

    def _load(self) -> None:
        assert self._path is not None
        state = json.loads(self._path.read_text())
        max_id, max_rid = FIRST_ITEM_ID - 1, FIRST_RESOURCE_ID - 1
        for board_id, saved in state.get("boards", {}).items():
            # A board given at start-up is always there; a saved board no longer configured is kept too,
            # so restarting with other --board flags loses nothing.
            board = self._boards.setdefault(board_id, _Board(board_id, saved["created_at"]))
            board.created_at = saved["created_at"]
            for data in saved["items"]:
                item = Item.from_json(data)
                if item.sha256:
                    self._blobs[item.sha256] = (self._blob_dir() / item.sha256).read_bytes()
                board.items[item.id] = item
                max_id = max(max_id, int(item.id))
                if item.resource_id:
                    max_rid = max(max_rid, int(item.resource_id))
        self._ids = itertools.count(max_id + 1)
        self._resource_ids = itertools.count(max_rid + 1)
        log.info("sandbox.state.loaded", path=str(self._path), items=sum(len(b.items) for b in self._boards.values()))
