"""`miro-sync dashboard`: rq-dashboard on the project's Redis, under gunicorn.

The jobs are JSON-serialized (docs/architecture.md), so the dashboard reads them with RQ's
``JSONSerializer``; with rq-dashboard's default (pickle) the page of any job that carries metadata
fails.

rq-dashboard binds 0.0.0.0 without authentication by default and can requeue and delete jobs, so
here basic auth is required (``DASHBOARD_USERNAME``/``DASHBOARD_PASSWORD``, from the environment
or ``.env``, never from the command line where ``ps`` shows them) unless ``--no-auth`` says
otherwise, the default bind is loopback, and the state-changing endpoints answer only requests
made by the dashboard's own page (see :func:`same_origin_only`).
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import re

import redis
from flask import Flask, Response, request

from shared import redis_down
from shared.log import configure, get_logger, register_secrets
from shared.settings import SettingsError, load_env, load_settings

from .gunicorn_app import run_gunicorn

log = get_logger("dashboard")

DEFAULT_BIND = "127.0.0.1:9181"
REALM = "miro-sync dashboard"

# rq-dashboard endpoints that change the queue; all others only read.
_UNSAFE_ENDPOINTS = {"delete_job_view", "requeue_job_view", "requeue_all", "empty_queue", "compact_queue"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bind", default=None, metavar="HOST:PORT",
                        help=f"where to listen (default: DASHBOARD_BIND, else {DEFAULT_BIND}); "
                             "in a container use 0.0.0.0 and publish the port on 127.0.0.1 only")
    parser.add_argument("--no-auth", action="store_true",
                        help="serve without basic auth (only for a dashboard nobody else can reach)")
    parser.add_argument("--disable-delete", action="store_true",
                        help="hide and refuse deleting jobs and emptying registries")
    parser.add_argument("--url-prefix", default="", metavar="PATH", help="serve under this path (behind a proxy)")
    parser.add_argument("--poll-interval", type=int, default=2500, metavar="MS",
                        help="how often the page refreshes, in milliseconds (default: 2500)")


def credentials(env: dict[str, str], no_auth: bool) -> tuple[str, str] | None:
    """The basic-auth pair from ``DASHBOARD_USERNAME``/``DASHBOARD_PASSWORD``; None only with ``no_auth``."""
    if no_auth:
        return None
    for name in ("DASHBOARD_USERNAME", "DASHBOARD_PASSWORD"):
        if not env.get(name):
            raise SettingsError(name, "is not set; the dashboard requires basic auth (set DASHBOARD_USERNAME "
                                      "and DASHBOARD_PASSWORD, or pass --no-auth for a dashboard only you can reach)")
    return env["DASHBOARD_USERNAME"], env["DASHBOARD_PASSWORD"]


def check_bind(bind: str) -> str:
    if not re.match(r"^[^\s:]*:\d{1,5}$", bind):
        raise SettingsError("DASHBOARD_BIND", f"is {bind!r}; expected HOST:PORT, e.g. {DEFAULT_BIND}")
    return bind


def is_loopback(bind: str) -> bool:
    host = bind.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def basic_auth(username: str, password: str):
    """A ``before_request`` hook: 401 unless the request carries exactly these credentials."""
    expected_user, expected_password = username.encode(), password.encode()

    def check() -> Response | None:
        auth = request.authorization
        if auth is not None and auth.type == "basic":
            # Both compared every time, in constant time: the answer's timing tells nothing.
            user_ok = hmac.compare_digest((auth.username or "").encode(), expected_user)
            password_ok = hmac.compare_digest((auth.password or "").encode(), expected_password)
            if user_ok and password_ok:
                return None
        return Response("Login required.\n", 401, {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'})

    return check


def same_origin_only() -> Response | None:
    """Refuse queue changes that another web site could trigger in a logged-in browser.

    The dashboard's page sends them with jQuery's ``$.post``, which adds ``X-Requested-With``; a
    form, an ``<img>`` or a link on another site cannot add that header (a cross-site script would
    need a CORS preflight, which this server never grants). rq-dashboard also accepts GET for
    "requeue all failed jobs"; that is refused here.
    """
    endpoint = (request.endpoint or "").rpartition(".")[2]
    if endpoint not in _UNSAFE_ENDPOINTS:
        return None
    if request.method != "POST":
        return Response("Use POST.\n", 405, {"Allow": "POST"})
    if request.headers.get("X-Requested-With") != "XMLHttpRequest":
        return Response("Forbidden: queue changes are accepted from the dashboard page only.\n", 403)
    return None


def _read_workers_with(serializer) -> None:
    """Make rq-dashboard's worker views read the workers' current jobs with ``serializer``.

    rq-dashboard 0.9 lists workers with ``Worker.all(connection=...)``, ignoring its serializer
    setting, so the workers page fails (500) whenever a worker is running a JSON job.
    """
    import rq_dashboard.web
    from rq import Worker

    class _Worker(Worker):
        @classmethod
        def all(cls, *args, **kwargs):
            kwargs["serializer"] = kwargs.get("serializer") or serializer
            return super().all(*args, **kwargs)

    rq_dashboard.web.Worker = _Worker


def create_app(redis_url: str, auth: tuple[str, str] | None, disable_delete: bool = False,
               url_prefix: str = "", poll_interval_ms: int = 2500) -> Flask:
    """rq-dashboard's Flask app with the JSON serializer, our auth and our request guard."""
    from rq.serializers import JSONSerializer
    from rq_dashboard.cli import make_flask_app
    from rq_dashboard.web import config as dashboard_config
    from rq_dashboard.web import setup_rq_connection

    # No credentials handed to rq-dashboard: its own check compares with `!=` and is attached to a
    # module-wide blueprint; ours is constant-time and covers the whole app, static files included.
    app = make_flask_app(None, None, None, url_prefix.rstrip("/"))
    app.config.update(RQ_DASHBOARD_REDIS_URL=redis_url, RQ_DASHBOARD_DISABLE_DELETE=disable_delete,
                      RQ_DASHBOARD_POLL_INTERVAL=poll_interval_ms, DEPRECATED_OPTIONS=[])
    dashboard_config.serializer = JSONSerializer
    _read_workers_with(JSONSerializer)
    setup_rq_connection(app)  # builds the client only; Redis is contacted per request
    if auth is not None:
        app.before_request(basic_auth(*auth))
    app.before_request(same_origin_only)
    app.register_error_handler(redis.RedisError, redis_unavailable(redis_url))
    return app


