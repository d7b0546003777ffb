"""What a sandbox is started with, and the Miro numbers it imitates."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.settings import MIRO_MAX_UPLOAD_BYTES

DEFAULT_PORT = 8765
DEFAULT_HOST = "127.0.0.1"
DEFAULT_TOKEN = "sandbox-token"
DEFAULT_BOARD = "sandbox-board="
"""Ends with ``=`` like real board ids (``uXjVOD6LSME=``), so clients must percent-encode it."""

READ = "boards:read"
WRITE = "boards:write"
ALL_SCOPES = frozenset({READ, WRITE})

CHROME_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/156.0.0.0 Safari/537.36"
)
"""What the sandbox's URL fetcher sends by default. Miro's real fetcher User-Agent is unknown; a
desktop browser is the case that trips ngrok's free-plan warning page, so it is the default."""

CREDITS_PER_MINUTE = 100_000
"""Miro's REST budget per user and app (credits per minute)."""

LEVEL_1, LEVEL_2, LEVEL_3 = 50, 100, 500
"""Credits charged per call of each Miro rate-limit level."""

MAX_RESOURCE_BYTES = MIRO_MAX_UPLOAD_BYTES
FETCH_TIMEOUT = 10.0
"""Seconds the URL fetcher waits for the image host (connect and each read)."""
FETCH_MAX_BYTES = 32 * 1024 * 1024
"""The fetcher stops reading a URL after this many bytes (Miro's real cap is unknown)."""

ACCESS_TOKEN_TTL = 3599.0
"""Seconds an OAuth access token lives (Miro's ``expires_in``)."""

REQUEST_LOG_SIZE = 10_000
"""How many API requests `/_sandbox/requests` keeps (oldest dropped first)."""


@dataclass
class SandboxConfig:
    """Everything a sandbox needs; the defaults give a ready board with no setup."""

    port: int = 0
    host: str = DEFAULT_HOST
    tokens: dict[str, set[str]] = field(default_factory=lambda: {DEFAULT_TOKEN: set(ALL_SCOPES)})
    boards: list[str] = field(default_factory=lambda: [DEFAULT_BOARD])
    fetch_user_agent: str = CHROME_USER_AGENT
    fetch_timeout: float = FETCH_TIMEOUT
    credits_per_minute: int = CREDITS_PER_MINUTE
    credit_window_seconds: float = 60.0
    """Miro's window is a minute. A drill shortens it (``credits_per_minute`` is then per window) to
    press against the budget in seconds instead of minutes."""
    latency_ms: int = 0
    state_path: str | None = None
    max_resource_bytes: int = MAX_RESOURCE_BYTES
    oauth_client: tuple[str, str] | None = None
    """(client id, secret): turns on Miro's OAuth side, expiring and rotating tokens (``oauth.py``)."""
    access_token_ttl: float = ACCESS_TOKEN_TTL

    def __post_init__(self) -> None:
        if not self.tokens:
            raise ValueError("tokens: at least one token is needed")
        if not self.boards:
            raise ValueError("boards: at least one board is needed")
        for scopes in self.tokens.values():
            unknown = set(scopes) - ALL_SCOPES
            if unknown:
                raise ValueError(f"tokens: unknown scope {sorted(unknown)} for a token; use {sorted(ALL_SCOPES)}")
        if self.credit_window_seconds <= 0:
            raise ValueError("credit_window_seconds: must be positive")
        if self.access_token_ttl <= 0:
            raise ValueError("access_token_ttl: must be positive")
        if self.credits_per_minute < 0:
            raise ValueError("credits_per_minute: negative numbers are not allowed")
