"""`miro-sync serve`: the image server under gunicorn.

Settings need the folder and, for the url route, the signing secret; never the Miro token: this process
is the one reachable from the internet, so it does not hold it.
"""

from __future__ import annotations

import argparse

from services.gunicorn_app import run_gunicorn
from shared import redis_down
from shared.log import configure, get_logger, register_secrets
from shared.settings import Need, load_settings

log = get_logger("image_server")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bind", default=None, metavar="HOST:PORT",
                        help="where to listen (default: IMAGE_SERVER_BIND, which defaults to 127.0.0.1:8000)")
    parser.add_argument("--workers", type=int, default=2, metavar="N", help="gunicorn worker processes (default: 2)")
    parser.add_argument("--threads", type=int, default=4, metavar="N",
                        help="threads per worker; a slow fetcher holds one thread, not a process (default: 4)")


def run(args: argparse.Namespace) -> int:
    from .app import create_app  # Flask is loaded only for this command

    settings = load_settings(needs={Need.FOLDER})
    configure(settings.log_level, settings.log_format)
    register_secrets(settings.secrets)
    bind = args.bind or settings.image_server_bind
    app = create_app(settings)
    redis_down.say_if_down(app.extensions["redis"], settings.redis_url, log, "pictures are served; /healthz answers 503")
    log.info("image_server.start", bind=bind, folder=str(settings.watch_folder), workers=args.workers)
    return run_gunicorn(app, bind=bind, workers=args.workers, threads=args.threads, proc_name="miro-sync-image-server")
