"""The front door of the Miro API: request log, injected latency and dropped connections.

A WSGI middleware, so it runs before Flask reads the body: the arrival time it logs (``time.time()``)
is when the request line and headers were in, before any injected latency, which is what the
latency benchmark measures against. Only ``/v2/...`` (the API) is logged and faulted; the board
page and ``/_sandbox`` admin endpoints are never slowed or dropped.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from typing import Any

from .faults import Faults

API_PREFIX = "/v2/"


def token_hint(authorization: str | None) -> str | None:
    """Enough of a token to tell tokens apart in the log, never the token: ``…oken``."""
    if not authorization:
        return None
    token = authorization.split(None, 1)[-1]
    return "…" + token[-4:] if len(token) > 8 else "…"


class Traffic:
    """Recent API requests and counters (``/_sandbox/requests`` and ``/_sandbox/stats``)."""

    def __init__(self, size: int) -> None:
        self._lock = threading.Lock()
        self._log: deque[dict[str, Any]] = deque(maxlen=size)
        self._status_counts: Counter[str] = Counter()
        self._counters: Counter[str] = Counter()

    def arrive(self, method: str, path: str, query: str, hint: str | None) -> dict[str, Any]:
        entry = {"at": time.time(), "method": method, "path": path, "query": query, "status": None, "token_hint": hint}
        with self._lock:
            self._log.append(entry)
        return entry

    def finish(self, entry: dict[str, Any], status: int) -> None:
        with self._lock:
            entry["status"] = status
            entry["done_at"] = time.time()
            self._status_counts[str(status)] += 1

    def count(self, name: str) -> None:
        with self._lock:
            self._counters[name] += 1

    def requests(self, since: float | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self._log if since is None or e["at"] >= since]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"status_counts": dict(self._status_counts), "creates": self._counters["creates"],
                    **{k: v for k, v in self._counters.items() if k != "creates"}}

    def reset(self) -> None:
        with self._lock:
            self._log.clear()
            self._status_counts.clear()
            self._counters.clear()


class FrontDoor:
    """WSGI middleware around the Flask app: log arrival, then drop or delay as the faults say."""

    def __init__(self, app: Callable, traffic: Traffic, faults: Faults) -> None:
        self.app = app
        self.traffic = traffic
        self.faults = faults

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if not path.startswith(API_PREFIX):
            return self.app(environ, start_response)
        entry = self.traffic.arrive(environ["REQUEST_METHOD"], path, environ.get("QUERY_STRING", ""),
                                    token_hint(environ.get("HTTP_AUTHORIZATION")))
        if self.faults.should_drop():
            self.traffic.finish(entry, 0)
            self.traffic.count("dropped")
            self._drop(environ)
        delay = self.faults.latency_seconds()
        if delay:
            time.sleep(delay)

        def logging_start_response(status: str, headers: list, exc_info: Any = None) -> Callable:
            self.traffic.finish(entry, int(status.split(None, 1)[0]))
            return start_response(status, headers, exc_info)

        return self.app(environ, logging_start_response)

    @staticmethod
    def _drop(environ: dict[str, Any]) -> None:
        """Close the connection without a byte of answer, as a failing load balancer does."""
        sock = environ.get("werkzeug.socket")
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        # Werkzeug's server treats ConnectionError as "client went away" and writes nothing.
        raise ConnectionAbortedError("connection dropped by sandbox fault injection")
