"""`miro-sync health worker|watcher|http URL`: exit 0 when the service is alive (container healthchecks).

* worker / watcher: a liveness key of a process on this host (the container's hostname) is in
  Redis. Workers refresh theirs every second from the upkeep thread, watchers from their loop;
  a hung or dead process lets it expire within seconds.
* http URL: the server answers (any status below 500; a dashboard's 401 is an answer).

One line on stdout says what was found; nothing else is printed, so healthcheck logs stay short.
"""

from __future__ import annotations

import argparse
import socket
import urllib.error
import urllib.request

import redis

from shared import keys, redis_down
from shared.settings import load_settings

KEY_OF = {"worker": keys.worker_alive, "watcher": keys.watcher_alive}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("service", choices=[*KEY_OF, "http"], help="what to check")
    parser.add_argument("url", nargs="?", help="for http: the address to ask")
    parser.add_argument("--host", default=None, help="for worker/watcher: whose processes (default: this host's name)")


def alive_on_host(connection: redis.Redis, service: str, host: str) -> list[str]:
    # Names are "<hostname>-<pid>..." (see the worker's and the watcher's start-up).
    pattern = KEY_OF[service](f"{host}-*")
    return [k.decode() for k in connection.scan_iter(match=pattern, count=500)]


def http_answers(url: str, timeout: float = 3.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


def run(args: argparse.Namespace) -> int:
    if args.service == "http":
        if not args.url:
            print("miro-sync health http: give the URL")
            return 2
        status = http_answers(args.url)
        print(f"{args.url}: " + ("no answer" if status is None else f"HTTP {status}"))
        return 0 if status is not None and status < 500 else 1
    settings = load_settings(needs=())
    host = args.host or socket.gethostname()
    try:
        found = alive_on_host(redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2), args.service, host)
    except redis.RedisError as exc:
        print(f"{args.service}: {redis_down.problem(settings.redis_url, exc)}")
        return 1
    print(f"{args.service} on {host}: " + (f"{len(found)} alive" if found else "none alive"))
    return 0 if found else 1
