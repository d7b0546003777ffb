"""`miro-sync retry [--all | PATH...]`: queue failed upload jobs again, and release quarantined files.

A job names its file by its path relative to the watch folder (the job's description); PATH may
be given that way, or as a path to the file inside WATCH_FOLDER. A retried job starts with a fresh
retry horizon, and with its tries after worker deaths back. A PATH with neither a failed job nor a
quarantine is explained: not in the folder, rejected as bad (and why), or nothing to retry.

A file quarantined because workers died on it (see services.worker.poison) is released only by
naming it: its rejection and death count are cleared and its job queued again. ``--all`` leaves
quarantined files alone and lists them: each can kill up to three more workers, which a person
should choose knowingly, file by file. Exit code 1 when a PATH has neither a failed job nor a
quarantine, else 0.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

import redis
from rq.job import Job
from rq.registry import FailedJobRegistry

from services.worker import poison
from shared.jobs import enqueue_upload, job_id, upload_queue
from shared.ledger import Ledger
from shared.log import get_logger
from shared.settings import Need, Settings, load_settings

log = get_logger("retry")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", metavar="PATH", help="files whose failed jobs to queue again")
    parser.add_argument("--all", action="store_true", help="queue every failed job again")


def relative_to_folder(path: str, folder: Path) -> str:
    """``path`` as the job names it: relative to the watch folder, POSIX separators."""
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists():
        try:
            return Path(os.path.abspath(candidate)).relative_to(Path(os.path.abspath(folder))).as_posix()
        except ValueError:
            pass
    return Path(path).as_posix()


def job_path(job: Job) -> str:
    return job.description or (str(job.args[0]) if job.args else job.id)


def requeue(connection: redis.Redis, settings: Settings, paths: list[str] | None) -> list[str]:
    """Requeue the failed jobs of ``paths`` (relative; None: all); returns the paths requeued."""
    queue = upload_queue(connection, settings.queue_name)
    registry = FailedJobRegistry(queue=queue)
    jobs = [j for j in Job.fetch_many(registry.get_job_ids(cleanup=False), connection=connection, serializer=queue.serializer) if j]
    done = []
    for job in jobs:
        path = job_path(job)
        if paths is not None and path not in paths:
            continue
        # The horizon counts from the first failure: a person's retry starts a new one.
        job.meta.pop("first_failed_at", None)
        job.save_meta()
        poison.forget_deaths(connection, job.id)
        registry.requeue(job)
        log.info("job.requeued", file=path, job_id=job.id, reason="miro-sync retry")
        done.append(path)
    return done


def quarantined(connection: redis.Redis, settings: Settings) -> dict[str, dict]:
    """The files quarantined after workers died on them: relative path -> their rejection."""
    if not settings.miro_board_id:  # `--all` needs no board for failed jobs; without one there is no ledger to list
        return {}
    return {path: r for path, r in Ledger(connection, settings.miro_board_id).rejections().items() if "deaths" in r}


def release(connection: redis.Redis, settings: Settings, paths: list[str]) -> dict[str, str]:
    """Release the quarantined ``paths``: rejection and death count cleared, the job queued again; path -> why it was held."""
    ledger = Ledger(connection, settings.miro_board_id)
    queue = upload_queue(connection, settings.queue_name)
    released = {}
    for path in paths:
        record = ledger.rejection(path)
        if record is None or "deaths" not in record:
            continue
        size, mtime_ns = int(record["size"]), int(record["mtime_ns"])
        ledger.clear_rejection(path)
        poison.forget_deaths(connection, job_id(path, size, mtime_ns))
        # The version that was held; if the file changed since, its job skips and the watcher has the new one.
        job = enqueue_upload(queue, path, size, mtime_ns, job_timeout=settings.job_timeout)
        log.info("file.released", file=path, job_id=job.id if job else None, reason="miro-sync retry")
        released[path] = str(record.get("reason", "quarantined"))
    return released


def no_job(connection: redis.Redis, settings: Settings, relpath: str) -> str:
    """Why ``relpath`` has no failed job, and what to do instead."""
    try:
        st = (settings.watch_folder / relpath).stat()
    except OSError:
        return f"not in the watch folder ({settings.watch_folder}); give its path inside WATCH_FOLDER"
    ledger = Ledger(connection, settings.miro_board_id)
    reason = ledger.rejected_because(relpath, st.st_size, st.st_mtime_ns)
    if reason is not None:
        return f"rejected as a bad file ({reason}), so never retried; replace it with a good copy and it is taken by itself"
    if ledger.path(relpath) is not None:
        return "nothing to retry: it is on the board"
    return "nothing to retry: no failed job (queued or uploading? see miro-sync status)"


def run(args: argparse.Namespace) -> int:
    if bool(args.all) == bool(args.paths):
        print("miro-sync retry: give PATH... or --all", file=sys.stderr)
        return 2
    settings = load_settings(needs=() if args.all else (Need.BOARD, Need.FOLDER))  # a PATH is looked up in both
    connection = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=10)
    wanted = None if args.all else sorted({relative_to_folder(p, settings.watch_folder) for p in args.paths})
    done = requeue(connection, settings, wanted)
    for path in done:
        print(f"✔ requeued {path}")
    if wanted is None:
        if not done:
            print("no failed jobs")
        for path, record in sorted(quarantined(connection, settings).items()):
            print(f"· {path} stays quarantined ({record.get('reason')}): `miro-sync retry {shlex.quote(path)}` releases it")
        return 0
    released = release(connection, settings, wanted)
    for path, reason in released.items():
        print(f"✔ released {path} (quarantined: {reason}); queued again")
    missing = [p for p in wanted if p not in done and p not in released]
    for path in missing:
        print(f"✘ {path}: {no_job(connection, settings, path)}")
    return 1 if missing else 0
