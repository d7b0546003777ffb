"""Pictures created by URL whose delivery is still to be checked: durable, in Redis.

``keys.verify_pending(board)`` is a sorted set of item ids scored by when each is due (UNIX
seconds); ``keys.verify_details(board)`` holds what the check needs. Both are written in one MULTI
*before* the ledger records the item, so the ledger never names an unverified item that nobody will
check (the AOF keeps writes in order: if the ledger entry survived a crash of Redis, so did this).
A crash between the two leaves a pending check and the create's intent: the check repairs the item
and the job's next run adopts it.

A verifier *claims* due entries by moving their score a lease into the future (one Lua script, so
two verifiers never take the same entry); one that dies mid-check leaves the entry to come due
again when the lease ends. Repeating a check is harmless: a repair is a PATCH of the same item.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import cast

import redis

from shared import keys
from shared.ledger import Delivery, Ledger


@dataclass(frozen=True)
class Pending:
    item_id: str
    key: str  # sha256 of the bytes Miro was to fetch
    path: str  # relative to the watch folder
    sig: str  # signature of the URL Miro was given; the image server's served record is keyed by it
    size: int
    created_at: float
    attempts: int = 0

    @property
    def sha256(self) -> str:
        return self.key[:64]


_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[2], member) end
return due
"""


class PendingChecks:
    def __init__(self, connection: redis.Redis, board_id: str) -> None:
        self.redis = connection
        self.board_id = board_id
        self.due_key = keys.verify_pending(board_id)
        self.details_key = keys.verify_details(board_id)
        self._claim = connection.register_script(_CLAIM)

    def schedule(self, pending: Pending, due: float) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.details_key, pending.item_id, json.dumps(asdict(pending)))
        pipe.zadd(self.due_key, {pending.item_id: due})
        pipe.execute()

    def claim(self, now: float, lease: float, limit: int = 8) -> list[Pending]:
        """Up to ``limit`` due checks, each now held by the caller for ``lease`` seconds."""
        ids = [i.decode() if isinstance(i, bytes) else i for i in self._claim(keys=[self.due_key], args=[now, now + lease, limit])]
        if not ids:
            return []
        found = []
        for item_id, raw in zip(ids, self.redis.hmget(self.details_key, ids)):
            if raw is None:  # details gone (completed meanwhile by a verifier whose lease had run out)
                self.redis.zrem(self.due_key, item_id)
                continue
            found.append(Pending(**json.loads(raw)))
        return found

    def postpone(self, pending: Pending, due: float) -> Pending:
        later = replace(pending, attempts=pending.attempts + 1)
        self.schedule(later, due)
        return later

    def complete(self, pending: Pending, ledger: Ledger, delivery: Delivery | None) -> None:
        """The check is done; with ``delivery``, the ledger says so first.

        In that order: a crash between the two writes leaves the check to run again (a repeated
        check verifies again, or PATCHes the same item again: harmless); the other order could leave
        the ledger saying `unverified` with no check left to change it.
        """
        if delivery is not None:
            ledger.set_delivery(pending.path, pending.item_id, delivery)
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrem(self.due_key, pending.item_id)
        pipe.hdel(self.details_key, pending.item_id)
        pipe.execute()

    # --- read side (doctor, status) ------------------------------------------------------------
    def count(self) -> int:
        return int(self.redis.zcard(self.due_key))

    def overdue(self, before: float) -> list[tuple[str, float]]:
        """(item id, due time) of the checks that were due before ``before``, oldest first."""
        found = cast("list[tuple[bytes, float]]", self.redis.zrangebyscore(self.due_key, "-inf", before, withscores=True))
        return [(member.decode(), float(score)) for member, score in found]

    def next_due(self) -> float | None:
        first = self.redis.zrange(self.due_key, 0, 0, withscores=True)
        return float(first[0][1]) if first else None
