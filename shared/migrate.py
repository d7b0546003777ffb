"""Upgrading a ledger of the first layout (content -> item) to the path model, in place, once.

The first layout: ``paths`` relpath -> ``{size, mtime_ns, sha256}`` where ``sha256`` is the
content key (the bytes' sha256, with ``-<sha1(path)[:12]>`` appended under ``DUPLICATES=upload``),
and ``content`` content key -> ``{item_id, route, delivery, slot, path, at}``.

Crash safety: the new hashes are built under staging keys while the old ones stay untouched, then
swapped in together with the schema mark in one MULTI. A process killed before the swap leaves
the old ledger as it was (the next start begins again from scratch); after it, the new one whole.
Memory: the old hash is read with HSCAN a thousand fields at a time, never whole.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

import redis

from . import keys
from .ledger import SCHEMA, Delivery, ItemEntry, Route
from .log import get_logger

log = get_logger("ledger")

_CHUNK = 1000
LOCK_TTL = 60
"""Seconds; refreshed every chunk, so a dead migrator's lock soon frees the others."""


def migrate(connection: redis.Redis, board_id: str, wait: float = 600.0) -> int | None:
    """Migrate this board's ledger if needed. Returns the entries migrated, None when nothing was to do.

    Of several processes starting together, one migrates and the others wait (up to ``wait`` s)
    until the schema mark appears; if the migrator dies, one of them takes over.
    """
    schema_key = keys.ledger_schema(board_id)
    deadline = time.monotonic() + wait
    token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    while True:
        if _text(connection.get(schema_key)) == SCHEMA:
            return None
        if connection.set(keys.migrate_lock(board_id), token, nx=True, ex=LOCK_TTL):
            try:
                if _text(connection.get(schema_key)) == SCHEMA:
                    return None
                return _migrate(connection, board_id, token)
            finally:
                if _text(connection.get(keys.migrate_lock(board_id))) == token:
                    connection.delete(keys.migrate_lock(board_id))
        if time.monotonic() > deadline:
            raise TimeoutError("another process has been migrating the ledger for too long")
        time.sleep(0.2)


def _migrate(connection: redis.Redis, board_id: str, token: str) -> int:
    started = time.perf_counter()
    old_paths, old_content = keys.ledger_paths(board_id), keys.ledger_content(board_id)
    new_paths, new_content = keys.ledger_staging(board_id, "paths"), keys.ledger_staging(board_id, "content")
    connection.delete(new_paths, new_content)  # an interrupted earlier run: start again
    counts: dict[str, Any] = {"entries": 0, "duplicates": 0, "without_item": 0}
    batch: list[tuple[str, dict[str, Any]]] = []
    for field_name, raw in connection.hscan_iter(old_paths, count=_CHUNK):
        batch.append((str(_text(field_name)), json.loads(raw)))
        if len(batch) >= _CHUNK:
            _convert(connection, old_content, new_paths, new_content, batch, counts)
            connection.expire(keys.migrate_lock(board_id), LOCK_TTL)
            batch = []
    _convert(connection, old_content, new_paths, new_content, batch, counts)
    if _text(connection.get(keys.migrate_lock(board_id))) != token:
        raise RuntimeError("lost the migration lock (this process was too slow); another one takes over")
    pipe = connection.pipeline(transaction=True)
    if counts["entries"]:
        pipe.rename(new_paths, old_paths)
    else:
        pipe.delete(old_paths)
    if connection.exists(new_content):
        pipe.rename(new_content, old_content)
    else:
        pipe.delete(old_content)
    pipe.set(keys.ledger_schema(board_id), SCHEMA)
    pipe.execute()
    if counts["entries"] or counts["without_item"]:
        log.info("ledger.migrated", board=board_id, **counts, seconds=round(time.perf_counter() - started, 3))
    return int(counts["entries"])


def _convert(connection: redis.Redis, old_content: str, new_paths: str, new_content: str,
             batch: list[tuple[str, dict[str, Any]]], counts: dict[str, int]) -> None:
    if not batch:
        return
    wanted = sorted({value.get("sha256", "") for _, value in batch if "item_id" not in value})
    contents = dict(zip(wanted, connection.hmget(old_content, wanted))) if wanted else {}
    pipe = connection.pipeline(transaction=False)
    for relpath, value in batch:
        if "item_id" in value:  # already an ItemEntry (written by this code)
            entry = ItemEntry.from_json(json.dumps(value))
        else:
            raw = contents.get(value.get("sha256", ""))
            if raw is None:
                # Cannot happen with the first layout's writes (one MULTI); without an item, the
                # path is simply not synced, and the next scan uploads it.
                counts["without_item"] += 1
                continue
            item = json.loads(raw)
            key = value["sha256"]
            owner = item.get("path") == relpath
            entry = ItemEntry(
                item_id=str(item["item_id"]), sha256=key[:64], size=int(value["size"]), mtime_ns=int(value["mtime_ns"]),
                slot=int(item.get("slot", 0)), route=Route(item.get("route", "file")).value,
                delivery=(Delivery(item.get("delivery", "file")) if owner else Delivery.DUPLICATE).value,
                at=float(item.get("at", 0.0)), frame=None, dup_of=None if owner else item.get("path"),
            )
        counts["entries"] += 1
        if not entry.owner:
            counts["duplicates"] += 1
        pipe.hset(new_paths, relpath, entry.to_json())
        if entry.owner:
            pipe.hset(new_content, entry.sha256, relpath)
    pipe.execute()


def _text(value: str | bytes | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
