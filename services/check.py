"""`miro-sync check [--fix] [--json]`: compare the folder, the ledger and the board.

Lists items missing on the board, files changed since their upload, orphaned items (the file is
gone), ledger entries that point at nothing, and files not yet on the board. Board items that
miro-sync did not make (not in the ledger), and those it made and kept when their file was deleted
(``ON_DELETE=keep`` or ``archive``: the ledger's released records), are counted apart and never
touched. The board is read in pages of 50, each paced by the shared credit limiter.

``--fix`` repairs what it lists, in this process: missing items are made again in their cell,
changed and new files are synced, entries pointing at nothing are dropped, and orphans get
``ON_DELETE`` -- at most ``MAX_DELETE`` of them (``--max-delete`` raises it for this run).

Exit codes: 0 in sync (or everything repaired), 1 differences found (or left), 2 could not check.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from typing import Any, cast

import redis

from shared import keys, redis_down
from shared.ledger import SCHEMA, Ledger
from shared.log import configure, get_logger, register_secrets
from shared.miro import MiroError
from shared.plan import Drift, compare
from shared.ratelimit import Cost, RateLimitTimeout
from shared.settings import Settings, load_settings

log = get_logger("check")

IN_SYNC, DIFFERENCES, CANNOT_CHECK = 0, 1, 2


class CannotCheck(Exception):
    """The comparison cannot be trusted (Redis, Miro or the folder is unavailable)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fix", action="store_true", help="repair what is found (ON_DELETE and MAX_DELETE apply to orphans)")
    parser.add_argument("--json", action="store_true", help="print the findings as one JSON object")
    parser.add_argument("--max-delete", type=int, default=None, metavar="N",
                        help="with --fix: act on up to N orphans this once (default: MAX_DELETE)")


def read_folder(settings: Settings) -> dict[str, tuple[int, int]]:
    """Every candidate file of the watch folder: relative path -> (size, mtime_ns)."""
    from services.watcher.filters import printable
    from services.watcher.scan import walk

    files: dict[str, tuple[int, int]] = {}
    for chunk in walk(settings.watch_folder):
        for seen in chunk:
            files[printable(seen.relpath)] = (seen.size, seen.mtime_ns)
    return files


def gather(settings: Settings, connection: redis.Redis) -> tuple[Drift, dict[str, Any]]:
    from services.worker.context import WorkerContext

    ledger = Ledger(connection, settings.miro_board_id)
    try:
        schema = cast("bytes | None", connection.get(keys.ledger_schema(settings.miro_board_id)))
        if ledger.count() and (schema or b"").decode() != SCHEMA:
            raise CannotCheck("the ledger is in the old layout; start the watcher or a worker once to upgrade it")
        entries = ledger.all_items()
        # Items made here whose file went, left on the board by ON_DELETE=keep/archive: ours, not foreign.
        policies = {str(record["item_id"]): record.get("policy", "keep") for _, record in ledger.iter_released()}
    except redis.RedisError as exc:
        raise CannotCheck(redis_down.problem(settings.redis_url, exc)) from None
    files = read_folder(settings)
    if entries and not files:
        raise CannotCheck(f"the watch folder {settings.watch_folder} is empty: is it mounted? (nothing was compared)")
    ctx = WorkerContext(settings=settings, redis=connection, worker_name=f"check-{os.getpid()}")
    board: set[str] = set()
    try:
        for item in ctx.miro.iter_items(settings.miro_board_id, type="image", before_page=lambda: ctx.limiter.acquire(Cost.LIST_PAGE)):
            board.add(str(item["id"]))
    except (MiroError, RateLimitTimeout, redis.RedisError) as exc:
        raise CannotCheck(f"reading the board: {exc}") from None
    ours = {e.item_id for e in entries.values()}
    kept = {item for item in policies if item in board and item not in ours}
    others = len(board - ours - kept)
    rejected = ledger.rejected([(p, *files[p]) for p in files if p not in entries])
    drift = compare(files, entries, board)
    skipped = {p for p, bad in zip([p for p in files if p not in entries], rejected) if bad}
    drift = Drift(drift.missing_on_board, drift.changed, drift.orphaned, drift.dangling, [p for p in drift.unsynced if p not in skipped])
    return drift, {"files": len(files), "entries": len(entries), "board_items": len(board), "kept": len(kept), "not_ours": others,
                   "_kept_by": "/".join(sorted({policies[item] for item in kept})) or "keep",
                   "_files": files, "_entries": entries, "_ctx": ctx}


