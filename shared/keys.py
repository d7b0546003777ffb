"""Every Redis key the project uses, in one place. All live under ``miro-sync:``.

Keys that describe a board's state carry the board id, so one Redis can serve several boards.
"""

from __future__ import annotations

PREFIX = "miro-sync"


def _board(board_id: str) -> str:
    return f"{PREFIX}:board:{board_id}"


def ledger_paths(board_id: str) -> str:
    """Hash: relative path -> JSON ItemEntry {item_id, sha256, size, mtime_ns, slot, frame, route,
    delivery, at, dup_of}: one field per synced file that has (or shows) an item."""
    return f"{_board(board_id)}:paths"


def ledger_content(board_id: str) -> str:
    """Hash: sha256 -> the relative path owning an item with those bytes."""
    return f"{_board(board_id)}:content"


def ledger_released(board_id: str) -> str:
    """Hash: relative path -> JSON ItemEntry + {released_at, policy}: file gone, item left on the board."""
    return f"{_board(board_id)}:released"


def ledger_schema(board_id: str) -> str:
    """String: the ledger layout version ("2": path model). Absent: the first layout (or empty)."""
    return f"{_board(board_id)}:schema"


def ledger_staging(board_id: str, name: str) -> str:
    """Hashes the migration builds before swapping them in (``name``: paths, content)."""
    return f"{_board(board_id)}:migrating:{name}"


def migrate_lock(board_id: str) -> str:
    """String with TTL: the process migrating this board's ledger."""
    return f"{_board(board_id)}:migrating:lock"


def intent(board_id: str, relpath: str) -> str:
    """String: JSON {slot, title, at, route} written before a create call, removed after the ledger
    write. Keyed by relative path (the first layout keyed it by content: still read, see Ledger.intent)."""
    return f"{_board(board_id)}:intent:{relpath}"


def slots(board_id: str) -> str:
    """Hash: relative path -> the slot reserved for it, in the root grid or its folder's frame (kept
    across retries, dropped on move). The watcher reserves it when it queues the file, so cells follow
    the queue's order whichever worker gets there first."""
    return f"{_board(board_id)}:slots"


def next_slot(board_id: str) -> str:
    """Counter: the next free grid slot."""
    return f"{_board(board_id)}:next-slot"


def folder_next_slot(board_id: str, folder: str) -> str:
    """Counter: the next free slot of a subfolder's frame (``FOLDERS=frames``)."""
    return f"{_board(board_id)}:next-slot:{folder}"


def free_slots(board_id: str, folder: str | None) -> str:
    """Set: slots of the root grid (``folder`` None) or a folder's frame that were reserved and given back
    (the path's item kept its old cell, or showed another's); the counter steps back over them at its end."""
    return f"{_board(board_id)}:free-slots" + (f":{folder}" if folder is not None else "")


def frames(board_id: str) -> str:
    """Hash: frame key -> JSON {id, title, x, y, rows}. ``folder:<relpath>``: a folder's growing frame
    (``rows`` tall); ``folder:<relpath>#<part>``: the fixed-size frames of the earlier layout, and
    ``archive#<part>`` (no ``rows``)."""
    return f"{_board(board_id)}:frames"


def frame_index(board_id: str) -> str:
    """Hash: frame key -> its place in the stack of fixed-size folder frames (the earlier layout)."""
    return f"{_board(board_id)}:frame-index"


def next_frame_index(board_id: str) -> str:
    """Counter: the next free place in the stack of fixed-size folder frames (the earlier layout)."""
    return f"{_board(board_id)}:next-frame-index"


def frame_column(board_id: str) -> str:
    """Hash: folder -> its column right of the root grid (reserved once, with the folder's first slot)."""
    return f"{_board(board_id)}:frame-column"


def next_frame_column(board_id: str) -> str:
    """Counter: the next free column; it starts at 1 on a board whose stack of fixed-size frames holds column 0."""
    return f"{_board(board_id)}:next-frame-column"


def frame_intent(board_id: str, frame_key: str) -> str:
    """String: JSON {title, x, y} written before a frame create, removed with the frame's record."""
    return f"{_board(board_id)}:frame-intent:{frame_key}"