def redis_unavailable(redis_url: str):
    """An error handler: Redis away is a 503 with the one line (logged every 30 s at most), not a traceback."""
    reminder = redis_down.Reminder()

    def answer(exc: redis.RedisError) -> Response:
        if reminder.due():
            log.warning("redis.unavailable", **redis_down.fields(redis_url, exc))
        return Response(redis_down.problem(redis_url, exc) + "\n", 503, {"Content-Type": "text/plain; charset=utf-8"})

    return answer


def run(args: argparse.Namespace) -> int:
    settings = load_settings(needs=())
    configure(settings.log_level, settings.log_format)
    env = load_env()
    auth = credentials(env, args.no_auth)
    register_secrets([*settings.secrets, *(auth[1:] if auth else ())])
    bind = check_bind(args.bind or env.get("DASHBOARD_BIND", DEFAULT_BIND))
    app = create_app(settings.redis_url, auth, args.disable_delete, args.url_prefix, args.poll_interval)
    redis_down.say_if_down(redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2), settings.redis_url, log,
                            "its pages answer 503 with this line")
    if auth is None and not is_loopback(bind):
        log.warning("dashboard.no_auth", bind=bind, hint="anyone who reaches this address can requeue jobs")
    log.info("dashboard.start", bind=bind, auth="basic" if auth else "off", user=auth[0] if auth else None,
             disable_delete=args.disable_delete)
    # rq-dashboard keeps its Redis client on the app: one process is plenty.
    return run_gunicorn(app, bind=bind, workers=1, threads=4, graceful_timeout=5, proc_name="miro-sync-dashboard")
