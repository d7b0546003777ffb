"""Helpers shared by the image-server and tunnel tests: settings, images, a server in a thread."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image
from werkzeug.serving import make_server

from shared.settings import Need, Settings, load_settings

SECRET = "test-signing-secret-0123456789"


def make_settings(folder: Path, redis_url: str, **extra: str) -> Settings:
    environ = {"WATCH_FOLDER": str(folder), "URL_SIGNING_SECRET": SECRET, "REDIS_URL": redis_url,
               "MIRO_SYNC_ENV_FILE": "", **extra}
    return load_settings(needs={Need.FOLDER}, environ=environ)


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (32, 24), color=(200, 30, 90)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, fmt)
    return buf.getvalue()


@contextmanager
def serve_in_thread(app) -> Iterator[str]:
    """Run a WSGI app on 127.0.0.1 (threaded werkzeug server); yield its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
