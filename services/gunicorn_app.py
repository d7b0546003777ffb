"""Serve a WSGI app under gunicorn with options from our code, not from gunicorn's command line.

One runner for both web services (``miro-sync serve``, ``miro-sync dashboard``), so they share the
defaults below and the handling of gunicorn versions.
"""

from __future__ import annotations

from gunicorn.app.base import BaseApplication

DEFAULTS = {
    "worker_class": "gthread",
    "accesslog": None,  # the apps log one line per request themselves (never a signature or password)
    "timeout": 60,
    "graceful_timeout": 10,
    # gunicorn 27's control socket defaults to one path per user ($HOME/.gunicorn/gunicorn.ctl):
    # two servers of one user (image server, dashboard) would fight over it, it is not writable in
    # the container, and nothing uses it.
    "control_socket_disable": True,
}
_NEWER_SETTINGS = {"control_socket_disable"}
"""Settings older supported gunicorn versions do not know: skipped there instead of failing."""


class _Application(BaseApplication):
    def __init__(self, app, options: dict) -> None:
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in _NEWER_SETTINGS and key not in self.cfg.settings:
                continue
            self.cfg.set(key, value)

    def load(self):
        return self.application


def run_gunicorn(app, **options) -> int:
    """Serve ``app`` until gunicorn is stopped; the exit status. ``options`` are gunicorn settings
    (``bind``, ``workers``, ``threads``, ``proc_name``...) over :data:`DEFAULTS`."""
    try:
        _Application(app, {**DEFAULTS, **options}).run()
    except SystemExit as exc:  # the arbiter exits the process when it stops
        return int(exc.code or 0)
    return 0
