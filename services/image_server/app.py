"""The image server: watch-folder images by signed, expiring URL, for Miro to fetch through the tunnel.

``GET /i/<token>?exp=&sig=`` (paths made by :mod:`shared.signing`) answers the image with the type
read from its bytes. 403 for a missing, bad or expired signature; 404 for everything else (a name
out of the folder, hidden, not an image, missing). No listing, no stack trace, one log line per
request, never the signature. After the last byte of a file went out, ``keys.served(sig)`` is
set, so the worker knows Miro fetched the URL (and not ngrok's warning page in its place).

``GET /healthz``: 200 when the folder is readable and Redis answers, else 503.

Without ``URL_SIGNING_SECRET`` the server still starts, says so in one line, and refuses every image
(403): only the url route needs it, and the compose stack starts it whatever the route, so a file-route
set-up (no secret) must not leave it restarting in a loop. No secret means no valid signature: it
serves nothing.

Run by gunicorn (``miro-sync serve``) or ``gunicorn 'services.image_server.app:create_app()'``.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable, Iterator
from typing import BinaryIO

import redis as redis_lib
from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from shared import keys, signing
from shared.log import get_logger, register_secrets
from shared.settings import Need, Settings, load_settings
from shared.tunnel import PROBE_NAME, PROBE_PNG

from .files import NotServable, open_image

log = get_logger("image_server")

CHUNK = 256 * 1024
SERVED_TTL = 3600
"""Seconds a "served in full" record stays in Redis."""
NO_SECRET = ("URL_SIGNING_SECRET is not set: every image URL is refused (403). Only the url upload route needs this "
             "server; to use it, set the same URL_SIGNING_SECRET here and in the workers (openssl rand -hex 32)")


def create_app(settings: Settings | None = None, redis_client: redis_lib.Redis | None = None) -> Flask:
    settings = settings or load_settings(needs={Need.FOLDER})
    register_secrets(settings.secrets)
    secret = settings.url_signing_secret
    if secret is None:
        log.warning("image_server.no_secret", detail=NO_SECRET)
    folder = settings.watch_folder
    redis = redis_client or redis_lib.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)

    app = Flask(__name__)
    app.config["SETTINGS"] = settings
    app.extensions["redis"] = redis

    def refuse(status: int, reason: str, file: str | None = None):
        log.info("image.refused", status=status, reason=reason, file=file, path=request.path,
                 user_agent=request.headers.get("User-Agent"))
        return jsonify({"error": "forbidden" if status == 403 else "not found"}), status

    @app.get("/i/<token>")
    def image(token: str):
        sig = request.args.get("sig", "")
        if secret is None:
            return refuse(403, "no URL_SIGNING_SECRET")
        try:
            relpath = signing.verify(token, request.args.get("exp"), sig, secret)
        except signing.SignatureError as exc:
            return refuse(403, exc.reason)
        f: BinaryIO
        try:
            if relpath == PROBE_NAME:
                f, size, content_type = io.BytesIO(PROBE_PNG), len(PROBE_PNG), "image/png"
            else:
                f, size, content_type = open_image(folder, relpath)
        except NotServable as exc:
            return refuse(404, exc.reason, relpath)
        user_agent = request.headers.get("User-Agent")

        def served() -> None:
            record = {"path": relpath, "bytes": size, "user_agent": user_agent, "at": time.time()}
            try:
                redis.set(keys.served(sig.lower()), json.dumps(record), ex=SERVED_TTL)
            except redis_lib.RedisError as exc:
                log.warning("image.served_unrecorded", file=relpath, error=type(exc).__name__)
            log.info("image.served", file=relpath, status=200, bytes=size, user_agent=user_agent)

        def cut_short(sent: int) -> None:
            log.info("image.incomplete", file=relpath, status=200, bytes=sent, expected=size, user_agent=user_agent)

        return Response(
            send_file(f, size, served, cut_short), status=200, direct_passthrough=True,
            headers={"Content-Type": content_type, "Content-Length": str(size), "Cache-Control": "private, no-store",
                     "X-Content-Type-Options": "nosniff"},
        )

    @app.get("/healthz")
    def healthz():
        folder_ok = folder.is_dir() and os.access(folder, os.R_OK | os.X_OK)
        try:
            redis_ok = bool(redis.ping())
        except redis_lib.RedisError:
            redis_ok = False
        ok = folder_ok and redis_ok
        return jsonify({"status": "ok" if ok else "unhealthy", "folder": folder_ok, "redis": redis_ok,
                        "signing": secret is not None}), 200 if ok else 503

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        # Unknown paths, listings, wrong methods: the same short JSON, never Werkzeug's page.
        status = exc.code or 500
        log.info("http.refused", status=status, path=request.path, user_agent=request.headers.get("User-Agent"))
        return jsonify({"error": "not found" if status == 404 else exc.name.lower()}), status

    @app.errorhandler(Exception)
    def crash(exc: Exception):
        log.error("http.error", path=request.path, error=type(exc).__name__, exc_info=exc)
        return jsonify({"error": "internal error"}), 500

    return app


def send_file(f: BinaryIO, size: int, on_complete: Callable[[], None], on_short: Callable[[int], None]) -> Iterator[bytes]:
    """Yield the file's bytes; call ``on_complete`` only after the server wrote the last one.

    The WSGI server asks for the next chunk only once it has written the previous one, so code
    after the last ``yield`` runs when every byte has gone out. If the client goes away, the server
    closes the generator at a ``yield`` and nothing after it runs.
    """
    sent = 0
    try:
        while sent < size:
            chunk = f.read(min(CHUNK, size - sent))
            if not chunk:
                break  # the file shrank while being sent
            sent += len(chunk)
            yield chunk
    finally:
        f.close()
    if sent == size:
        on_complete()
    else:
        on_short(sent)
