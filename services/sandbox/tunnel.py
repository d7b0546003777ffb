"""ngrok agent stand-in: the agent API and a public endpoint that forwards to an upstream.

ngrok cannot be reached from the machines this project is built and tested on, so this module plays
the two parts of it the project talks to, as ngrok documents them:

- the **agent API** (port 4040 on a real agent): ``GET /api/endpoints`` (agent >= 3.30.0) and the
  deprecated ``GET /api/tunnels``, with the JSON shapes of https://ngrok.com/docs/agent/api;
- the **public endpoint**: every request is forwarded to the upstream (the image server) with the
  method, raw path, query, headers and body kept, hop-by-hop headers dropped and
  ``X-Forwarded-For/Proto/Host`` added.

Modes (``TunnelConfig.mode``, or ``PUT /_sandbox/tunnel/mode {"mode": ...}`` on the agent API port):

- ``normal``: everything is forwarded (a paid plan).
- ``warning-page``: the free plan's interstitial, ERR_NGROK_6024 (https://ngrok.com/docs/errors/err_ngrok_6024,
  https://ngrok.com/docs/pricing-limits/free-plan-limits). A request with a
  browser User-Agent and no ``ngrok-skip-browser-warning`` *request* header gets the HTML page and is
  not forwarded; anything the upstream would answer (even a ``ngrok-skip-browser-warning`` response
  header) cannot change that, because the upstream is never asked.
- ``offline``: ERR_NGROK_3200 (https://ngrok.com/docs/errors/err_ngrok_3200), 404: ngrok documents no
  status; 404 is what two third-party clients report.
- ``bandwidth`` / ``requests``: the monthly quotas, ERR_NGROK_725 / ERR_NGROK_727. ngrok documents
  no status for them; **assumed 429** here (the account is over a limit, retry later).
- ``starting``: the agent runs but its session is not up yet: the API lists no endpoint and the
  public URL answers ERR_NGROK_3200.

Every page the stand-in answers itself carries the ``ngrok-error-code`` header, as ngrok documents
for "fails to handle an HTTP request"; it is HTML for browsers and plain text otherwise.
``agent_version`` below 3.30.0 makes ``/api/endpoints`` answer 404, like older agents.

Python, for tests and ``miro-sync up``::

    handle = start_tunnel(TunnelConfig(upstream="http://127.0.0.1:8000", mode="warning-page"))
    handle.public_url, handle.api_url
    handle.set_mode("offline")
    handle.stop()
"""

from __future__ import annotations

import argparse
import html
import re
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from http.client import HTTPConnection, HTTPException, HTTPSConnection
from typing import cast
from urllib.parse import urlsplit

from flask import Flask, jsonify, request
from werkzeug.datastructures import Headers
from werkzeug.http import http_date
from werkzeug.serving import BaseWSGIServer, ThreadedWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from shared.log import get_logger

log = get_logger("sandbox.tunnel")

MODES = ("normal", "warning-page", "offline", "bandwidth", "requests", "starting")
DEFAULT_AGENT_VERSION = "3.39.9"
ENDPOINTS_API_SINCE = (3, 30, 0)
"""``/api/endpoints`` appeared in agent 3.30.0 (2025-09-23); older agents answer 404."""
ENDPOINT_NAME = "command_line"
"""The name ngrok gives a tunnel started on the command line (`ngrok http ...`)."""
SKIP_HEADER = "ngrok-skip-browser-warning"
VISIT_COOKIE = "abuse_interstitial"
"""Set by the interstitial's Visit button (name seen in third-party code, not documented)."""

# RFC 9110 §7.6.1: meaningful for one connection only, never forwarded.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "transfer-encoding", "upgrade",
})
CHUNK = 64 * 1024


@dataclass(frozen=True)
class NgrokError:
    code: str
    status: int
    message: str  # verbatim from ngrok's error docs, `{host}` filled in


ERRORS = {
    "offline": NgrokError("ERR_NGROK_3200", 404, "The endpoint {host} is offline."),
    "starting": NgrokError("ERR_NGROK_3200", 404, "The endpoint {host} is offline."),
    "bandwidth": NgrokError("ERR_NGROK_725", 429, "This ngrok account has reached its network bandwidth limit for the month."),
    "requests": NgrokError("ERR_NGROK_727", 429, "This ngrok account has reached its HTTP requests limit for the month."),
}
WARNING = NgrokError("ERR_NGROK_6024", 200, "You are about to visit {host}.")
UPSTREAM_DOWN = NgrokError(
    "ERR_NGROK_8012", 502,
    "Traffic successfully made it to the ngrok agent, but the agent failed to establish a connection to the upstream web service at {upstream}.",
)


