"""`miro-sync forget PATH...`: drop files' ledger entries so that the next scan uploads them again.

PATH is relative to WATCH_FOLDER (or an absolute path inside it). The item already on the board
stays: this is for "upload that one again", e.g. after deleting its item by hand.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import redis

from shared.ledger import Ledger
from shared.settings import Need, load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="file path, relative to WATCH_FOLDER or absolute inside it")


def relative(folder: Path, given: str) -> str | None:
    path = Path(given)
    if path.is_absolute():
        try:
            return Path(os.path.normpath(path)).relative_to(folder).as_posix()
        except ValueError:
            return None
    rel = os.path.normpath(given)
    return None if rel.startswith("..") else Path(rel).as_posix()


def run(args: argparse.Namespace) -> int:
    settings = load_settings(needs=(Need.BOARD, Need.FOLDER))
    connection = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5)
    ledger = Ledger(connection, settings.miro_board_id)
    ledger.migrate()
    code = 0
    for given in args.paths:
        rel = relative(settings.watch_folder, given)
        if rel is None:
            print(f"{given}: not inside WATCH_FOLDER ({settings.watch_folder})", file=sys.stderr)
            code = 1
        elif ledger.forget(rel):
            print(f"forgotten: {rel} (the next scan uploads it again)")
        else:
            print(f"{rel}: not in the ledger", file=sys.stderr)
            code = 1
    return code
