"""`miro-sync doctor`: check everything the stack needs, in order, one line per check.

Every check runs and prints its line, whatever failed before it: each line starts with ✔ or ✘
and, when something is wrong, says how to fix it. A check that cannot run (it needs a setting that
is missing) says so on a ✘ line. The exit code is 0 only when every check passes. The same Miro
checks run when a worker starts.

A watch folder that does not exist fails: no service creates it (a typo in WATCH_FOLDER would
otherwise become an empty folder, which reads as every picture deleted).

The last two lines read what the workers left in Redis: pictures created by URL still to be
verified, and whether the tunnel is set aside (its circuit open).
"""

from __future__ import annotations

import argparse
import os
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from services.worker.pending import PendingChecks
from shared import keys, redis_down
from shared.circuit import Circuit
from shared.log import register_secrets
from shared.preflight import check_board
from shared.settings import Need, Settings, SettingsError, WatchMode, check_required, load_env, load_settings
from shared.tokenpair import PairState, UnreadablePair
from shared.tokens import token_store
from shared.tunnel import fresh_probe


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
        return Check("redis", False, redis_down.problem(settings.redis_url, exc))
    notes = []
    if aof != "yes":
        notes.append("appendonly is off: queued jobs and the ledger are lost if Redis restarts (set appendonly yes)")
    if policy not in ("noeviction", "?"):
        notes.append(f"maxmemory-policy is {policy}: Redis may evict jobs (use noeviction)")
    return Check("redis", not notes, "answers, AOF on, noeviction" if not notes else "; ".join(notes))


def check_folder(settings: Settings) -> Check:
    folder = settings.watch_folder
    if not folder.exists():
        return Check("watch folder", False, f"{folder.absolute()} does not exist: create it (mkdir -p {shlex.quote(str(folder.absolute()))}), "
                                            "or fix WATCH_FOLDER (a typo? a drive not mounted?)")
    if not folder.is_dir():
        return Check("watch folder", False, f"{folder} is not a folder; fix WATCH_FOLDER")
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
    result = fresh_probe(settings)
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


STEPS: list[tuple[str, Callable[[Settings], Check], tuple[str, ...]]] = [
    ("redis", check_redis, ()),
    ("watch folder", check_folder, ("WATCH_FOLDER",)),
    ("miro token pair", check_token_pair, ()),  # only for an app with expiring tokens
    ("miro token and board", check_miro, ("MIRO_ACCESS_TOKEN", "MIRO_BOARD_ID")),
    ("tunnel", check_tunnel, ()),
    ("pictures awaiting verification", check_verifications, ()),
    ("tunnel circuit", check_circuit, ()),
]
"""Each check after the settings, and the variables it cannot run without."""


def load_for_checks() -> tuple[Check, Settings | None]:
    """The settings check, and settings good enough for the other checks even when it failed.

    The folder is checked by :func:`check_folder`, so it is not a need here; a
    missing token or board fails the settings line and the Miro check, not the others.
    """
    try:
        check_required(load_env(), (Need.MIRO, Need.FOLDER))  # named with the rest; whether it exists is check_folder's
        settings = load_settings(needs=(Need.MIRO,))
    except SettingsError as exc:
        try:
            return Check("settings", False, str(exc)), load_settings(needs=())
        except SettingsError:
            return Check("settings", False, str(exc)), None
    return Check("settings", True, f"board {settings.miro_board_id}, folder {settings.watch_folder}, mode {settings.upload_mode.value}"), settings


def run(args: argparse.Namespace) -> int:
    first, settings = load_for_checks()
    if settings is not None:
        register_secrets(settings.secrets)
    checks = [first]
    print(first.line(), flush=True)
    env = load_env()
    for name, step, needs in STEPS:
        oauth = settings is not None and settings.oauth
        if (name == "tunnel" and args.skip_tunnel) or (name == "miro token pair" and not oauth):
            continue
        # An app with expiring tokens has its access token in Redis, not in the settings.
        missing = [n for n in needs if not env.get(n, "").strip() and not (oauth and n == "MIRO_ACCESS_TOKEN")]
        if settings is None:
            check = Check(name, False, "not checked: fix the settings first")
        elif missing:
            check = Check(name, False, f"not checked: {' and '.join(missing)} not set")
        else:
            try:
                check = step(settings)
            except redis.RedisError as exc:  # the checks that read what workers left in Redis
                check = Check(name, False, f"not checked: Redis does not answer ({redis_down.reason(exc)}; see the redis line)")
        checks.append(check)
        print(check.line(), flush=True)
    failed = [c for c in checks if not c.ok]
    print(f"{len(checks) - len(failed)} passed, {len(failed)} failed" if failed else "all checks passed")
    return 1 if failed else 0