# -- pure decisions ---------------------------------------------------------------------------

_ENGINE = re.compile(r"AppleWebKit/|Gecko/|Trident/|Presto/|Chrome/|Firefox/")
_BOT = re.compile(r"bot\b|bot/|crawl|spider|slurp", re.IGNORECASE)


def is_browser(user_agent: str | None) -> bool:
    """True for a standard browser User-Agent, as a browser detector would say.

    ngrok's exact test is not published; its free-plan docs say a custom or non-standard
    User-Agent skips the page. Crawlers that claim Mozilla are not browsers to a detector either.
    """
    ua = user_agent or ""
    return ua.startswith("Mozilla/") and bool(_ENGINE.search(ua)) and not _BOT.search(ua)


def shows_warning(headers: Headers, cookies: dict[str, str], host: str) -> bool:
    """Whether the free plan answers this request with the interstitial instead of forwarding it."""
    if SKIP_HEADER in headers:  # "set it to any value" (ngrok's free-plan-limits page)
        return False
    if cookies.get(VISIT_COOKIE) == host:
        return False
    return is_browser(headers.get("User-Agent"))


def agent_has_endpoints_api(version: str) -> bool:
    try:
        parts = tuple(int(p) for p in version.split(".")[:3])
    except ValueError:
        return True
    return parts >= ENDPOINTS_API_SINCE


def forward_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Drop hop-by-hop headers, including those the ``Connection`` header names."""
    headers = list(headers)
    named = {
        token.strip().lower()
        for name, value in headers if name.lower() == "connection"
        for token in value.split(",")
    }
    return [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP and k.lower() not in named]


def warning_html(host: str) -> str:
    h = html.escape(host)
    # The text is ERR_NGROK_6024's (https://ngrok.com/docs/errors/err_ngrok_6024); the Visit button sets the cookie a browser keeps.
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ngrok</title></head>
<body data-ngrok-error="ERR_NGROK_6024">
<h1>You are about to visit {h}</h1>
<p>This website is served for free through ngrok.com.</p>
<p>You should only visit this website if you trust whoever sent the link to you.</p>
<button id="visit" onclick="document.cookie='{VISIT_COOKIE}={h}; path=/; max-age=604800'; location.reload()">Visit Site</button>
<h2>Are you the developer?</h2>
<p>To remove this page: set and send an <code>{SKIP_HEADER}</code> request header with any value;
or set and send a custom/non-standard browser <code>User-Agent</code> request header;
or please upgrade to any paid ngrok account.</p>
<p>ERR_NGROK_6024</p>
</body></html>
"""


def error_text(error: NgrokError, host: str, upstream: str, browser: bool) -> tuple[str, str]:
    """(body, content type) of a page ngrok answers itself: HTML for browsers, plain text otherwise."""
    message = error.message.format(host=host, upstream=upstream)
    if browser:
        page = (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>ngrok</title></head>\n'
            f'<body data-ngrok-error="{error.code}"><h1>{html.escape(message)}</h1>\n<p>{error.code}</p></body></html>\n'
        )
        return page, "text/html; charset=utf-8"
    return f"{message}\n\n{error.code}\n", "text/plain; charset=utf-8"


def ngrok_page(error: NgrokError, body: str, content_type: str) -> Response:
    return Response(body, status=error.status, headers={
        "Content-Type": content_type, "ngrok-error-code": error.code, "Date": http_date(time.time()),
    })


# -- state ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TunnelConfig:
    public_port: int = 0
    api_port: int = 0
    upstream: str = "http://127.0.0.1:8000"
    mode: str = "normal"
    public_url: str | None = None  # what the API advertises, e.g. http://ngrok:8080 in a container
    host: str = "127.0.0.1"
    agent_version: str = DEFAULT_AGENT_VERSION

    def __post_init__(self) -> None:
        check_mode(self.mode)
        if urlsplit(self.upstream).scheme not in ("http", "https"):
            raise ValueError(f"upstream {self.upstream!r} is not an http:// or https:// address")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown tunnel mode {mode!r}; expected one of {', '.join(MODES)}")
    return mode


