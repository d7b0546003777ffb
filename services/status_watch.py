"""`miro-sync status --watch`: the status redrawn every second with rich, plus a backfill bar.

The bar appears while jobs are outstanding (queued, in flight, retrying). Its total is what the
watch has seen end since the backfill began plus what is still outstanding, so it grows when a
scan queues more; rich estimates the rate (files per second) and the time left from it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis
from rich.console import Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text

from shared.status import Status


class RateColumn(ProgressColumn):
    """Files per second, from rich's own speed estimate."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.1f} files/s" if task.speed else "- files/s")


def ended(status: Status) -> int:
    """Jobs that reached an end: what a backfill's bar counts as done."""
    return status.synced + status.rejected + status.failed


def watch(read: Callable[[], Status], as_json: Callable[[Status], str] | None, every: float) -> int:
    from .status import render_text

    progress = Progress(TextColumn("backfill"), BarColumn(), MofNCompleteColumn(), RateColumn(), TimeRemainingColumn())
    task = None
    baseline = 0
    status = None
    with Live(refresh_per_second=4, transient=False) as live:
        try:
            while True:
                try:
                    status = read()
                except redis.RedisError as exc:
                    live.update(Text(f"no answer from Redis ({type(exc).__name__}); trying again"))
                    time.sleep(every)
                    continue
                if status.outstanding and task is None:
                    baseline = ended(status)
                    task = progress.add_task("backfill", total=status.outstanding)
                if task is not None:
                    done = max(0, ended(status) - baseline)
                    progress.update(task, completed=done, total=done + status.outstanding)
                    if not status.outstanding:
                        progress.remove_task(task)
                        task = None
                body = Text(as_json(status)) if as_json else Text(render_text(status))
                live.update(Group(body, progress) if task is not None else body)
                time.sleep(every)
        except KeyboardInterrupt:
            pass
    return 0 if status is None or status.healthy else 1
