"""The sync ledger in Redis: which path owns which item on the board.

An item belongs to a path (contract and key layout in docs/architecture.md, "Ledger"):

* paths: relative path -> :class:`ItemEntry` (item id, the bytes' sha256, size, mtime_ns, slot, frame...);
* content: sha256 -> the path owning an item with those bytes (duplicates, renames);
* released: paths whose file is gone while their item stays on the board (``ON_DELETE=keep``/``archive``).

The watcher asks :meth:`Ledger.synced` with stat data only, so a restart over a large synced
folder costs one pipelined HMGET per thousand files and no hashing. Every write that could race
another worker is one Lua script, compare-and-set on the item id.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields, replace
from enum import Enum
from typing import Any, cast

import redis

from . import keys
from .log import get_logger

log = get_logger("ledger")

SCHEMA = "2"


class Delivery(str, Enum):
    """How the picture reached Miro and whether we know it arrived."""

    FILE = "file"  # multipart upload: Miro got the bytes in the request
    UNVERIFIED = "unverified"  # url route, created; whether Miro fetched the file is checked later
    VERIFIED = "verified"  # url route, and the image server saw Miro fetch the whole file
    REPAIRED = "repaired"  # url route failed to deliver; the item was re-filled by file (PATCH)
    DUPLICATE = "duplicate"  # the same bytes were already on the board under another name


class Route(str, Enum):
    FILE = "file"
    URL = "url"


@dataclass(frozen=True)
class ItemEntry:
    item_id: str
    sha256: str  # of the bytes on the board
    size: int
    mtime_ns: int
    slot: int
    route: str  # a Route value
    delivery: str  # a Delivery value
    at: float
    frame: str | None = None  # the id of the frame holding the item; None: the root grid
    dup_of: str | None = None  # this path shows that path's item (DUPLICATES=skip)

    @property
    def owner(self) -> bool:
        return self.dup_of is None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str | bytes) -> ItemEntry:
        data = json.loads(raw)
        return cls(**{k: data[k] for k in _ENTRY_FIELDS if k in data})


_ENTRY_FIELDS = tuple(f.name for f in fields(ItemEntry))


@dataclass(frozen=True)
class Intent:
    slot: int
    title: str
    at: float
    route: str = Route.FILE.value
    frame: str | None = None  # the frame the item is made in
    cell: int | None = None  # the cell of that frame (absent in intents of the earlier version: slot % cells)


_RESERVE_SLOT = """
local slot = redis.call('HGET', KEYS[1], ARGV[1])
if slot then return tonumber(slot) end
slot = redis.call('INCR', KEYS[2]) - 1
redis.call('HSET', KEYS[1], ARGV[1], slot)
return slot
"""

# A folder's column right of the root grid, taken with its first slot (so folders that arrive together
# get theirs in the order they are queued), unless the folder has fixed-size frames of the earlier layout.
# KEYS: frame-column, next-frame-column, frame-index, next-frame-index; ARGV: folder
_RESERVE_COLUMN = """
local column = redis.call('HGET', KEYS[1], ARGV[1])
if column then return tonumber(column) end
if redis.call('HEXISTS', KEYS[3], 'folder:' .. ARGV[1] .. '#0') == 1 then return -1 end
if redis.call('EXISTS', KEYS[2]) == 0 and tonumber(redis.call('GET', KEYS[4]) or '0') > 0 then
  redis.call('SET', KEYS[2], 1)  -- column 0 holds the stack of fixed-size frames
end
column = redis.call('INCR', KEYS[2]) - 1
redis.call('HSET', KEYS[1], ARGV[1], column)
return column
"""

# KEYS: slots, counter, free set, intent(relpath); ARGV: relpath. An intent means an attempt may have
# made an item in that cell: the cell is not free then.
_GIVE_BACK = """
if redis.call('EXISTS', KEYS[4]) == 1 then return -1 end
local slot = redis.call('HGET', KEYS[1], ARGV[1])
if not slot then return -1 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[3], slot)
local top = tonumber(redis.call('GET', KEYS[2]) or '0')
while top > 0 and redis.call('SISMEMBER', KEYS[3], top - 1) == 1 do
  redis.call('SREM', KEYS[3], top - 1)
  top = top - 1
