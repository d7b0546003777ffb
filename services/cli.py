"""`miro-sync`: one command, one subcommand per service.

Each service module exposes ``add_arguments(parser)`` and ``run(args) -> int``; modules are
imported only when their subcommand runs, so `miro-sync watch` never loads Flask or Pillow.
Configuration problems, and a Redis that does not answer, end the process with one line on stderr
and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

import redis

from shared import redis_down
from shared.settings import SettingsError, load_settings

COMMANDS = {
    "watch": ("services.watcher.main", "watch the folder and queue new images"),
    "worker": ("services.worker.main", "upload queued images to Miro (an RQ worker)"),
    "serve": ("services.image_server.main", "serve images by signed URL (gunicorn)"),
    "sandbox": ("services.sandbox.main", "run the local Miro API and ngrok agent stand-ins"),
    "up": ("services.up", "run the whole stack as local processes"),
    "login": ("services.login", "authorize an app with expiring tokens (Miro OAuth) and store its token pair"),
    "doctor": ("services.doctor", "check settings, Redis, folder, token, board and tunnel"),
    "dashboard": ("services.dashboard", "run rq-dashboard on the project's queue (JSON serializer)"),
    "status": ("services.status", "what is synced, queued, failed, rejected or held; workers, credits, tunnel"),
    "retry": ("services.retry", "queue failed upload jobs again"),
    "health": ("services.health", "exit 0 when a worker/watcher on this host is alive, or a URL answers (healthchecks)"),
    "metrics": ("services.metrics", "serve Prometheus metrics of the whole stack (never through the tunnel)"),
    "check": ("services.check", "compare folder, ledger and board; --fix repairs (exit 0 in sync, 1 differences, 2 could not check)"),
    "sync": ("services.sync", "scan once: --dry-run prints what would be uploaded, updated, moved or removed"),
    "forget": ("services.forget", "drop files' ledger entries so the next scan uploads them again"),
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="miro-sync", description="Sync a folder of images onto a Miro board.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        # Only the chosen command's module is imported (and can add its options).
        if argv and argv[0] == name:
            chosen = importlib.import_module(module_name)
            chosen.add_arguments(p)
            p.set_defaults(_module=chosen)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "_module", None):
        parser.print_help()
        return 2
    try:
        return int(args._module.run(args) or 0)
    except SettingsError as exc:
        print(f"miro-sync {args.command}: configuration error: {exc}", file=sys.stderr)
        return 2
    except redis.RedisError as exc:  # Redis away, or refusing us: the same one line from every command
        print(f"miro-sync {args.command}: {redis_down.problem(load_settings(needs=()).redis_url, exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
