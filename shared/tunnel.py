"""The public URL of the image server and whether Miro could fetch images through it.

- :func:`discover_public_url`: ``PUBLIC_BASE_URL`` when set; else the ngrok agent API,
  ``/api/endpoints`` (agent >= 3.30.0, field ``url``) falling back to the deprecated ``/api/tunnels``
  (field ``public_url``); an https URL first (https://ngrok.com/docs/agent/api).
- :func:`probe`: fetch an image through the public URL the way a browser would (Chrome User-Agent,
  no ``ngrok-skip-browser-warning`` header). Miro does not document its fetcher's User-Agent,
  so this is the worst case: on ngrok's free plan the interstitial (ERR_NGROK_6024) answers instead
  of the image, with a 200 and HTML. Only a 2xx, ``image/*``, no ``ngrok-error-code`` and the exact
  bytes count as usable.
- The probe image is built in (:data:`PROBE_PNG`) and served by the image server at the signed path
  of :data:`PROBE_NAME`, so the probe goes through the same signature check, Flask route and tunnel as
  Miro's fetch, without writing into the watch folder. The name is hidden, and the image server
  never serves hidden files from the folder, so it cannot shadow a user's file.
- :func:`fresh_probe`: discover and probe now, no cache (the doctor's check).
- :class:`TunnelState`: the probe result, cached in Redis for ``PROBE_INTERVAL`` seconds and shared
  by every worker; one log line per change of state.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, cast

import redis
import requests

from shared import keys
from shared.log import EventLogger
from shared.settings import Settings
from shared.signing import sign_path

CHROME_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
PROBE_NAME = ".miro-sync-probe.png"
"""Relative path the probe URL is signed for; answered from memory by the image server."""
PROBE_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAIAAACQkWg2AAAAL0lEQVR42mPU0FjAAAPXUxLgbM052MWZGEgEtNfA+L+HgaC7kcUH"
    "ox9G42FQ+AEA+okXE9nmnUMAAAAASUVORK5CYII="
)
"""A 16x16 checkerboard PNG (104 bytes). A constant, so every process expects the same bytes."""
PROBE_URL_TTL = 120
"""Seconds the signed probe URL stays valid."""
AGENT_TIMEOUT = 3.0
PROBE_TIMEOUT = 10.0
WARNED_TTL = 86400
"""Seconds the last logged tunnel state is remembered; after that its line is logged again."""
FAILED_PROBE_TTL = 15
"""Seconds a failed probe is trusted: a tunnel that comes back is used again within this time."""

QUOTA_CODES = {"ERR_NGROK_725": "bandwidth", "ERR_NGROK_727": "HTTP requests", "ERR_NGROK_734": "requests per minute"}
_NGROK_CODE = re.compile(rb"ERR_NGROK_\d+")
_FALLBACK = "or set UPLOAD_MODE=file to upload the bytes to Miro directly (no tunnel needed)"


class TunnelError(RuntimeError):
    """The ngrok agent API could not be reached or answered nonsense."""


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    reason: str
    """``ok`` or a short code: warning-page, offline, quota, http-<status>, not-image, bytes-differ,
    unreachable, no-endpoint, not-configured."""
    detail: str
    """One sentence for a human: what is wrong and how to fix it."""
    public_url: str | None = None

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "at": time.time()})

    @classmethod
    def from_json(cls, raw: str | bytes) -> ProbeResult:
        data = json.loads(raw)
        return cls(ok=bool(data["ok"]), reason=data["reason"], detail=data["detail"], public_url=data.get("public_url"))


# -- discovery --------------------------------------------------------------------------------


def agent_api_base(url: str) -> str:
    """``http://ngrok:4040`` from any of ``…:4040``, ``…:4040/api``, ``…:4040/api/tunnels``."""
    return re.sub(r"/api(/.*)?$", "", url.rstrip("/"))


def pick_url(urls: list[str]) -> str | None:
    """An https URL first (the agent may list an http twin), else the first one."""
    urls = [u.rstrip("/") for u in urls if u]
    return next((u for u in urls if u.startswith("https://")), urls[0] if urls else None)