end
redis.call('SET', KEYS[2], top)
return tonumber(slot)
"""

# KEYS: paths, content, intent(relpath); ARGV: relpath, entry json, sha, owner(1/0)
_RECORD = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local sha = cjson.decode(old).sha256
  if sha ~= ARGV[3] and redis.call('HGET', KEYS[2], sha) == ARGV[1] then redis.call('HDEL', KEYS[2], sha) end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[4] == '1' then redis.call('HSET', KEYS[2], ARGV[3], ARGV[1]) end
redis.call('DEL', KEYS[3])
return 1
"""

# KEYS: paths, content, intent(new), slots; ARGV: old, new, entry json, item_id, sha
_MOVE = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old or cjson.decode(old).item_id ~= ARGV[4] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[5], ARGV[2])
redis.call('DEL', KEYS[3])
return 1
"""

# KEYS: paths, content, slots, released; ARGV: relpath, item_id, released json ('' = just drop)
_DROP = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then return 0 end
local entry = cjson.decode(old)
if entry.item_id ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
if redis.call('HGET', KEYS[2], entry.sha256) == ARGV[1] then redis.call('HDEL', KEYS[2], entry.sha256) end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[4], ARGV[1], ARGV[3]) end
return 1
"""

# KEYS: paths; ARGV: relpath, the entry as read, the entry to write. Compare-and-set on the raw
# value: Lua's cjson reads numbers as doubles and would round a 19-digit mtime_ns on the way back.
_SWAP_ENTRY = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""

_CHUNK = 1000