class TunnelState:
    """What both servers share: the mode (switchable at run time), counters and a request log."""

    def __init__(self, config: TunnelConfig) -> None:
        self.config = config
        self.public_url = config.public_url or ""
        self.lock = threading.Lock()
        self.requests: list[dict] = []  # recent public requests, newest last
        self.http_count = 0

    @property
    def mode(self) -> str:
        return self.config.mode

    def update(self, mode: str | None = None, agent_version: str | None = None) -> None:
        with self.lock:
            self.config = replace(self.config, mode=check_mode(mode or self.config.mode),
                                  agent_version=agent_version or self.config.agent_version)

    def record(self, method: str, path: str, user_agent: str | None, outcome: str, status: int) -> None:
        with self.lock:
            self.http_count += 1
            self.requests.append({"method": method, "path": path, "user_agent": user_agent,
                                  "outcome": outcome, "status": status, "at": time.time()})
            del self.requests[:-200]

    def endpoints(self) -> list[dict]:
        if self.mode == "starting":
            return []
        scheme = urlsplit(self.public_url).scheme
        return [{
            "name": ENDPOINT_NAME,
            "uri": f"/api/endpoints/{ENDPOINT_NAME}",
            "url": self.public_url,
            "upstream": {"url": self.config.upstream, "protocol": scheme},
            "inspect": True,
            "traffic_policy": "",
            "pooling_enabled": False,
        }]

    def tunnels(self) -> list[dict]:
        if self.mode == "starting":
            return []
        metrics = {k: 0 for k in ("rate1", "rate5", "rate15", "p50", "p90", "p95", "p99")}
        return [{
            "name": ENDPOINT_NAME,
            "uri": f"/api/tunnels/{ENDPOINT_NAME}",
            "public_url": self.public_url,
            # v3 agents open one HTTPS endpoint (proto "https"); the stand-in's URL may be plain http.
            "proto": urlsplit(self.public_url).scheme,
            "config": {"addr": self.config.upstream, "inspect": True},
            "metrics": {"conns": {"count": self.http_count, "gauge": 0, **metrics},
                        "http": {"count": self.http_count, **metrics}},
        }]


# -- the public endpoint ----------------------------------------------------------------------


class PublicEndpoint:
    """WSGI app of the public URL: answers as ngrok would, or forwards to the upstream."""

    def __init__(self, state: TunnelState) -> None:
        self.state = state

    def __call__(self, environ, start_response):
        req = Request(environ)
        host = req.host
        ua = req.headers.get("User-Agent")
        mode = self.state.mode
        error = ERRORS.get(mode)
        if error is None and mode == "warning-page" and shows_warning(req.headers, req.cookies, host):
            error = WARNING
            response = ngrok_page(WARNING, warning_html(host), "text/html; charset=utf-8")
        elif error is not None:
            response = ngrok_page(error, *error_text(error, host, self.state.config.upstream, is_browser(ua)))
        else:
            return self.forward(req, start_response)
        self.state.record(req.method, req.path, ua, error.code, response.status_code)
        log.info("tunnel.answered", error_code=error.code, path=req.path, user_agent=ua)
        return response(environ, start_response)

    def forward(self, req: Request, start_response):
        environ = req.environ
        upstream = urlsplit(self.state.config.upstream)
        connection_class = HTTPSConnection if upstream.scheme == "https" else HTTPConnection
        conn = connection_class(cast(str, upstream.hostname), upstream.port, timeout=60)  # the upstream is a URL with a host
        # The raw request target, so encoded path syntax reaches the upstream exactly as sent.
        target = environ.get("RAW_URI") or req.full_path
        path = upstream.path.rstrip("/") + target
        headers = forward_headers(req.headers.items())
        client = req.remote_addr or ""
        prior = req.headers.get("X-Forwarded-For")
        headers = [(k, v) for k, v in headers if not k.lower().startswith("x-forwarded-")]
        headers += [
            ("X-Forwarded-For", f"{prior}, {client}" if prior else client),
            ("X-Forwarded-Proto", urlsplit(self.state.public_url).scheme or "http"),
            ("X-Forwarded-Host", req.host),
        ]
        chunked = "chunked" in req.headers.get("Transfer-Encoding", "").lower()
        if chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        try:
            conn.putrequest(req.method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                conn.putheader(name, value)
            has_body = chunked or int(req.headers.get("Content-Length") or 0) > 0
            conn.endheaders(_read_chunks(req.stream) if has_body else None, encode_chunked=chunked)
            upstream_response = conn.getresponse()
        except (OSError, HTTPException) as exc:
            conn.close()
            ua = req.headers.get("User-Agent")
            page = ngrok_page(UPSTREAM_DOWN, *error_text(UPSTREAM_DOWN, req.host, self.state.config.upstream, is_browser(ua)))
            self.state.record(req.method, req.path, ua, UPSTREAM_DOWN.code, UPSTREAM_DOWN.status)
            log.warning("tunnel.upstream_failed", upstream=self.state.config.upstream, error=type(exc).__name__)
            return page(environ, start_response)
        self.state.record(req.method, req.path, req.headers.get("User-Agent"), "forwarded", upstream_response.status)
        status = f"{upstream_response.status} {upstream_response.reason}"
        start_response(status, forward_headers(upstream_response.getheaders()))
        return _stream(conn, upstream_response)


def _read_chunks(stream) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK):
        yield chunk


