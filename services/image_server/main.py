"""`miro-sync serve`: the image server under gunicorn.

Settings need the folder and the signing secret, never the Miro token: this process is the one
reachable from the internet, so it does not hold it.
"""

from __future__ import annotations

import argparse

from gunicorn.app.base import BaseApplication

from shared.log import configure, get_logger, register_secrets
from shared.settings import Need, load_settings

log = get_logger("image_server")


class _Gunicorn(BaseApplication):
    """gunicorn with options from here, not from its own command line."""

    def __init__(self, app, options: dict) -> None:
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in _SINCE_27 and key not in self.cfg.settings:
                continue
            self.cfg.set(key, value)

    def load(self):
        return self.application


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bind", default=None, metavar="HOST:PORT",
                        help="where to listen (default: IMAGE_SERVER_BIND, which defaults to 127.0.0.1:8000)")
    parser.add_argument("--workers", type=int, default=2, metavar="N", help="gunicorn worker processes (default: 2)")
    parser.add_argument("--threads", type=int, default=4, metavar="N",
                        help="threads per worker; a slow fetcher holds one thread, not a process (default: 4)")


def run(args: argparse.Namespace) -> int:
    from .app import create_app  # Flask is loaded only for this command

    settings = load_settings(needs={Need.FOLDER, Need.SIGNING})
    configure(settings.log_level, settings.log_format)
    register_secrets(settings.secrets)
    bind = args.bind or settings.image_server_bind
    app = create_app(settings)
    log.info("image_server.start", bind=bind, folder=str(settings.watch_folder), workers=args.workers)
    return run_gunicorn(app, bind=bind, workers=args.workers, threads=args.threads, proc_name="miro-sync-image-server")


GUNICORN_DEFAULTS = {
    "worker_class": "gthread",
    "accesslog": None,  # the apps log one line per request themselves (never a signature or password)
    "timeout": 60,
    "graceful_timeout": 10,
    # gunicorn 27's control socket defaults to one path per user ($HOME/.gunicorn/gunicorn.ctl):
    # two servers of one user (image server, dashboard) would fight over it, and nothing uses it.
    "control_socket_disable": True,
}
_SINCE_27 = {"control_socket_disable"}


def run_gunicorn(app, **options) -> int:
    """Serve a WSGI app under gunicorn until it is stopped; the exit status. ``options`` are
    gunicorn settings (``bind``, ``workers``, ``threads``, ``proc_name``...) over the defaults."""
    try:
        _Gunicorn(app, {**GUNICORN_DEFAULTS, **options}).run()
    except SystemExit as exc:  # the arbiter exits the process when it stops
        return int(exc.code or 0)
    return 0
