"""The sync ledger in Redis: what is on the board, and which files it came from.

Two maps per board (keys in :mod:`shared.keys`):

* content: sha256 of the bytes -> the Miro item made from them (id, route, delivery, slot);
* paths: file path relative to the watch folder -> (size, mtime_ns, sha256) when last synced.

The watcher asks :meth:`Ledger.synced` with stat data only, so a restart over a large synced
folder costs one pipelined HMGET per thousand files and no hashing. The worker writes both maps
and clears its intent record in one MULTI, so the ledger never says "uploaded" without an item.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Iterable, Sequence

import redis

from . import keys


class Delivery(str, Enum):
    """How the picture reached Miro and whether we know it arrived."""

    FILE = "file"  # multipart upload: Miro got the bytes in the request
    UNVERIFIED = "unverified"  # url route, created; whether Miro fetched the file is checked later
    VERIFIED = "verified"  # url route, and the image server saw Miro fetch the whole file
    REPAIRED = "repaired"  # url route failed to deliver; the item was re-filled by file (PATCH)
    DUPLICATE = "duplicate"  # the same bytes were already on the board under another name


@dataclass(frozen=True)
class PathEntry:
    size: int
    mtime_ns: int
    sha256: str


@dataclass(frozen=True)
class ContentEntry:
    item_id: str
    route: str  # "file" or "url": the route of the create call
    delivery: str  # a Delivery value
    slot: int
    path: str
    at: float


@dataclass(frozen=True)
class Intent:
    slot: int
    title: str
    at: float
    route: str = "file"


_RESERVE_SLOT = """
local slot = redis.call('HGET', KEYS[1], ARGV[1])
if slot then return tonumber(slot) end
slot = redis.call('INCR', KEYS[2]) - 1
redis.call('HSET', KEYS[1], ARGV[1], slot)
return slot
"""

_SET_DELIVERY = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local entry = cjson.decode(raw)
if tostring(entry['item_id']) ~= ARGV[2] then return 0 end
entry['delivery'] = ARGV[3]
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(entry))
return 1
"""

_CHUNK = 1000


class Ledger:
    def __init__(self, connection: redis.Redis, board_id: str) -> None:
        self.redis = connection
        self.board_id = board_id
        self._paths = keys.ledger_paths(board_id)
        self._content = keys.ledger_content(board_id)
        self._reserve = connection.register_script(_RESERVE_SLOT)
        self._set_delivery = connection.register_script(_SET_DELIVERY)

    # --- read side (watcher, worker) -------------------------------------------------------
    def synced(self, entries: Sequence[tuple[str, int, int]]) -> list[bool]:
        """For each (path, size, mtime_ns): is that exact file version already synced?"""
        result: list[bool] = []
        for start in range(0, len(entries), _CHUNK):
            chunk = entries[start : start + _CHUNK]
            raw = self.redis.hmget(self._paths, [p for p, _, _ in chunk])
            for (_, size, mtime_ns), value in zip(chunk, raw):
                if value is None:
                    result.append(False)
                    continue
                entry = json.loads(value)
                result.append(entry["size"] == size and entry["mtime_ns"] == mtime_ns)
        return result

    def path(self, relpath: str) -> PathEntry | None:
        raw = self.redis.hget(self._paths, relpath)
        return PathEntry(**json.loads(raw)) if raw else None

    def content(self, sha256: str) -> ContentEntry | None:
        raw = self.redis.hget(self._content, sha256)
        return ContentEntry(**json.loads(raw)) if raw else None

    def all_content(self) -> dict[str, ContentEntry]:
        return {k.decode() if isinstance(k, bytes) else k: ContentEntry(**json.loads(v)) for k, v in self.redis.hgetall(self._content).items()}

    # --- write side (worker) ----------------------------------------------------------------
    def reserve_slot(self, sha256: str) -> int:
        """The grid slot for these bytes: atomic, unique, and the same on every retry."""
        return int(self._reserve(keys=[keys.slots(self.board_id), keys.next_slot(self.board_id)], args=[sha256]))

    def begin(self, sha256: str, slot: int, title: str, route: str) -> None:
        """Record the intent to create an item, before calling Miro (see :meth:`intent`)."""
        value = json.dumps(asdict(Intent(slot=slot, title=title, at=time.time(), route=route)))
        self.redis.set(keys.intent(self.board_id, sha256), value)

    def abandon(self, sha256: str) -> None:
        """Miro refused the create outright, so no item exists: no recovery search is needed."""
        self.redis.delete(keys.intent(self.board_id, sha256))

    def intent(self, sha256: str) -> Intent | None:
        """An intent left by an attempt that may have created an item and then died."""
        raw = self.redis.get(keys.intent(self.board_id, sha256))
        return Intent(**json.loads(raw)) if raw else None

    def record(self, relpath: str, size: int, mtime_ns: int, sha256: str, content: ContentEntry | None) -> None:
        """Mark ``relpath`` synced; with ``content``, also what item its bytes became."""
        pipe = self.redis.pipeline(transaction=True)
        if content is not None:
            pipe.hset(self._content, sha256, json.dumps(asdict(content)))
        pipe.hset(self._paths, relpath, json.dumps(asdict(PathEntry(size=size, mtime_ns=mtime_ns, sha256=sha256))))
        pipe.delete(keys.intent(self.board_id, sha256))
        pipe.execute()

    def set_delivery(self, sha256: str, item_id: str, delivery: Delivery, pipe: redis.client.Pipeline | None = None) -> bool:
        """Change how the item made from ``sha256`` was delivered, if the ledger still names ``item_id``.

        With ``pipe`` (a MULTI) the change joins the caller's transaction, and the answer is in its result.
        """
        return bool(self._set_delivery(keys=[self._content], args=[sha256, item_id, delivery.value], client=pipe or self.redis))

    # --- bad input ----------------------------------------------------------------------------
    def reject(self, relpath: str, size: int, mtime_ns: int, reason: str) -> bool:
        """Remember a bad file version; True when it was not already reported (log it then)."""
        value = json.dumps({"size": size, "mtime_ns": mtime_ns, "reason": reason})
        if self.rejected([(relpath, size, mtime_ns)])[0]:
            return False
        self.redis.hset(keys.rejected(self.board_id), relpath, value)
        return True

    def rejected(self, entries: Iterable[tuple[str, int, int]]) -> list[bool]:
        entries = list(entries)
        if not entries:
            return []
        raw = self.redis.hmget(keys.rejected(self.board_id), [p for p, _, _ in entries])
        out = []
        for (_, size, mtime_ns), value in zip(entries, raw):
            entry = json.loads(value) if value else None
            out.append(bool(entry) and entry["size"] == size and entry["mtime_ns"] == mtime_ns)
        return out
