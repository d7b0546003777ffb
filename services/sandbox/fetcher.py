"""Miro's URL importer, imitated: download ``data.url`` from the sandbox process, keep the bytes.

It fetches as a browser would (browser User-Agent and Accept, redirects followed, a timeout), and
keeps exactly the body it received, whatever it is: an HTML warning page or an error page is stored
as the "image" and shows broken on the board, as it does on a real board.
"""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass

import requests

from .config import FETCH_MAX_BYTES

BROWSER_ACCEPT = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"


@dataclass(frozen=True)
class FetchResult:
    content: bytes
    status: int | None
    content_type: str | None
    user_agent: str | None  # None for data: URLs (nothing was fetched)
    error: str | None = None  # transport failure, when there was no answer at all


def fetch(url: str, user_agent: str, timeout: float, max_bytes: int = FETCH_MAX_BYTES) -> FetchResult:
    if url.startswith("data:"):
        return _data_url(url)
    headers = {"User-Agent": user_agent, "Accept": BROWSER_ACCEPT, "Accept-Language": "en-US,en;q=0.9"}
    try:
        with requests.get(url, headers=headers, timeout=timeout, stream=True, allow_redirects=True) as resp:
            chunks, size = [], 0
            for chunk in resp.iter_content(64 * 1024):
                chunks.append(chunk)
                size += len(chunk)
                if size >= max_bytes:
                    break
            return FetchResult(b"".join(chunks)[:max_bytes], resp.status_code, resp.headers.get("Content-Type"), user_agent)
    except requests.RequestException as exc:
        return FetchResult(b"", None, None, user_agent, error=f"{type(exc).__name__}: {exc}")


def _data_url(url: str) -> FetchResult:
    """``data:[<type>][;base64],<data>`` decoded by the standard library's own data: handler."""
    try:
        with urllib.request.urlopen(url) as resp:  # noqa: S310 - only data: URLs reach here
            return FetchResult(resp.read(), None, resp.headers.get("Content-Type"), None)
    except (ValueError, OSError) as exc:
        return FetchResult(b"", None, None, None, error=f"{type(exc).__name__}: {exc}")
