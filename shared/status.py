"""What `miro-sync status` reports, counted from a snapshot of Redis: pure, no I/O, no clock.

:mod:`shared.status_read` takes the snapshot; this module turns it into totals, per-folder counts,
the last failures and rejections, and the state of workers, credits, pause, hold and tunnel.

Definitions (docs/architecture.md, "Status"):

* synced: files with a ledger entry (fields of ``keys.ledger_paths``);
* queued / in_flight / retrying / failed: jobs in the queue, the started, the scheduled and the
  failed registries;
* rejected: files refused as bad (fields of ``keys.rejected``);
* held: while Miro refuses the token, every queued and retrying job waits for it (they are counted
  there too); 0 otherwise;
* awaiting_verification: url-route items not yet confirmed fetched by Miro.

Healthy (exit 0) means no failed job and no hold.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import PurePosixPath
from typing import Any

TOP_FOLDER = "."
"""The folder name files directly in the watch folder are counted under."""
RECENT = 10
"""How many failures and rejections are listed."""


class CircuitState(str, Enum):
    OPEN = "open"
    CLOSED = "closed"


class TunnelHealth(str, Enum):
    OK = "ok"
    FAILING = "failing"
    NOT_PROBED = "not-probed"


@dataclass(frozen=True)
class FailedJob:
    path: str
    reason: str
    at: float | None = None


@dataclass
class Snapshot:
    """Everything status needs, as read from Redis (raw values, decoded to str)."""

    now: float
    synced_paths: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)  # relpath -> JSON {reason, ...}
    queued: int = 0
    in_flight: int = 0
    scheduled: int = 0
    failed: int = 0
    recent_failed: list[FailedJob] = field(default_factory=list)
    verify_pending: int = 0
    auth_blocked: str | None = None
    workers_alive: list[str] = field(default_factory=list)
    watchers_alive: list[str] = field(default_factory=list)
    bucket: dict[str, str] = field(default_factory=dict)  # {tokens, ts}
    credit_rate: float = 0.0  # credits per second the limiter refills
    credit_capacity: float = 0.0
    pause_until: str | None = None
    tunnel_probe: str | None = None
    tunnel_circuit: str | None = None
    last_upload_at: str | None = None


@dataclass
class Status:
    synced: int
    queued: int
    in_flight: int
    retrying: int
    failed: int
    rejected: int
    held: int
    awaiting_verification: int
    folders: dict[str, dict[str, int]]
    recent_failures: list[dict[str, Any]]
    recent_rejections: list[dict[str, Any]]
    workers_alive: int
    watchers_alive: int
    credits_left: float | None
    paused_until: float | None
    hold: dict[str, Any] | None
    tunnel: dict[str, Any]
    circuit: dict[str, Any]
    last_upload_at: float | None
    healthy: bool

    @property
    def outstanding(self) -> int:
        """Jobs not yet ended: what a backfill still has to do."""
        return self.queued + self.in_flight + self.retrying

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _json(raw: str | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def folder_of(relpath: str) -> str:
    parent = str(PurePosixPath(relpath).parent)
    return TOP_FOLDER if parent in ("", ".") else parent


def credits_left(bucket: dict[str, str], now: float, rate: float, capacity: float) -> float | None:
    """The shared bucket's credits now: what it held at ``ts`` plus the refill since, capped.

    None before any worker took credits (an untouched bucket is full, but nothing says so yet).
    """
    try:
        tokens, ts = float(bucket["tokens"]), float(bucket["ts"])
    except (KeyError, ValueError):
        return None
    return round(min(capacity, tokens + max(0.0, now - ts) * rate), 1)


def summarize(snap: Snapshot) -> Status:
    folders: dict[str, dict[str, int]] = {}
    for path in snap.synced_paths:
        folders.setdefault(folder_of(path), {"synced": 0, "rejected": 0})["synced"] += 1
    rejections = []
    for path, raw in snap.rejected.items():
        folders.setdefault(folder_of(path), {"synced": 0, "rejected": 0})["rejected"] += 1
        value = _json(raw) or {}
        rejections.append({"path": path, "reason": str(value.get("reason", "?")), "at": value.get("at")})
    # Newest first where the entry says when; else by path, so the list is stable between redraws.
    rejections.sort(key=lambda r: (-float(r["at"] or 0), str(r["path"])))
    failures = sorted(snap.recent_failed, key=lambda f: -(f.at or 0))[:RECENT]

    hold = _json(snap.auth_blocked)
    held = snap.queued + snap.scheduled if hold is not None else 0
    pause = float(snap.pause_until) if snap.pause_until else None
    probe = _json(snap.tunnel_probe)
    if probe is None:
        tunnel: dict[str, Any] = {"state": TunnelHealth.NOT_PROBED.value}
    else:
        tunnel = {"state": (TunnelHealth.OK if probe.get("ok") else TunnelHealth.FAILING).value,
                  "public_url": probe.get("public_url"), "reason": probe.get("reason"), "at": probe.get("at")}
    circuit_value = _json(snap.tunnel_circuit) or {}
    circuit_state = CircuitState.OPEN if circuit_value.get("state") == CircuitState.OPEN.value else CircuitState.CLOSED
    circuit = {"state": circuit_state.value, "reason": circuit_value.get("reason") if circuit_state is CircuitState.OPEN else None}

    return Status(
        synced=len(snap.synced_paths),
        queued=snap.queued,
        in_flight=snap.in_flight,
        retrying=snap.scheduled,
        failed=snap.failed,
        rejected=len(snap.rejected),
        held=held,
        awaiting_verification=snap.verify_pending,
        folders=dict(sorted(folders.items())),
        recent_failures=[{"path": f.path, "reason": f.reason, "at": f.at} for f in failures],
        recent_rejections=rejections[:RECENT],
        workers_alive=len(snap.workers_alive),
        watchers_alive=len(snap.watchers_alive),
        credits_left=credits_left(snap.bucket, snap.now, snap.credit_rate, snap.credit_capacity),
        paused_until=pause if pause is not None and pause > snap.now else None,
        hold=None if hold is None else {"status": hold.get("status"), "code": hold.get("code"), "reason": hold.get("message")},
        tunnel=tunnel,
        circuit=circuit,
        last_upload_at=float(snap.last_upload_at) if snap.last_upload_at else None,
        healthy=snap.failed == 0 and hold is None,
    )
