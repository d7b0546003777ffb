"""`miro-sync sync --dry-run`: scan once and print what a sync would do, writing nothing.

Every file version and every vanished path goes through the same decisions as the worker's
(:func:`shared.plan.decide`, :func:`shared.plan.judge_deletions`); Redis is only read (no
migration, no limiter) and Miro is not called. Without ``--dry-run`` the command refuses: the
watcher and workers are what sync.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections import Counter
from pathlib import PurePosixPath
from typing import cast

import redis

from shared import keys
from shared.ledger import SCHEMA, Ledger
from shared.plan import Action, DeleteVerdict, decide, judge_deletions
from shared.settings import DuplicatePolicy, FolderMode, Need, load_settings

VERBS = {"upload": "upload", "update": "update", "retitle": "retitle", "move": "move", "remove": "remove",
         "held": "hold (mass-delete guard)", "duplicate": "skip as duplicate"}
SUMMARY = {"upload": "upload {n}", "update": "update {n}", "retitle": "retitle {n}", "move": "move {n}", "remove": "remove {n}",
           "held": "hold {n}", "duplicate": "skip {n} duplicates"}
"""The totals line: "would upload 1, update 0, ...": said as what would happen, since nothing did."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="print what would be uploaded, updated, retitled, moved or removed")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of lines")


def _sha(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def plan(settings, ledger: Ledger) -> list[tuple[str, str, str]]:
    """(verb, path, detail) for everything a sync would do now."""
    from services.check import read_folder

    files = read_folder(settings)
    entries = ledger.all_items()
    gone = {p: e for p, e in entries.items() if p not in files}
    claimed: set[str] = set()
    out: list[tuple[str, str, str]] = []
    unsynced = [p for p, v in sorted(files.items()) if p not in entries or (entries[p].size, entries[p].mtime_ns) != v]
    rejected = ledger.rejected([(p, *files[p]) for p in unsynced])
    for relpath, bad in zip(unsynced, rejected):
        if bad:
            continue
        try:
            sha = _sha(os.path.join(settings.watch_folder, relpath))
        except OSError:
            continue
        current = entries.get(relpath)
        owner = ledger.owner_of(sha)
        owner_entry = entries.get(owner) if owner and owner != relpath else None
        action = decide(current, sha, owner_entry, owner is not None and owner in files,
                        settings.duplicates is DuplicatePolicy.SKIP)
        if action is Action.MOVE and owner is not None:
            claimed.add(owner)
            same_folder = PurePosixPath(owner).parent == PurePosixPath(relpath).parent or settings.folders is FolderMode.FLAT
            out.append(("retitle" if same_folder else "move", relpath, f"from {owner}"))
        elif action is Action.UPDATE:
            out.append(("update", relpath, ""))
        elif action is Action.CREATE:
            out.append(("upload", relpath, ""))
        elif action is Action.DUPLICATE:
            out.append(("duplicate", relpath, f"same bytes as {owner}"))
    removals = [p for p in sorted(gone) if p not in claimed]
    verdict = judge_deletions(len(removals), settings.max_delete, bool(files))
    for relpath in removals:
        if verdict is DeleteVerdict.PROCEED:
            out.append(("remove", relpath, f"ON_DELETE={settings.on_delete.value}"))
        else:
            out.append(("held", relpath, verdict.value))
    return out


def run(args: argparse.Namespace) -> int:
    if not args.dry_run:
        print("miro-sync sync: only --dry-run is offered; `miro-sync up` (or watch + worker) keeps the board in step", file=sys.stderr)
        return 2
    settings = load_settings(needs=(Need.BOARD, Need.FOLDER))
    connection = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5)
    ledger = Ledger(connection, settings.miro_board_id)
    schema = cast("bytes | None", connection.get(keys.ledger_schema(settings.miro_board_id)))
    if ledger.count() and (schema or b"").decode() != SCHEMA:
        print("miro-sync sync: the ledger is in the old layout; start the watcher or a worker once to upgrade it", file=sys.stderr)
        return 2
    steps = plan(settings, ledger)
    counted = Counter(verb for verb, _, _ in steps)
    totals = {verb: counted[verb] for verb in VERBS}  # every one, 0 too: a script reads the same keys every time
    if args.json:
        print(json.dumps({"dry_run": True, "steps": [{"action": v, "path": p, "detail": d} for v, p, d in steps], "totals": totals}))
        return 0
    for verb, path, detail in steps:
        print(f"would {VERBS[verb]}: {path}" + (f" ({detail})" if detail else ""))
    print("dry run, nothing written: would " + ", ".join(SUMMARY[verb].format(n=n) for verb, n in totals.items()))
    return 0
