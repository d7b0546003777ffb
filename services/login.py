"""`miro-sync login`: Miro's authorization-code flow for an app with expiring tokens.

It prints the authorize address; a person opens it in a browser on any machine and approves. The
code comes back either through the local redirect (a small HTTP listener on 127.0.0.1, when the
browser runs on this machine) or by paste: on a headless server or in a container the browser
lands on a page that does not load, and its address (or just the code) is pasted here. The new
pair is stored in Redis for every process, and a hold on the workers is lifted at once.
No token is ever printed.
"""

from __future__ import annotations

import argparse
import queue
import secrets
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import redis

from shared import keys, redis_down
from shared.log import configure, get_logger, register_secrets
from shared.oauth import InvalidGrant, OAuthClient, OAuthError, OAuthUnavailable, authorize_url
from shared.settings import SettingsError, load_settings
from shared.tokens import token_store

log = get_logger("login")

DEFAULT_PORT = 8976
CODE_WAIT_SECONDS = 600  # Miro's codes live 10 minutes; no point waiting longer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port of the local redirect listener (default {DEFAULT_PORT}); 0 picks a free one")
    parser.add_argument("--host", default="127.0.0.1", help="address the listener binds (default 127.0.0.1)")
    parser.add_argument("--redirect-uri", help="the redirect URI registered in the app's settings "
                                               "(default http://127.0.0.1:PORT/callback)")
    parser.add_argument("--no-listen", action="store_true", help="no local listener: paste the code only")
    parser.add_argument("--timeout", type=float, default=CODE_WAIT_SECONDS, help="seconds to wait for the code")


def parse_pasted(text: str) -> tuple[str, str | None]:
    """``(code, state)`` from a pasted redirect address, its query, or a bare code."""
    text = text.strip()
    if "code=" in text:
        query = parse_qs(urlsplit(text).query or text.lstrip("?"))
        state = query.get("state")
        return (query.get("code") or [""])[0], state[0] if state else None
    return text, None


class _Callback(BaseHTTPRequestHandler):
    codes: queue.Queue
    state: str

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        query = parse_qs(urlsplit(self.path).query)
        code, state = (query.get("code") or [""])[0], (query.get("state") or [""])[0]
        if not code or state != self.state:
            self._answer(400, "miro-sync login: this is not the answer to the current login (no code, or another state).")
            return
        self.codes.put(("redirect", code, state))
        self._answer(200, "miro-sync login: authorized. You can close this tab.")

    def _answer(self, status: int, text: str) -> None:
        body = (text + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # the query holds the code: no access log
        pass


def _read_paste(codes: queue.Queue) -> None:
    for line in sys.stdin:
        if line.strip():
            code, state = parse_pasted(line)
            codes.put(("paste", code, state))
            return


def run(args: argparse.Namespace) -> int:
    settings = load_settings(needs=())
    if not settings.oauth:
        raise SettingsError("MIRO_CLIENT_ID", "is not set; `miro-sync login` needs MIRO_CLIENT_ID and MIRO_CLIENT_SECRET "
                                              "of an app with expiring tokens (the app's settings page)")
    configure(settings.log_level, settings.log_format)
    register_secrets(settings.secrets)
    # The pair is stored in Redis: find out it is away now, not once Miro's one-time code is spent
    # (a RedisError here is the CLI's one line).
    redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5, socket_timeout=5).ping()
    state = secrets.token_urlsafe(16)
    codes: queue.Queue = queue.Queue()

    server = None
    if not args.no_listen:
        handler = type("Callback", (_Callback,), {"codes": codes, "state": state})
        try:
            server = ThreadingHTTPServer((args.host, args.port), handler)
        except OSError as exc:
            print(f"miro-sync login: cannot listen on {args.host}:{args.port} ({exc.strerror}); "
                  "use --port, or --no-listen to paste the code", file=sys.stderr)
            return 2
        threading.Thread(target=server.serve_forever, daemon=True, name="login-callback").start()
    port = server.server_address[1] if server else args.port
    redirect_uri = args.redirect_uri or f"http://127.0.0.1:{port}/callback"

    print("1. Open this address in a browser (on any machine) and approve the app:", flush=True)
    print(f"   {authorize_url(settings.miro_authorize_url, settings.miro_client_id, redirect_uri, state)}", flush=True)
    print(f"2. The browser returns to {redirect_uri}. If that page does not load (another machine, a container),", flush=True)
    print("   copy its address from the address bar and paste it here (or just the code):", flush=True)
    threading.Thread(target=_read_paste, args=(codes,), daemon=True, name="login-paste").start()
    try:
        try:
            how, code, got_state = codes.get(timeout=args.timeout)
        except queue.Empty:
            print(f"miro-sync login: no code within {args.timeout:g} s; run it again", file=sys.stderr)
            return 1
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
    if got_state is not None and got_state != state:
        print("miro-sync login: the pasted address belongs to another login (state differs); run it again", file=sys.stderr)
        return 1
    register_secrets((code,))
    return _store(settings, code, redirect_uri, how)


def _store(settings, code: str, redirect_uri: str, how: str) -> int:
    oauth = OAuthClient(settings.miro_api_url, settings.miro_client_id, settings.miro_client_secret)
    try:
        pair = oauth.exchange_code(code, redirect_uri)
    except InvalidGrant:
        print("miro-sync login: Miro refused the code (used already, older than 10 minutes, or another redirect URI); "
              "run it again", file=sys.stderr)
        return 1
    except OAuthError as exc:
        print(f"miro-sync login: Miro refused the exchange ({exc.error}); check MIRO_CLIENT_ID and MIRO_CLIENT_SECRET",
              file=sys.stderr)
        return 1
    except OAuthUnavailable as exc:
        print(f"miro-sync login: {exc}; check MIRO_API_URL and try again", file=sys.stderr)
        return 1
    register_secrets((pair.access_token, pair.refresh_token))
    connection = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5, socket_timeout=5)
    try:
        generation = token_store(settings, connection).put(pair)
        from services.worker import hold  # held workers go now, not at their next recheck

        lifted = bool(connection.exists(keys.AUTH_BLOCKED))
        hold.lift(connection)
    except redis.RedisError as exc:
        print(f"miro-sync login: cannot store the token pair: {redis_down.problem(settings.redis_url, exc)}; "
              "then run it again (this code is used up)", file=sys.stderr)
        return 1
    log.info("oauth.login", via=how, generation=generation, expires_in=pair.lifetime, hold_lifted=lifted)
    print(f"✔ stored a new Miro token pair (access token lives {pair.lifetime or 0:g} s, refreshed automatically)"
          + ("; held jobs resume now" if lifted else ""), flush=True)
    return 0
