"""The admin endpoints (``/_sandbox/...``) from Python, for tests, benchmarks and ``miro-sync up``.

Works against any running sandbox, in this process or another: ``SandboxControl("http://127.0.0.1:8765")``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests


def board_page_url(base: str, board_id: str) -> str:
    """The board page's address, as every banner prints it: "=" (in every Miro board id) is kept readable,
    as a path allows; anything else unusual is escaped."""
    return f"{base.rstrip('/')}/boards/{quote(board_id, safe='=')}"


class SandboxControl:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._http = requests.Session()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self._http.request(method, self.url + path, timeout=self.timeout, **kwargs)
        resp.raise_for_status()
        return resp.json()

    def board_page(self, board_id: str) -> str:
        return board_page_url(self.url, board_id)

    def items(self, board_id: str) -> list[dict[str, Any]]:
        """Every item of a board, with ``bytes_sha256``, ``bytes_len``, ``fetched_user_agent``, ``board_position``..."""
        return self._call("GET", f"/_sandbox/boards/{quote(board_id, safe='')}/items")["items"]

    def blob(self, item: dict[str, Any]) -> bytes:
        """The stored bytes of an image item from :meth:`items`."""
        resp = self._http.get(self.url + item["blob_url"], timeout=self.timeout)
        resp.raise_for_status()
        return resp.content

    def requests(self, since: float | None = None) -> list[dict[str, Any]]:
        """API requests in arrival order: ``{method, path, query, status, at, done_at, token_hint}``."""
        return self._call("GET", "/_sandbox/requests", params={"since": since} if since is not None else None)["requests"]

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/_sandbox/stats")

    def faults(self) -> dict[str, Any]:
        return self._call("GET", "/_sandbox/faults")

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """``latency_ms``, ``error_status``, ``error_for_seconds``, ``error_every``, ``drop_connections_for_seconds``,
        ``credits_per_minute``; see ``services/sandbox/faults.py``."""
        return self._call("POST", "/_sandbox/faults", json=faults)

    def clear_faults(self) -> dict[str, Any]:
        return self._call("DELETE", "/_sandbox/faults")

    def oauth_initial(self) -> dict[str, str]:
        """The pair the sandbox minted at start: ``{"access_token", "refresh_token"}``."""
        return self._call("GET", "/_sandbox/oauth/initial")

    def revoke_oauth(self) -> int:
        """Kill every live OAuth pair, as a person removing the app does; returns how many."""
        return self._call("POST", "/_sandbox/oauth/revoke")["revoked"]

    def stall_oauth(self, seconds: float) -> None:
        """Hold token requests for ``seconds``; a request whose client hangs up meanwhile is dropped unread."""
        self._call("POST", "/_sandbox/oauth/stall", json={"seconds": seconds})

    def reset(self) -> None:
        self._call("POST", "/_sandbox/reset")

    def close(self) -> None:
        self._http.close()
