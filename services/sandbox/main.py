"""`miro-sync sandbox`: the local Miro API stand-in (and, with --tunnel-*, the ngrok stand-in).

Runs until SIGTERM or SIGINT, then exits 0. With no --token/--board it serves the token
``sandbox-token`` and the board ``sandbox-board=``, and prints them, so it works with no setup.
"""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any, cast

from shared import log as shared_log

from . import tunnel
from .config import (
    ACCESS_TOKEN_TTL,
    ALL_SCOPES,
    CHROME_USER_AGENT,
    CREDITS_PER_MINUTE,
    DEFAULT_BOARD,
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_TOKEN,
    FETCH_TIMEOUT,
    SandboxConfig,
)

SCOPE_SHORTHANDS = {"read": "boards:read", "write": "boards:write"}


def parse_token(value: str) -> tuple[str, set[str]]:
    """``TOKEN`` (read and write) or ``TOKEN:SCOPE[,SCOPE]``, where SCOPE is boards:read, boards:write, read or write."""
    token, _, scopes_text = value.partition(":")
    if not token:
        raise argparse.ArgumentTypeError(f"{value!r}: the token is empty")
    if not scopes_text:
        return token, set(ALL_SCOPES)
    scopes = {SCOPE_SHORTHANDS.get(s.strip(), s.strip()) for s in scopes_text.split(",") if s.strip()}
    unknown = scopes - ALL_SCOPES
    if unknown or not scopes:
        raise argparse.ArgumentTypeError(f"{value!r}: scopes must be among {sorted(ALL_SCOPES)} (or read, write)")
    return token, scopes


def parse_client(value: str) -> tuple[str, str]:
    """``CLIENT_ID:CLIENT_SECRET`` of the one OAuth app the sandbox knows."""
    client_id, _, secret = value.partition(":")
    if not client_id or not secret:
        raise argparse.ArgumentTypeError(f"expected CLIENT_ID:CLIENT_SECRET, got {value.partition(':')[0]!r}:…")
    return client_id, secret


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port of the Miro API (/v2/...) and the board pages (default {DEFAULT_PORT})")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    parser.add_argument("--token", action="append", type=parse_token, metavar="TOKEN[:SCOPES]",
                        help=f"an access token the API accepts (repeatable); TOKEN:boards:read makes a read-only "
                             f"token (writes get 403). Default: {DEFAULT_TOKEN}")
    parser.add_argument("--board", action="append", metavar="BOARD_ID",
                        help=f"a board that exists (repeatable). Default: {DEFAULT_BOARD}")
    parser.add_argument("--fetch-user-agent", default=CHROME_USER_AGENT,
                        help="User-Agent the sandbox sends when it downloads data.url (default: desktop Chrome)")
    parser.add_argument("--fetch-timeout", type=float, default=FETCH_TIMEOUT,
                        help=f"seconds to wait for an image URL (default {FETCH_TIMEOUT:g})")
    parser.add_argument("--credits-per-minute", type=int, default=CREDITS_PER_MINUTE,
                        help=f"rate-limit budget per token and minute (default {CREDITS_PER_MINUTE})")
    parser.add_argument("--latency-ms", type=int, default=0, help="delay every API request by this much (default 0)")
    parser.add_argument("--oauth-client", type=parse_client, metavar="ID:SECRET",
                        help="turn on Miro's OAuth side for this app: /oauth/authorize, POST /v1/oauth/token, "
                             "expiring access tokens and rotating refresh tokens; a first pair is minted and printed")
    parser.add_argument("--access-token-ttl", type=float, default=ACCESS_TOKEN_TTL, metavar="SECONDS",
                        help=f"lifetime of an OAuth access token (default {ACCESS_TOKEN_TTL:g}, as Miro)")
    parser.add_argument("--state", metavar="FILE", help="keep the boards in FILE (and FILE.blobs/) across restarts")
    tunnel.add_arguments(parser)  # --tunnel-port, --tunnel-api-port, --tunnel-upstream, --tunnel-mode, ...


def start_tunnel_if_asked(args: argparse.Namespace) -> tunnel.TunnelHandle | None:
    """The running ngrok stand-in, or None when --tunnel-port was not given."""
    tunnel_config = tunnel.config_from_args(args, host=args.host)
    if tunnel_config is None:
        return None
    handle = tunnel.start_tunnel(tunnel_config)
    print(tunnel.describe(handle), flush=True)
    return handle


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    tokens = dict(args.token) if args.token else {DEFAULT_TOKEN: set(ALL_SCOPES)}
    return SandboxConfig(port=args.port, host=args.host, tokens=tokens, boards=args.board or [DEFAULT_BOARD],
                         fetch_user_agent=args.fetch_user_agent, fetch_timeout=args.fetch_timeout,
                         credits_per_minute=args.credits_per_minute, latency_ms=args.latency_ms, state_path=args.state,
                         oauth_client=args.oauth_client, access_token_ttl=args.access_token_ttl)


def describe(handle: Any, config: SandboxConfig) -> str:
    lines = [f"Miro API sandbox: {handle.url}/v2   (set MIRO_API_URL={handle.url})"]
    for token, scopes in config.tokens.items():
        lines.append(f"  token: {token}   ({', '.join(sorted(scopes))})")
    for board in config.boards:
        lines.append(f"  board: {board}   page: {handle.board_page(board)}")
    if handle.oauth is not None:
        first = handle.oauth.initial
        client_id = cast("tuple[str, str]", config.oauth_client)[0]  # the handle has OAuth only when the config has a client
        lines.append(f"  oauth: client {client_id}, authorize {handle.url}/oauth/authorize, "
                     f"tokens {handle.url}/v1/oauth/token, access tokens live {config.access_token_ttl:g} s")
        lines.append(f"  first pair (also at {handle.url}/_sandbox/oauth/initial):")
        lines.append(f"    MIRO_ACCESS_TOKEN={first['access_token']}")
        lines.append(f"    MIRO_REFRESH_TOKEN={first['refresh_token']}")
    lines.append(f"  admin: {handle.url}/_sandbox/requests, /_sandbox/stats, /_sandbox/faults")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from .server import start_sandbox  # Flask loads only for this command

    shared_log.configure()
    config = config_from_args(args)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    handle = start_sandbox(config)
    ngrok = None
    try:
        ngrok = start_tunnel_if_asked(args)
        print(describe(handle, config), flush=True)
        stop.wait()
    finally:
        if ngrok is not None:
            ngrok.stop()
        handle.stop()
    return 0