def content_lock(board_id: str, sha256: str) -> str:
    """Short-lived lock so two workers never upload the same bytes at once."""
    return f"{_board(board_id)}:lock:{sha256}"


def verify_pending(board_id: str) -> str:
    """Sorted set: item id -> when its URL delivery is checked (UNIX seconds): pictures awaiting verification."""
    return f"{_board(board_id)}:verify-pending"


def verify_details(board_id: str) -> str:
    """Hash: item id -> JSON {key, path, sig, size, created_at, attempts}: what a pending verification checks."""
    return f"{_board(board_id)}:verify-details"


def rejected(board_id: str) -> str:
    """Hash: relative path -> JSON {size, mtime_ns, reason, at, deaths?}: bad files already reported once
    (``deaths``: quarantined after workers died on it, see services.worker.poison)."""
    return f"{_board(board_id)}:rejected"


# Shared by every board and worker of this Redis.
RATE_BUCKET = f"{PREFIX}:rate:bucket"
"""Hash {tokens, ts}: the shared credit bucket of the Miro token."""
RATE_PAUSE_UNTIL = f"{PREFIX}:rate:pause-until"
"""String: UNIX time before which no worker calls Miro (after a 429)."""
AUTH_BLOCKED = f"{PREFIX}:auth-blocked"
"""String: JSON {status, code, message, at}: the token was refused (401/403); workers hold jobs."""
AUTH_RECHECK = f"{PREFIX}:auth-blocked:recheck"
"""String with TTL: one worker at a time asks Miro again whether the refused token works now."""
TUNNEL_PROBE = f"{PREFIX}:tunnel:probe"
"""String with TTL: JSON {ok, public_url, reason, detail, at}: the last probe of the public URL."""
TUNNEL_CIRCUIT = f"{PREFIX}:tunnel:circuit"
"""String: JSON {state: open|closed, reason, since, until (null: until a probe passes), failures}: whether
new pictures may go by URL (see shared.circuit)."""
TUNNEL_WARNED = f"{PREFIX}:tunnel:warned"
"""String with TTL: set when the "tunnel unusable" line was logged, so it is logged once."""


def served(token: str) -> str:
    """String with TTL: set by the image server when it served the signed URL ``token`` in full."""
    return f"{PREFIX}:served:{token}"


def worker_alive(worker_name: str) -> str:
    """String with a short TTL, refreshed by a live worker: its absence means the worker is dead."""
    return f"{PREFIX}:alive:{worker_name}"


MAINTENANCE_LOCK = f"{PREFIX}:maintenance-lock"
"""Short lock: one worker at a time reaps dead workers' jobs and promotes due retries."""
TAKEN_UNSTARTED = f"{PREFIX}:taken-unstarted"
"""Hash job id -> when upkeep first saw it taken off the queue but not started."""


def job_deaths(job_id: str) -> str:
    """Counter with a TTL: how many workers died while running this job (see services.worker.poison)."""
    return f"{PREFIX}:deaths:{job_id}"

MIRO_FAILING = f"{PREFIX}:miro:failing"
"""String with TTL: set when a job is retried after a 5xx or a transport error; cleared by the next success."""
MIRO_RECOVERED = f"{PREFIX}:miro:recovered"
"""String with TTL: set by the first success after a failure, or when the token works again: the
next upkeep tick promotes every waiting retry."""
OAUTH_PAIR = f"{PREFIX}:oauth:pair"
"""Hash {generation, state, pair}: the current Miro token pair (JSON, or Fernet-encrypted JSON) of
an app with expiring tokens. ``generation`` grows with every stored pair and fences the writes."""
OAUTH_LOCK = f"{PREFIX}:oauth:refresh-lock"
"""String with a short TTL: the one process allowed to refresh the pair right now."""


def watcher_alive(watcher_name: str) -> str:
    """String with a short TTL, refreshed by a live watcher's loop (its container healthcheck reads it)."""
    return f"{PREFIX}:watcher-alive:{watcher_name}"


METRICS_PREFIX = f"{PREFIX}:metrics"
"""Hashes under this prefix hold the Prometheus counters and histograms (:mod:`shared.metrics`)."""
LAST_UPLOAD_AT = f"{PREFIX}:last-upload-at"
"""String: UNIX time of the last item created on the board."""
