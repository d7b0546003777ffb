"""`miro-sync retry [--all | PATH...]`: queue failed upload jobs again.

A job names its file by its path relative to the watch folder (the job's description); PATH may
be given that way, or as a path to the file inside WATCH_FOLDER. A retried job starts with a fresh
retry horizon. A PATH with no failed job is explained: not in the folder, rejected as bad (and
why), or nothing to retry. Exit code 1 when a PATH has no failed job, else 0.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import redis
from rq.job import Job
from rq.registry import FailedJobRegistry

from shared.jobs import upload_queue
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


def requeue(connection: redis.Redis, settings: Settings, paths: list[str] | None) -> tuple[list[str], list[str]]:
    """Requeue the failed jobs of ``paths`` (None: all); returns (requeued paths, paths with no failed job)."""
    queue = upload_queue(connection, settings.queue_name)
    registry = FailedJobRegistry(queue=queue)
    wanted = None if paths is None else {relative_to_folder(p, settings.watch_folder) for p in paths}
    jobs = [j for j in Job.fetch_many(registry.get_job_ids(cleanup=False), connection=connection, serializer=queue.serializer) if j]
    done = []
    for job in jobs:
        path = job_path(job)
        if wanted is not None and path not in wanted:
            continue
        # The horizon counts from the first failure: a person's retry starts a new one.
        job.meta.pop("first_failed_at", None)
        job.save_meta()
        registry.requeue(job)
        log.info("job.requeued", file=path, job_id=job.id, reason="miro-sync retry")
        done.append(path)
    missing = sorted(wanted - set(done)) if wanted is not None else []
    return done, missing


def no_job(connection: redis.Redis, settings: Settings, relpath: str) -> str:
    """Why ``relpath`` has no failed job, and what to do instead."""
    try:
        st = (settings.watch_folder / relpath).stat()
    except OSError:
        return f"not in the watch folder ({settings.watch_folder}); give its path inside WATCH_FOLDER"
    ledger = Ledger(connection, settings.miro_board_id)
    reason = ledger.rejection(relpath, st.st_size, st.st_mtime_ns)
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
    done, missing = requeue(connection, settings, None if args.all else list(args.paths))
    for path in done:
        print(f"✔ requeued {path}")
    for path in missing:
        print(f"✘ {path}: {no_job(connection, settings, path)}")
    if not done and not missing:
        print("no failed jobs")
    return 1 if missing else 0