def discover_public_url(settings: Settings, session: requests.Session | None = None) -> str | None:
    """The public base URL, or None when the agent runs but lists no endpoint (yet).

    Raises :class:`TunnelError` when the agent API cannot be reached.
    """
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/")
    if not settings.ngrok_api_url:
        return None
    base = agent_api_base(settings.ngrok_api_url)
    http = session or requests.Session()
    data = _get_json(http, f"{base}/api/endpoints", allow_404=True)
    if data is not None and isinstance(data.get("endpoints"), list):
        return pick_url([e.get("url", "") for e in data["endpoints"] if isinstance(e, dict)])
    # Agents older than 3.30.0 have no /api/endpoints (404).
    data = _get_json(http, f"{base}/api/tunnels")
    if data is None or not isinstance(data.get("tunnels"), list):
        raise TunnelError(f"the ngrok agent API at {base} answered neither an endpoint nor a tunnel list")
    return pick_url([t.get("public_url", "") for t in data["tunnels"] if isinstance(t, dict)])


def _get_json(http: requests.Session, url: str, allow_404: bool = False) -> dict[str, Any] | None:
    try:
        response = http.get(url, timeout=AGENT_TIMEOUT, headers={"Accept": "application/json"})
    except requests.RequestException as exc:
        raise TunnelError(
            f"cannot reach the ngrok agent API at {url} ({type(exc).__name__}); is the ngrok service running, and is NGROK_API_URL right?"
        ) from exc
    if response.status_code == 404 and allow_404:
        return None
    if response.status_code != 200:
        raise TunnelError(f"the ngrok agent API at {url} answered HTTP {response.status_code}")
    try:
        data = response.json()
    except ValueError:
        raise TunnelError(f"the ngrok agent API at {url} did not answer JSON") from None
    return data if isinstance(data, dict) else None


# -- probe ------------------------------------------------------------------------------------


def probe_path(secret: str, now: float | None = None) -> str:
    """The signed path and query of the built-in probe image."""
    return sign_path(PROBE_NAME, secret, PROBE_URL_TTL, now=now)


def probe(public_url: str, image_path_and_query: str, expected: bytes = PROBE_PNG,
          session: requests.Session | None = None) -> ProbeResult:
    """GET ``public_url + image_path_and_query`` as a browser would and judge the answer."""
    url = public_url.rstrip("/") + image_path_and_query
    http = session or requests.Session()
    try:
        with http.get(url, headers={"User-Agent": CHROME_USER_AGENT, "Accept": "image/avif,image/webp,image/png,image/*,*/*;q=0.8"},
                      timeout=PROBE_TIMEOUT, stream=True) as response:
            body = response.raw.read(max(len(expected), 64 * 1024) + 1, decode_content=True)
            status, headers = response.status_code, response.headers
    except requests.RequestException as exc:
        return ProbeResult(False, "unreachable", f"cannot connect to the public URL {public_url} ({type(exc).__name__}); "
                           f"is the tunnel running and pointing at the image server? {_FALLBACK}.", public_url)
    reason, detail = judge(status, headers, body, expected)
    return ProbeResult(reason == "ok", reason, detail.replace("{url}", public_url), public_url)


