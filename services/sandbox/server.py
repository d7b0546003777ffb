"""The sandbox as a Flask app (``create_app``) and as a threaded server (``start_sandbox``).

    handle = start_sandbox(SandboxConfig(port=0, tokens={"tok": {"boards:read", "boards:write"}}, boards=["b1"]))
    handle.url   # http://127.0.0.1:PORT: Miro API at /v2/..., board page at /boards/{id}
    handle.items("b1"); handle.set_faults(latency_ms=200); handle.stop()
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import cast

from flask import Flask, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException
from werkzeug.serving import WSGIRequestHandler, make_server

from shared.log import get_logger

from . import admin, api, oauth, resources
from .config import ALL_SCOPES, REQUEST_LOG_SIZE, SandboxConfig
from .control import SandboxControl
from .credits import CreditBuckets
from .faults import Faults
from .store import Store
from .traffic import API_PREFIX, FrontDoor, Traffic

log = get_logger("sandbox")

MAX_REQUEST_BYTES = 64 * 1024 * 1024
"""Bodies over this are refused before parsing (413); the 6 MB resource rule is checked after."""


@dataclass
class Sandbox:
    """Everything one sandbox knows and counts; shared by its request threads."""

    config: SandboxConfig
    store: Store
    credits: CreditBuckets
    faults: Faults
    traffic: Traffic
    secret: bytes = field(default_factory=lambda: os.urandom(32), repr=False)
    oauth: oauth.OAuthAuthority | None = None

    @classmethod
    def from_config(cls, config: SandboxConfig) -> Sandbox:
        return cls(config=config, store=Store(config.boards, config.state_path),
                   credits=CreditBuckets(config.credits_per_minute, window_seconds=config.credit_window_seconds), faults=Faults(config.latency_ms),
                   traffic=Traffic(REQUEST_LOG_SIZE),
                   oauth=oauth.OAuthAuthority(*config.oauth_client, access_ttl=config.access_token_ttl) if config.oauth_client else None)


def create_app(config: SandboxConfig | None = None) -> Flask:
    config = config or SandboxConfig()
    sandbox = Sandbox.from_config(config)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    cast(DefaultJSONProvider, app.json).sort_keys = False  # keep Miro's field order (id, type, data, ...) for people reading answers
    app.extensions["sandbox"] = sandbox
    app.register_blueprint(api.bp)
    app.register_blueprint(resources.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(oauth.bp)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if request.path.startswith(API_PREFIX):
            return api.http_error_as_miro(exc)
        return exc

    app.wsgi_app = FrontDoor(app.wsgi_app, sandbox.traffic, sandbox.faults)  # type: ignore[method-assign]
    return app


class _QuietHandler(WSGIRequestHandler):
    """No access line per request: the request log is at /_sandbox/requests, events go through shared.log."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class SandboxHandle(SandboxControl):
    """A sandbox serving in a background thread of this process."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.app = create_app(config)
        self._server = make_server(config.host, config.port, self.app, threaded=True, request_handler=_QuietHandler)
        self.host = config.host
        self.port = self._server.server_port
        super().__init__(f"http://{self.host}:{self.port}")
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"sandbox:{self.port}", daemon=True)

    @property
    def token(self) -> str:
        """A token with every scope (the first configured one if none has them all)."""
        full = [t for t, scopes in self.config.tokens.items() if set(scopes) >= ALL_SCOPES]
        return (full or list(self.config.tokens))[0]

    @property
    def oauth(self):
        """The OAuth side (``oauth.OAuthAuthority``), or None when the sandbox runs without it."""
        return self.app.extensions["sandbox"].oauth

    @property
    def board_id(self) -> str:
        return self.config.boards[0]

    def start(self) -> SandboxHandle:
        self._thread.start()
        log.info("sandbox.started", url=self.url, boards=",".join(self.config.boards))
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
        self.close()
        log.info("sandbox.stopped", url=self.url)


def start_sandbox(config: SandboxConfig | None = None) -> SandboxHandle:
    return SandboxHandle(config or SandboxConfig()).start()