def _stream(conn: HTTPConnection, response) -> Iterator[bytes]:
    try:
        while chunk := response.read1(CHUNK):
            yield chunk
    finally:
        conn.close()


# -- the agent API ----------------------------------------------------------------------------


def create_agent_api(state: TunnelState) -> Flask:
    app = Flask("ngrok-agent-standin")

    def not_found(what: str):
        # The agent API's error shape: {error_code, status_code, msg, details}.
        return jsonify({"error_code": 100, "status_code": 404, "msg": f"{what} not found", "details": {}}), 404

    @app.get("/api/endpoints")
    def endpoints():
        if not agent_has_endpoints_api(state.config.agent_version):
            return not_found("/api/endpoints")
        return jsonify({"endpoints": state.endpoints()})

    @app.get("/api/endpoints/<name>")
    def endpoint(name: str):
        if not agent_has_endpoints_api(state.config.agent_version):
            return not_found("/api/endpoints")
        found = [e for e in state.endpoints() if e["name"] == name]
        return jsonify(found[0]) if found else not_found(f"endpoint {name!r}")

    @app.get("/api/tunnels")
    def tunnels():
        return jsonify({"tunnels": state.tunnels(), "uri": "/api/tunnels"})

    @app.get("/api/tunnels/<name>")
    def tunnel(name: str):
        found = [t for t in state.tunnels() if t["name"] == name]
        return jsonify(found[0]) if found else not_found(f"tunnel {name!r}")

    @app.route("/_sandbox/tunnel/mode", methods=["GET", "PUT"])
    def mode():
        if request.method == "PUT":
            body = request.get_json(silent=True) or {}
            try:
                state.update(mode=body.get("mode"), agent_version=body.get("agent_version"))
            except ValueError as exc:
                return jsonify({"error": str(exc), "modes": list(MODES)}), 400
            log.info("tunnel.mode", mode=state.mode, agent_version=state.config.agent_version)
        return jsonify({"mode": state.mode, "agent_version": state.config.agent_version, "modes": list(MODES)})

    @app.get("/_sandbox/tunnel/requests")
    def requests_seen():
        with state.lock:
            return jsonify({"requests": list(state.requests)})

    return app


# -- servers ----------------------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    """No per-request access line (the stand-in logs its own events) and no Server/Date of its own,
    so a forwarded response keeps the upstream's headers and carries each once."""

    def send_response(self, code, message=None):
        self.send_response_only(code, message)

    def log_request(self, code="-", size="-"):
        pass


@dataclass
class TunnelHandle:
    state: TunnelState
    public_server: BaseWSGIServer
    api_server: BaseWSGIServer
    threads: list[threading.Thread]

    @property
    def public_url(self) -> str:
        return self.state.public_url

    @property
    def local_url(self) -> str:
        """Where the public endpoint really listens (may differ from an advertised public_url)."""
        return f"http://127.0.0.1:{self.public_server.server_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_server.server_port}"

    @property
    def mode(self) -> str:
        return self.state.mode

    def set_mode(self, mode: str) -> None:
        self.state.update(mode=mode)

    def set_agent_version(self, version: str) -> None:
        self.state.update(agent_version=version)

    def requests(self) -> list[dict]:
        with self.state.lock:
            return list(self.state.requests)

    def __enter__(self) -> TunnelHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        for server in (self.public_server, self.api_server):
            server.shutdown()
            server.server_close()
        for thread in self.threads:
            thread.join(5)