def judge(status: int, headers: Mapping[str, str], body: bytes, expected: bytes) -> tuple[str, str]:
    """(reason, detail) for one probe answer. Pure: the detail may hold ``{url}``."""
    content_type = headers.get("Content-Type", "").split(";")[0].strip().lower()
    code = headers.get("ngrok-error-code")
    if not code and 200 <= status < 300 and content_type.startswith("image/") and body == expected:
        return "ok", "the tunnel at {url} serves images to browser-like clients"
    if not code:
        # ngrok does not promise the header on every page it answers itself: look in the body too.
        found = _NGROK_CODE.search(body)
        code = found.group().decode() if found else None
    if code == "ERR_NGROK_6024":
        return "warning-page", (
            "the tunnel at {url} answers browser-like requests with ngrok's free-plan warning page (ERR_NGROK_6024) "
            "instead of the image, and Miro's fetcher may look like a browser; use a paid ngrok plan or a tunnel "
            f"without an interstitial (Cloudflare Tunnel, Tailscale Funnel), {_FALLBACK}"
        )
    if code == "ERR_NGROK_3200":
        return "offline", (
            "the public URL {url} is offline (ERR_NGROK_3200): start the ngrok agent and check its log "
            f"(authtoken, domain), or fix PUBLIC_BASE_URL, {_FALLBACK}"
        )
    if code in QUOTA_CODES:
        return "quota", (
            f"the ngrok account is over its {QUOTA_CODES[code]} limit ({code}); wait for the limit to reset, "
            f"use a paid plan or another tunnel, {_FALLBACK}"
        )
    if not 200 <= status < 300:
        hint = {403: "the image server refused the signature: do the image server and the workers share the same URL_SIGNING_SECRET?",
                404: "nothing at that path: does the tunnel point at the image server (miro-sync serve)?",
                502: "the tunnel cannot reach the image server: is it running, and is the tunnel's upstream right?"}
        return f"http-{status}", (
            "the probe image at {url} answered HTTP " + str(status) + (f" ({code})" if code else "") + "; "
            + hint.get(status, "check the image server and the tunnel") + f"; {_FALLBACK}"
        )
    if not content_type.startswith("image/"):
        return "not-image", (
            f"the probe image at {{url}} came back as {content_type or 'no content type'}, not an image; "
            f"something in front of the image server answers instead of it; {_FALLBACK}"
        )
    return "bytes-differ", (
        f"the probe image at {{url}} came back altered ({len(body)} bytes, expected {len(expected)}); "
        f"something between Miro and the image server rewrites responses; {_FALLBACK}"
    )


# -- shared state -----------------------------------------------------------------------------


def fresh_probe(settings: Settings, session: requests.Session | None = None) -> ProbeResult:
    """Discover the public URL and probe it now (no cache, no Redis)."""
    if not settings.tunnel_configured:
        return ProbeResult(False, "not-configured", f"no tunnel is configured: set NGROK_API_URL or PUBLIC_BASE_URL, {_FALLBACK}")
    if not settings.url_signing_secret:
        return ProbeResult(False, "not-configured", "URL_SIGNING_SECRET is not set; image URLs cannot be signed")
    try:
        public_url = discover_public_url(settings, session)
    except TunnelError as exc:
        return ProbeResult(False, "unreachable", f"{exc}; {_FALLBACK}")
    if public_url is None:
        return ProbeResult(False, "no-endpoint", (
            f"the ngrok agent at {agent_api_base(settings.ngrok_api_url or '')} lists no endpoint yet: is it still "
            f"connecting? check its log (authtoken, domain), {_FALLBACK}"
        ))
    return probe(public_url, probe_path(settings.url_signing_secret), PROBE_PNG, session)


class TunnelState:
    """The tunnel's usability as every worker sees it: one cached probe in Redis."""

    def __init__(self, connection: redis.Redis, settings: Settings, session: requests.Session | None = None) -> None:
        self.redis = connection
        self.settings = settings
        self.session = session

    def usable(self, force: bool = False) -> ProbeResult:
        """The last probe if younger than ``PROBE_INTERVAL``, else a new one (stored for all workers)."""
        if not force:
            raw = cast("bytes | None", self.redis.get(keys.TUNNEL_PROBE))
            if raw:
                return ProbeResult.from_json(raw)
        result = self.check()
        ttl = self.settings.probe_interval if result.ok else min(self.settings.probe_interval, FAILED_PROBE_TTL)
        self.redis.set(keys.TUNNEL_PROBE, result.to_json(), ex=ttl)
        return result

    def check(self) -> ProbeResult:
        """Discover the public URL and probe it now (no cache)."""
        return fresh_probe(self.settings, self.session)

    def invalidate(self) -> None:
        """Forget the cached probe (after a failure on the url route) so the next call probes again."""
        self.redis.delete(keys.TUNNEL_PROBE)

    def warn_once(self, result: ProbeResult, log: EventLogger) -> bool:
        """Log ``result`` if the tunnel's state changed since the last line any worker logged."""
        state = "ok" if result.ok else result.reason
        previous = cast("bytes | None", self.redis.set(keys.TUNNEL_WARNED, state, ex=WARNED_TTL, get=True))
        if previous is not None and previous.decode() == state:
            return False
        if result.ok:
            log.info("tunnel.usable", public_url=result.public_url)
        else:
            log.warning("tunnel.unusable", reason=result.reason, public_url=result.public_url, detail=result.detail)
        return True
