"""`miro-sync status [--json] [--watch]`: what the stack is doing, from Redis alone.

Exit code: 0 when healthy, 1 when failed jobs or a token hold are waiting for a person, 2 on a
configuration problem. ``--watch`` redraws every second (rich) until Ctrl+C, with a progress bar,
rate and ETA while a backfill is going on.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

import redis

from shared import redis_down
from shared.jobs import upload_queue
from shared.log import register_secrets
from shared.ratelimit import CreditLimiter
from shared.settings import Need, Settings, load_settings
from shared.status import Status, summarize
from shared.status_read import read_snapshot

REDRAW_SECONDS = 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the status as one JSON object")
    parser.add_argument("--watch", action="store_true", help="redraw every second until Ctrl+C (progress bar during a backfill)")


def settings_for_reading() -> Settings:
    """The settings a read-only command needs: Redis, the queue and the board id (no token, no folder)."""
    settings = load_settings(needs=(Need.BOARD,))
    register_secrets(settings.secrets)
    return settings


class StatusReader:
    def __init__(self, settings: Settings, connection: redis.Redis | None = None) -> None:
        self.settings = settings
        self.connection = connection or redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=5)
        self.queue = upload_queue(self.connection, settings.queue_name)
        limiter = CreditLimiter.from_settings(self.connection, settings)
        self.rate, self.capacity = limiter.rate, limiter.capacity

    def read(self) -> Status:
        return summarize(read_snapshot(self.connection, self.settings.miro_board_id, self.queue, self.rate, self.capacity))


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "never"


def render_text(status: Status) -> str:
    lines = [
        f"synced {status.synced}  queued {status.queued}  in flight {status.in_flight}  retrying {status.retrying}  "
        f"failed {status.failed}  rejected {status.rejected}  held {status.held}  awaiting verification {status.awaiting_verification}",
    ]
    if status.folders:
        lines.append("per folder:")
        width = max(len(name) for name in status.folders)
        lines += [f"  {name:<{width}}  synced {c['synced']}  rejected {c['rejected']}" for name, c in status.folders.items()]
    if status.recent_failures:
        lines.append("last failures:")
        lines += [f"  ✘ {f['path']}: {f['reason']}" for f in status.recent_failures]
    if status.recent_rejections:
        lines.append("last rejections:")
        lines += [f"  ✘ {r['path']}: {r['reason']}" for r in status.recent_rejections]
    credits = "unknown (no upload yet)" if status.credits_left is None else f"{status.credits_left:g}"
    pause = f"paused until {_when(status.paused_until)}" if status.paused_until else "not paused"
    tunnel = status.tunnel["state"] + (f" ({status.tunnel['reason']})" if status.tunnel.get("reason") else "")
    circuit = status.circuit["state"] + (f" ({status.circuit['reason']})" if status.circuit.get("reason") else "")
    lines += [
        f"workers alive {status.workers_alive}, watchers alive {status.watchers_alive}",
        f"Miro credits left {credits}; {pause}",
        f"tunnel {tunnel}; circuit {circuit}",
        f"last upload {_when(status.last_upload_at)}",
    ]
    if status.hold:
        lines.append(f"✘ HOLD: Miro refuses the token ({status.hold['status']} {status.hold['code']}): {status.hold['reason']}")
    if status.failed:
        lines.append(f"✘ {status.failed} failed job(s): `miro-sync retry --all` (or PATH...) queues them again")
    if status.healthy:
        lines.append("✔ healthy")
    return "\n".join(lines)


def as_json(status: Status) -> str:
    data: dict[str, Any] = status.as_dict()
    return json.dumps(data, ensure_ascii=False, sort_keys=False)


def run(args: argparse.Namespace) -> int:
    settings = settings_for_reading()
    reader = StatusReader(settings)
    try:
        if args.watch:
            from .status_watch import watch

            return watch(reader.read, as_json if args.json else None, REDRAW_SECONDS)
        status = reader.read()
    except redis.RedisError as exc:
        print(f"miro-sync status: {redis_down.problem(settings.redis_url, exc)}", file=sys.stderr)
        return 2
    print(as_json(status) if args.json else render_text(status), flush=True)
    return 0 if status.healthy else 1