class Ledger:
    def __init__(self, connection: redis.Redis, board_id: str) -> None:
        self.redis = connection
        self.board_id = board_id
        self._paths = keys.ledger_paths(board_id)
        self._content = keys.ledger_content(board_id)
        self._released = keys.ledger_released(board_id)
        self._reserve = connection.register_script(_RESERVE_SLOT)
        self._reserve_column = connection.register_script(_RESERVE_COLUMN)
        self._give_back = connection.register_script(_GIVE_BACK)
        self._record = connection.register_script(_RECORD)
        self._move = connection.register_script(_MOVE)
        self._drop = connection.register_script(_DROP)
        self._swap_entry = connection.register_script(_SWAP_ENTRY)

    # --- read side (watcher, worker, check) ----------------------------------------------------
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

    def path(self, relpath: str) -> ItemEntry | None:
        raw = self.redis.hget(self._paths, relpath)
        return ItemEntry.from_json(raw) if raw else None

    def owner_of(self, sha256: str) -> str | None:
        """The path that owns an item showing these bytes, if any."""
        raw = self.redis.hget(self._content, sha256)
        return _text(raw) if raw is not None else None

    def iter_paths(self) -> Iterator[tuple[str, ItemEntry]]:
        """Every (path, entry), streamed with HSCAN (a 100,000-entry ledger is never held whole)."""
        for field_name, raw in self.redis.hscan_iter(self._paths, count=_CHUNK):
            yield _text(field_name), ItemEntry.from_json(raw)

    def all_items(self) -> dict[str, ItemEntry]:
        return dict(self.iter_paths())

    def count(self) -> int:
        return int(self.redis.hlen(self._paths))

    def released(self, relpath: str) -> dict[str, Any] | None:
        raw = self.redis.hget(self._released, relpath)
        return json.loads(raw) if raw else None

    def iter_released(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every (path, record) of an item left on the board after its file went (see :meth:`release`)."""
        for field_name, raw in self.redis.hscan_iter(self._released, count=_CHUNK):
            yield _text(field_name), json.loads(raw)

    # --- write side (worker) ----------------------------------------------------------------
    def reserve_slot(self, relpath: str, folder: str | None = None) -> int:
        """The slot for this path (in the root grid, or in ``folder``'s frame): atomic, unique, the same on every retry.

        The watcher calls it as it queues a new file and the worker as it places the item, so cells
        follow the queue's order (see :func:`shared.layout.natural_key`) whichever worker is first.
        """
        slot = self.reserve(keys.slots(self.board_id), self._counter(folder), relpath)
        if folder is not None:
            self.frame_column(folder)
        return slot

    def frame_column(self, folder: str) -> int | None:
        """``folder``'s column right of the root grid (reserved once); None: it has frames of the earlier layout."""
        column = int(self._reserve_column(keys=[keys.frame_column(self.board_id), keys.next_frame_column(self.board_id),
                                                keys.frame_index(self.board_id), keys.next_frame_index(self.board_id)],
                                          args=[folder]))
        return None if column < 0 else column

    def reserved(self, folder: str | None) -> int:
        """How many cells of the root grid (None) or of ``folder``'s frame are taken or reserved."""
        return int(self.redis.get(self._counter(folder)) or 0)

    def give_back(self, relpath: str, folder: str | None) -> int | None:
        """``relpath``'s reserved slot went unused (its item kept its old cell, or it shows another path's).

        A slot at the end of the counter is taken again by the next file; one in the middle stays empty.
        Returns the slot given back, or None (nothing reserved, or an attempt may have made an item there).
        """
        slot = int(self._give_back(keys=[keys.slots(self.board_id), self._counter(folder), keys.free_slots(self.board_id, folder),
                                         keys.intent(self.board_id, relpath)], args=[relpath]))
        return None if slot < 0 else slot

    def _counter(self, folder: str | None) -> str:
        return keys.next_slot(self.board_id) if folder is None else keys.folder_next_slot(self.board_id, folder)

    def reserve(self, hash_key: str, counter_key: str, name: str) -> int:
        """``name``'s number from ``counter_key``, taken once and remembered in ``hash_key``."""
        return int(self._reserve(keys=[hash_key, counter_key], args=[name]))

    def begin(self, relpath: str, slot: int, title: str, route: str, frame: str | None = None, cell: int | None = None) -> None:
        """Record the intent to create an item, before calling Miro (see :meth:`intent`)."""
        value = json.dumps(asdict(Intent(slot=slot, title=title, at=time.time(), route=route, frame=frame, cell=cell)))
        self.redis.set(keys.intent(self.board_id, relpath), value)

    def abandon(self, relpath: str, legacy_key: str | None = None) -> None:
        """Miro refused the create outright, so no item exists: no recovery search is needed."""
        self.redis.delete(keys.intent(self.board_id, relpath), *([keys.intent(self.board_id, legacy_key)] if legacy_key else []))

    def intent(self, relpath: str, legacy_key: str | None = None) -> Intent | None:
        """An intent left by an attempt that may have created an item and then died.

        ``legacy_key``: the content key intents were filed under before the path model; an attempt
        interrupted by the upgrade is adopted all the same.
        """
        raw = self.redis.get(keys.intent(self.board_id, relpath))
        if raw is None and legacy_key:
            raw = self.redis.get(keys.intent(self.board_id, legacy_key))
        return Intent(**json.loads(raw)) if raw else None

    def record(self, relpath: str, entry: ItemEntry, legacy_key: str | None = None) -> None:
        """``relpath`` is synced to ``entry`` (its item, or another path's with ``dup_of``)."""
        args = [relpath, entry.to_json(), entry.sha256, "1" if entry.owner else "0"]
        self._record(keys=[self._paths, self._content, keys.intent(self.board_id, relpath)], args=args)
        # An earlier version refused as bad (a file read while it was still being written) is history
        # now: `status` must not go on counting it.
        self.clear_rejection(relpath)
        if legacy_key:
            self.redis.delete(keys.intent(self.board_id, legacy_key))

    def touch(self, relpath: str, entry: ItemEntry, size: int, mtime_ns: int) -> None:
        """The same bytes under a new (size, mtime): synced, nothing to send."""
        self.record(relpath, replace(entry, size=size, mtime_ns=mtime_ns, at=time.time()))

    def move(self, old: str, new: str, entry: ItemEntry) -> bool:
        """``old``'s item now belongs to ``new``; False when ``old`` no longer points at that item."""
        keys_ = [self._paths, self._content, keys.intent(self.board_id, new), keys.slots(self.board_id)]
        return bool(self._move(keys=keys_, args=[old, new, entry.to_json(), entry.item_id, entry.sha256]))

    def drop(self, relpath: str, item_id: str) -> bool:
        """Forget ``relpath`` (its item is gone, or it was a duplicate); only while it points at ``item_id``."""
        return bool(self._drop(keys=self._drop_keys(), args=[relpath, item_id, ""]))

    def release(self, relpath: str, entry: ItemEntry, policy: str, frame: str | None = None) -> bool:
        """The file is gone and its item stays on the board (kept, or archived in ``frame``)."""
        value = json.dumps(asdict(entry) | {"released_at": time.time(), "policy": policy, "archive_frame": frame})
        return bool(self._drop(keys=self._drop_keys(), args=[relpath, entry.item_id, value]))

    def set_delivery(self, relpath: str, item_id: str, delivery: Delivery) -> bool:
        """Change how ``relpath``'s item was delivered; only while the path still points at ``item_id``."""
        for _ in range(10):  # another field of the entry changed in between: read again
            raw = self.redis.hget(self._paths, relpath)
            if raw is None or ItemEntry.from_json(raw).item_id != item_id:
                return False
            new = replace(ItemEntry.from_json(raw), delivery=Delivery(delivery).value).to_json()
            if self._swap_entry(keys=[self._paths], args=[relpath, raw, new]):
                return True
        return False

    def _drop_keys(self) -> list[str]:
        return [self._paths, self._content, keys.slots(self.board_id), self._released]

    # --- bad input ----------------------------------------------------------------------------
    def reject(self, relpath: str, size: int, mtime_ns: int, reason: str) -> bool:
        """Remember a bad file version; True when it was not already reported (log it then)."""
        if self.rejected([(relpath, size, mtime_ns)])[0]:
            return False
        self.redis.hset(keys.rejected(self.board_id), relpath, rejection_record(size, mtime_ns, reason))
        return True

    def rejections(self) -> dict[str, dict[str, Any]]:
        """Every stored rejection: relative path -> {size, mtime_ns, reason, ...}."""
        raw = cast("dict[bytes, bytes]", self.redis.hgetall(keys.rejected(self.board_id)))
        return {_text(path): json.loads(value) for path, value in raw.items()}

    def rejection(self, relpath: str) -> dict[str, Any] | None:
        raw = self.redis.hget(keys.rejected(self.board_id), relpath)
        return json.loads(raw) if raw else None

    def clear_rejection(self, relpath: str) -> bool:
        return bool(self.redis.hdel(keys.rejected(self.board_id), relpath))

    def rejected(self, entries: Iterable[tuple[str, int, int]]) -> list[bool]:
        entries = list(entries)
        if not entries:
            return []
        raw = self.redis.hmget(keys.rejected(self.board_id), [p for p, _, _ in entries])
        out: list[bool] = []
        for (_, size, mtime_ns), value in zip(entries, raw):
            entry: dict[str, int] | None = json.loads(value) if value else None
            out.append(bool(entry and entry["size"] == size and entry["mtime_ns"] == mtime_ns))
        return out

    def rejected_because(self, relpath: str, size: int, mtime_ns: int) -> str | None:
        """Why this version of the file was refused as bad; None when it was not."""
        raw = self.redis.hget(keys.rejected(self.board_id), relpath)
        entry = json.loads(raw) if raw else None
        return str(entry["reason"]) if entry and (entry["size"], entry["mtime_ns"]) == (size, mtime_ns) else None

    def forget(self, relpath: str) -> bool:
        """Drop ``relpath``'s entry (and a rejection) so the next scan uploads the file again."""
        entry = self.path(relpath)
        dropped = self.drop(relpath, entry.item_id) if entry is not None else False
        unrejected = self.clear_rejection(relpath)
        released = bool(self.redis.hdel(self._released, relpath))
        return dropped or unrejected or released

    # --- upgrade ------------------------------------------------------------------------------
    def migrate(self, wait: float = 600.0) -> int | None:
        """Bring a first-layout ledger into the path model, once; see :func:`shared.migrate.migrate`."""
        from .migrate import migrate

        return migrate(self.redis, self.board_id, wait=wait)


def rejection_record(size: int, mtime_ns: int, reason: str, **more: Any) -> str:
    """A ``keys.rejected`` value: the file version refused, why and when (``status`` lists the newest first)."""
    return json.dumps({"size": size, "mtime_ns": mtime_ns, "reason": reason, "at": round(time.time(), 3), **more})


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value
