"""`miro-sync doctor`: check everything the stack needs, in order, one line per check.

Each line starts with ✔ or ✘ and, when something is wrong, says how to fix it. The exit code is
0 only when every check passes. The same Miro checks run when a worker starts. The last two lines
read what the workers left in Redis: pictures created by URL still to be verified, and whether the
tunnel is set aside (its circuit open).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass

import redis

from services.worker.pending import PendingChecks
from shared import keys
from shared.circuit import Circuit
from shared.log import register_secrets
from shared.preflight import check_board
from shared.settings import Settings, SettingsError, WatchMode, load_settings
from shared.tunnel import TunnelState


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'✔' if self.ok else '✘'} {self.name}: {self.detail}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--skip-tunnel", action="store_true", help="do not check the tunnel")


def check_redis(settings: Settings) -> Check:
    try:
        client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
        client.ping()
        policy = client.config_get("maxmemory-policy").get("maxmemory-policy", "?")
        aof = client.config_get("appendonly").get("appendonly", "?")
    except redis.ResponseError:
        return Check("redis", True, "answers (CONFIG not allowed: persistence not checked)")
    except redis.RedisError as exc:
        where = settings.redis_url.split("@")[-1]
        return Check("redis", False, f"no answer at {where} ({type(exc).__name__}); start Redis or fix REDIS_URL")
    notes = []
    if aof != "yes":
        notes.append("appendonly is off: queued jobs and the ledger are lost if Redis restarts (set appendonly yes)")
    if policy not in ("noeviction", "?"):
        notes.append(f"maxmemory-policy is {policy}: Redis may evict jobs (use noeviction)")
    return Check("redis", not notes, "answers, AOF on, noeviction" if not notes else "; ".join(notes))


def check_folder(settings: Settings) -> Check:
    folder = settings.watch_folder
    if not os.access(folder, os.R_OK | os.X_OK):
        return Check("watch folder", False, f"{folder} is not readable by uid {os.getuid()}")
    if settings.watch_mode is WatchMode.POLLING:
        return Check("watch folder", True, f"{folder} readable; polling every {settings.poll_interval:g} s")
    try:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers.inotify import InotifyObserver

        observer = InotifyObserver()
        observer.schedule(FileSystemEventHandler(), str(folder), recursive=True)  # a handler that does nothing
        observer.start()
        observer.stop()
        observer.join(2)
    except Exception as exc:  # ENOSPC / EMFILE / not Linux
        if settings.watch_mode is WatchMode.INOTIFY:
            return Check("watch folder", False, f"{folder}: inotify unavailable ({exc}); set WATCH_MODE=polling or raise fs.inotify.max_user_watches")
        return Check("watch folder", True, f"{folder} readable; inotify unavailable ({exc}), WATCH_MODE=auto will poll")
    return Check("watch folder", True, f"{folder} readable and watchable (inotify)")


def check_miro(settings: Settings) -> Check:
    verdict = check_board(settings)
    return Check("miro token and board", verdict.ok, verdict.detail)


def check_tunnel(settings: Settings) -> Check:
    if not settings.tunnel_configured:
        return Check("tunnel", True, "not configured: uploads go by file (fine up to 6 MB; larger images are downscaled)")
    # A fresh probe, not the workers' cached one; needs no Redis.
    result = TunnelState(None, settings).check()
    if result.ok:
        return Check("tunnel", True, f"{result.public_url} delivers images to browser-like fetchers")
    return Check("tunnel", False, f"{result.reason}: {result.detail}")


OVERDUE_AFTER = 60.0
"""Seconds past its due time after which a pending verification means no worker is checking."""


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


def check_verifications(settings: Settings) -> Check:
    """Pictures created by URL whose delivery is still to be checked (see services/worker/verify.py)."""
    checks = PendingChecks(redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2), settings.miro_board_id)
    count = checks.count()
    if not count:
        return Check("pictures awaiting verification", True, "none")
    now = time.time()
    late = checks.overdue(now - OVERDUE_AFTER)
    if late:
        return Check("pictures awaiting verification", False,
                     f"{count}, {len(late)} overdue by up to {now - late[0][1]:.0f} s: is a worker running (miro-sync worker)?")
    due = checks.next_due() or now
    return Check("pictures awaiting verification", True, f"{count} (created by URL; the next check {'now' if due <= now else f'in {due - now:.0f} s'})")


def check_circuit(settings: Settings) -> Check:
    """Whether new pictures may go by URL, as the workers decided (``keys.TUNNEL_CIRCUIT``)."""
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
    circuit = Circuit.from_json(client.get(keys.TUNNEL_CIRCUIT))
    if not circuit.is_open:
        return Check("tunnel circuit", True, "closed: new pictures may go by URL" if circuit.since else "closed (never opened)")
    resume = "once a probe passes" if circuit.until is None else f"once a probe passes after {_clock(circuit.until)}"
    return Check("tunnel circuit", False, f"open since {_clock(circuit.since)} ({circuit.reason}): new pictures go by file; "
                                          f"the URL route resumes {resume}")


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(create_folder=False)
    except SettingsError as exc:
        print(Check("settings", False, str(exc)).line())
        return 1
    register_secrets(settings.secrets)
    checks = [Check("settings", True, f"board {settings.miro_board_id}, folder {settings.watch_folder}, mode {settings.upload_mode.value}")]
    print(checks[0].line(), flush=True)
    steps = [check_redis, check_folder, check_miro]
    if not args.skip_tunnel:
        steps.append(check_tunnel)
    for step in steps:
        check = step(settings)
        checks.append(check)
        print(check.line(), flush=True)
    for step in (check_verifications, check_circuit):
        try:
            check = step(settings)
        except redis.RedisError:  # Redis does not answer: its own line above says so
            continue
        checks.append(check)
        print(check.line(), flush=True)
    failed = [c for c in checks if not c.ok]
    print(f"{len(checks) - len(failed)} passed, {len(failed)} failed" if failed else "all checks passed")
    return 1 if failed else 0
