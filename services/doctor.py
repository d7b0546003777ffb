"""`miro-sync doctor`: check everything the stack needs, in order, one line per check.

Each line starts with ✔ or ✘ and, when something is wrong, says how to fix it. The exit code is
0 only when every check passes. The same Miro checks run when a worker starts.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass

import redis

from shared.log import register_secrets
from shared.preflight import check_board
from shared.settings import Settings, SettingsError, WatchMode, load_settings
from shared.tokenpair import PairState, UnreadablePair
from shared.tokens import token_store
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


def check_token_pair(settings: Settings) -> Check:
    """An app with expiring tokens: is a usable pair stored? (Read only: nothing is refreshed here.)"""
    name = "miro token pair"
    try:
        client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
        store = token_store(settings, client)
        stored = store.read()
    except UnreadablePair as exc:
        return Check(name, False, f"{exc}; or run `miro-sync login` to store a new pair")
    except redis.RedisError as exc:
        return Check(name, False, f"cannot read it from Redis ({type(exc).__name__})")
    if stored is None:
        if settings.miro_refresh_token:
            return Check(name, True, "none stored yet; MIRO_REFRESH_TOKEN seeds it at first use")
        return Check(name, False, "none stored and MIRO_REFRESH_TOKEN is not set: run `miro-sync login`")
    if stored.state is PairState.REFUSED:
        return Check(name, False, "Miro refused the stored refresh token (invalid_grant): run `miro-sync login`; "
                                  "held jobs resume by themselves once it has")
    left = stored.pair.seconds_left(time.time())
    expiry = "of unknown expiry (used until Miro refuses it)" if left is None else (
        f"expires in {left:.0f} s" if left > 0 else "expired (the next call refreshes it)")
    at_rest = "encrypted (MIRO_TOKEN_KEY)" if store.codec.encrypted else "not encrypted (MIRO_TOKEN_KEY unset)"
    return Check(name, True, f"stored (generation {stored.generation}, from {stored.pair.source.value}), access token {expiry}, "
                             f"{at_rest}; refreshed automatically")


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


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(create_folder=False)
    except SettingsError as exc:
        print(Check("settings", False, str(exc)).line())
        return 1
    register_secrets(settings.secrets)
    checks = [Check("settings", True, f"board {settings.miro_board_id}, folder {settings.watch_folder}, mode {settings.upload_mode.value}")]
    print(checks[0].line(), flush=True)
    steps = [check_redis, check_folder, *([check_token_pair] if settings.oauth else []), check_miro]
    if not args.skip_tunnel:
        steps.append(check_tunnel)
    for step in steps:
        check = step(settings)
        checks.append(check)
        print(check.line(), flush=True)
    failed = [c for c in checks if not c.ok]
    print(f"{len(checks) - len(failed)} passed, {len(failed)} failed" if failed else "all checks passed")
    return 1 if failed else 0
