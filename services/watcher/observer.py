"""Choosing and starting the watchdog observer for ``WATCH_MODE``.

``auto`` takes the platform's native observer (inotify on Linux) and falls back to polling
when it cannot start: the inotify watch or instance limits are per user and shared with the
host when in a container (ENOSPC, EMFILE). ``inotify`` insists; ``polling`` always polls, for
folders whose changes produce no events here (Docker Desktop bind mounts, network shares).
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from shared.log import get_logger
from shared.settings import SettingsError, WatchMode

log = get_logger("watcher")

LIMIT_ERRORS = (errno.ENOSPC, errno.EMFILE)


def _inotify_class() -> Callable[[], BaseObserver]:
    try:
        from watchdog.observers.inotify import InotifyObserver
    except Exception:  # not Linux, or a libc without inotify
        raise SettingsError("WATCH_MODE", "is 'inotify' but inotify is not available here; use auto or polling") from None
    return InotifyObserver


def start_observer(
    mode: WatchMode,
    folder: Path,
    handler: FileSystemEventHandler,
    poll_interval: float,
    event_filter: list | None = None,
    native: Callable[[], BaseObserver] | None = None,
) -> BaseObserver:
    """A started observer watching ``folder`` recursively; ``native`` overrides the auto choice."""

    def start(observer: BaseObserver) -> BaseObserver:
        observer.schedule(handler, str(folder), recursive=True, event_filter=event_filter)
        observer.start()
        return observer

    if mode is WatchMode.POLLING:
        return start(PollingObserver(timeout=poll_interval))
    if mode is WatchMode.INOTIFY:
        return start(_inotify_class()())
    try:
        return start((native or Observer)())
    except OSError as exc:
        if exc.errno not in LIMIT_ERRORS:
            raise
        log.warning(
            "watch.fallback", observer="PollingObserver", poll_interval=poll_interval,
            reason=f"{exc.strerror or exc}; raise fs.inotify.max_user_watches / max_user_instances on the host to use inotify",
        )
        return start(PollingObserver(timeout=poll_interval))