def fix(settings: Settings, drift: Drift, context: dict[str, Any], max_delete: int) -> list[str]:
    """Repair ``drift``; returns what could not be repaired (one line each)."""
    from services.worker.deleter import Remover
    from services.worker.uploader import Outcome, Uploader

    ctx, files, entries = context["_ctx"], context["_files"], context["_entries"]
    left: list[str] = []
    for relpath in drift.missing_on_board:
        entry = entries[relpath]
        if not entry.owner:
            ctx.ledger.drop(relpath, entry.item_id)  # its owner's item is made again; this copy then joins it
            continue
        size, mtime_ns = files[relpath]
        result = Uploader(ctx).sync(relpath, size, mtime_ns, recreate=True)
        if result.outcome is not Outcome.UPLOADED:
            left.append(f"missing {relpath}: {result.reason or result.outcome.value}")
    for relpath in [*drift.missing_on_board, *drift.changed, *drift.unsynced]:
        if relpath in drift.missing_on_board and entries[relpath].owner:
            continue
        result = Uploader(ctx).sync(relpath, *files[relpath])
        if result.outcome is Outcome.REJECTED or (result.outcome is Outcome.SKIPPED and result.reason not in ("already synced", "same bytes")):
            left.append(f"{relpath}: {result.reason or result.outcome.value}")
    for relpath in drift.dangling:
        ctx.ledger.drop(relpath, entries[relpath].item_id)
    if len(drift.orphaned) > max_delete:
        left.append(f"{len(drift.orphaned)} orphans held: more than MAX_DELETE={max_delete}; "
                    f"run again with --max-delete {len(drift.orphaned)} to apply ON_DELETE={settings.on_delete.value} to them")
    else:
        for relpath in drift.orphaned:
            result = Remover(ctx).remove(relpath, entries[relpath].item_id)
            if result.outcome is not Outcome.DELETED:
                left.append(f"orphan {relpath}: {result.reason}")
    return left


def report(drift: Drift, context: dict[str, Any], as_json: bool, left: list[str] | None) -> str:
    counts = {k: v for k, v in context.items() if not k.startswith("_")}
    if as_json:
        body: dict[str, Any] = {"in_sync": drift.in_sync, **asdict(drift), **counts}
        if left is not None:
            body["fixed"] = not left
            body["left"] = left
        return json.dumps(body, indent=2)
    names = {"missing_on_board": "missing on the board", "changed": "changed since upload", "orphaned": "orphaned (file gone)",
             "dangling": "ledger entry points at nothing", "unsynced": "not on the board yet"}
    lines = [f"{label}: {path}" for key, label in names.items() for path in getattr(drift, key)]
    totals = ", ".join(f"{len(getattr(drift, key))} {label}" for key, label in names.items())
    lines.append(f"{counts['files']} files, {counts['entries']} ledger entries, {counts['board_items']} board images "
                 f"({counts['kept']} kept after {'its file was' if counts['kept'] == 1 else 'their files were'} deleted "
                 f"(ON_DELETE={context['_kept_by']}), {counts['not_ours']} not made by miro-sync; both left alone): "
                 + ("in sync" if drift.in_sync else totals))
    if left is not None:
        lines += [f"not fixed: {line}" for line in left] or ["fixed"]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    settings = load_settings()  # a missing folder: one line and exit 2 (could not check), from the CLI
    register_secrets(settings.secrets)
    configure(settings.log_level, settings.log_format)
    connection = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5, socket_timeout=30)
    try:
        if args.fix:
            Ledger(connection, settings.miro_board_id).migrate()
        drift, context = gather(settings, connection)
        left = None
        if args.fix and not drift.in_sync:
            left = fix(settings, drift, context, settings.max_delete if args.max_delete is None else args.max_delete)
    except CannotCheck as exc:
        print(f"miro-sync check: could not check: {exc}", file=sys.stderr)
        return CANNOT_CHECK
    except redis.RedisError as exc:
        print(f"miro-sync check: could not finish: {redis_down.problem(settings.redis_url, exc)}", file=sys.stderr)
        return CANNOT_CHECK
    except (MiroError, RateLimitTimeout) as exc:
        print(f"miro-sync check: could not finish: {exc}", file=sys.stderr)
        return CANNOT_CHECK
    print(report(drift, context, args.json, left))
    if left is not None:
        return IN_SYNC if not left else DIFFERENCES
    return IN_SYNC if drift.in_sync else DIFFERENCES
