from __future__ import annotations

import json
import threading

import pytest
from werkzeug.wrappers import Request, Response

from services.sandbox.tunnel import TunnelConfig, start_tunnel
from tests.image_server.conftest import folder  # noqa: F401  (a fixture, shared)
from tests.image_server.support import make_settings, serve_in_thread


class Upstream:
    """Any web service behind the tunnel: records what reached it, answers by path.

    ``/stream``: three chunks without Content-Length; ``/skip``: sets the
    ``ngrok-skip-browser-warning`` *response* header; anything else echoes the request as JSON.
    """

    def __init__(self) -> None:
        self.seen: list[dict] = []
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        req = Request(environ)
        body = req.get_data()
        with self.lock:
            self.seen.append({"method": req.method, "raw_uri": environ.get("RAW_URI"), "path": req.path,
                              "query": req.query_string.decode(), "headers": dict(req.headers), "body": body})
        if req.path == "/stream":
            response = Response((f"part-{i};".encode() for i in range(3)), headers={"X-Upstream": "yes"})
        elif req.path == "/skip":
            response = Response(b"\x89PNG-ish", headers={"Content-Type": "image/png", "ngrok-skip-browser-warning": "true"})
        else:
            echo = {"method": req.method, "path": req.path, "body_len": len(body)}
            response = Response(json.dumps(echo), headers={"Content-Type": "application/json", "X-Upstream": "yes",
                                                           "Keep-Alive": "timeout=5"})
        return response(environ, start_response)


@pytest.fixture
def upstream():
    app = Upstream()
    with serve_in_thread(app) as url:
        app.url = url
        yield app


@pytest.fixture
def tunnel(upstream):
    with start_tunnel(TunnelConfig(upstream=upstream.url)) as handle:
        yield handle


@pytest.fixture
def image_server_url(folder, redis_url):
    """The real image-server app on a threaded server (gunicorn is covered in tests/image_server)."""
    from services.image_server.app import create_app

    with serve_in_thread(create_app(make_settings(folder, redis_url))) as url:
        yield url


@pytest.fixture
def chain(image_server_url):
    """The ngrok stand-in in front of the image server."""
    with start_tunnel(TunnelConfig(upstream=image_server_url)) as handle:
        yield handle


@pytest.fixture
def settings_for(folder, redis_url):
    def _settings(**extra: str):
        return make_settings(folder, redis_url, **extra)

    return _settings