def start_tunnel(config: TunnelConfig) -> TunnelHandle:
    """Start the public endpoint and the agent API, each on its own port, in background threads."""
    state = TunnelState(config)
    # threaded=True makes a ThreadedWSGIServer; make_server is typed for the base class.
    public = cast(ThreadedWSGIServer, make_server(config.host, config.public_port, PublicEndpoint(state), threaded=True, request_handler=_QuietHandler))
    api = cast(ThreadedWSGIServer, make_server(config.host, config.api_port, create_agent_api(state), threaded=True, request_handler=_QuietHandler))
    public.daemon_threads = api.daemon_threads = True
    state.public_url = (config.public_url or f"http://127.0.0.1:{public.server_port}").rstrip("/")
    threads = [threading.Thread(target=s.serve_forever, args=(0.05,), name=f"tunnel-{n}", daemon=True) for n, s in (("public", public), ("api", api))]
    for thread in threads:
        thread.start()
    log.info("tunnel.started", public_url=state.public_url, api_url=f"http://{config.host}:{api.server_port}",
             upstream=config.upstream, mode=config.mode, agent_version=config.agent_version)
    return TunnelHandle(state, public, api, threads)


# -- command line (used by `miro-sync sandbox`) -----------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("ngrok agent stand-in")
    group.add_argument("--tunnel-port", type=int, default=None, metavar="PORT",
                       help="start the ngrok stand-in; its public endpoint listens on PORT (0: any free port)")
    group.add_argument("--tunnel-api-port", type=int, default=4040, metavar="PORT",
                       help="agent API port, like ngrok's web_addr (default: 4040)")
    group.add_argument("--tunnel-upstream", default="http://127.0.0.1:8000", metavar="URL",
                       help="where the public endpoint forwards to (default: http://127.0.0.1:8000)")
    group.add_argument("--tunnel-mode", choices=MODES, default="normal",
                       help="normal | warning-page (free plan) | offline | bandwidth | requests | starting (default: normal)")
    group.add_argument("--warning-page", action="store_true", help="same as --tunnel-mode warning-page")
    group.add_argument("--tunnel-public-url", default=None, metavar="URL",
                       help="the public URL the agent API advertises (default: http://127.0.0.1:<tunnel-port>)")
    group.add_argument("--tunnel-agent-version", default=DEFAULT_AGENT_VERSION, metavar="X.Y.Z",
                       help=f"agent version to emulate; below 3.30.0 /api/endpoints answers 404 (default: {DEFAULT_AGENT_VERSION})")


def config_from_args(args: argparse.Namespace, host: str = "127.0.0.1") -> TunnelConfig | None:
    """The tunnel to start, or None when ``--tunnel-port`` was not given."""
    if args.tunnel_port is None:
        return None
    return TunnelConfig(
        public_port=args.tunnel_port,
        api_port=args.tunnel_api_port,
        upstream=args.tunnel_upstream,
        mode="warning-page" if args.warning_page else args.tunnel_mode,
        public_url=args.tunnel_public_url,
        host=host,
        agent_version=args.tunnel_agent_version,
    )


def describe(handle: TunnelHandle) -> str:
    """The lines `miro-sync sandbox` prints about the tunnel."""
    return (f"ngrok stand-in: public {handle.public_url} (listening on :{handle.public_server.server_port})"
            f" -> {handle.state.config.upstream}, mode {handle.mode}\n"
            f"ngrok agent API: http://{handle.state.config.host}:{handle.api_server.server_port}/api/endpoints"
            f" (agent {handle.state.config.agent_version})")


def main(argv: list[str] | None = None) -> int:
    """The ngrok stand-in alone (no Miro stand-in): ``python -m services.sandbox.tunnel``.

    For a compose service that plays ngrok, or a tunnel in front of an image server run by hand.
    """
    from shared.log import configure

    parser = argparse.ArgumentParser(prog="python -m services.sandbox.tunnel", description="the ngrok agent stand-in alone")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    add_arguments(parser)
    parser.set_defaults(tunnel_port=0)
    args = parser.parse_args(argv)
    configure()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    config = cast(TunnelConfig, config_from_args(args, host=args.host))  # never None: --tunnel-port defaults to 0 here
    with start_tunnel(config) as handle:
        print(describe(handle), flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
