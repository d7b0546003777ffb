"""`miro-sync up`: the whole stack as local processes, for a machine without Docker.

It starts, in order: Redis (the one at REDIS_URL, or a private `redis-server` whose data lives in
the state folder so the ledger survives restarts), with ``--sandbox`` the Miro and ngrok
stand-ins, the image server, the watcher and ``--workers`` workers. A service that exits
(image server, watcher, a worker) is started again after a backoff (services/restarts.py); only
Ctrl+C, SIGTERM, or the private Redis or the sandbox exiting stop the stack, in an order that
lets each worker finish the upload it is doing (``STOP_ORDER``).
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import redis

from services.restarts import Backoff
from services.sandbox.control import board_page_url
from shared.log import configure, get_logger, redact, register_secrets
from shared.processes import free_port, stop_all
from shared.settings import SettingsError, load_env, load_settings

log = get_logger("up")

SANDBOX_TOKEN = "sandbox-token"
SANDBOX_BOARD = "sandbox-board="


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=2, help="number of upload workers (default 2)")
    parser.add_argument("--sandbox", action="store_true", help="use the local Miro and ngrok stand-ins instead of Miro")
    parser.add_argument("--folder", help="watch folder, created if missing (default: WATCH_FOLDER, which must exist)")
    parser.add_argument("--state-dir", default=".state", help="where the private Redis and the sandbox keep data (default .state)")
    parser.add_argument("--sandbox-port", type=int, default=8765, help="sandbox Miro API and board page port (default 8765)")
    parser.add_argument("--image-port", type=int, default=8000, help="image server port (default 8000)")
    parser.add_argument("--tunnel-port", type=int, default=8766, help="sandbox tunnel public port (default 8766)")
    parser.add_argument("--tunnel-api-port", type=int, default=4040, help="sandbox ngrok agent API port (default 4040)")
    parser.add_argument("--redis-port", type=int, default=0, help="port for a private redis-server (default: a free one)")
    parser.add_argument("--no-tunnel", action="store_true", help="with --sandbox: no tunnel stand-in (file uploads only)")
    parser.add_argument("--ngrok", action="store_true",
                        help="expose the image server with ngrok (pyngrok; needs NGROK_AUTHTOKEN), for the url route without Docker")


def _redis_answers(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
        client.ping()
        client.close()
        return True
    except (redis.RedisError, ValueError):
        return False


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM if `up` itself dies (even by SIGKILL), so nothing is orphaned."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Kind(Enum):
    BACKING = "backing"
    """The private Redis, the sandbox: without them nothing works, so their exit stops the stack."""
    SERVICE = "service"
    """Image server, watcher, workers: restarted when they exit, as compose's restart policy does."""


STOP_ORDER = ("watcher", "worker", "image-server", "sandbox", "redis")
"""Stopped in this order, each group after the one before has exited: workers finish their upload
while Miro (the sandbox), the image server (Miro may be fetching from it) and Redis are still there."""
STOP_GRACE = 20.0
"""Seconds each group has to exit after SIGTERM before it is killed (a worker finishes its upload)."""


class StackStopped(Exception):
    """Ctrl-C or SIGTERM arrived while the stack was starting."""


@dataclass
class Child:
    name: str
    kind: Kind
    args: list[str]
    env: dict[str, str]
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    backoff: Backoff = field(default_factory=Backoff)

    @property
    def group(self) -> str:
        return self.name.split("-")[0] if self.name.startswith("worker-") else self.name


class Stack:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.children: list[Child] = []
        self.adopted: list[str] = []  # Redis URLs we did not start but must stop
        self.on_stop: list = []  # clean-ups of things started in-process (the ngrok agent)
        self.stopping = False

    def start(self, name: str, args: list[str], env: dict[str, str], kind: Kind = Kind.SERVICE) -> Child:
        child = Child(name, kind, args, env)
        self.children.append(child)
        self._launch(child)
        return child

    def _launch(self, child: Child) -> None:
        # Each child leads its own process group: Ctrl-C reaches `up` alone, which stops the children in
        # order (a terminal's SIGINT to every process would stop Redis under workers mid-upload), and a
        # stop reaches what a child started itself.
        child.proc = subprocess.Popen(child.args, env=child.env, preexec_fn=_die_with_parent, start_new_session=True)
        child.started_at, child.restart_at = time.monotonic(), None
        log.info("process.started", name=child.name, pid=child.proc.pid)

    def supervise(self) -> str | None:
        """Restart the services that exited (after their backoff); the reason to stop the stack, if any."""
        now = time.monotonic()
        for child in self.children:
            if child.restart_at is not None:
                if now >= child.restart_at and not self.stopping:
                    self._launch(child)
                continue
            assert child.proc is not None
            code = child.proc.poll()
            if code is None:
                continue
            exit_ = f"signal {signal.Signals(-code).name}" if code < 0 else f"code {code}"
            if child.kind is Kind.BACKING:
                return f"{child.name} exited ({exit_})"
            delay = child.backoff.delay(ran_for=now - child.started_at)
            child.restart_at = now + delay
            log.warning("process.exited", name=child.name, pid=child.proc.pid, exit=exit_, restart_in_s=delay)
        return None

    def check(self) -> None:
        """While the stack starts: a signal stops it, a service that exited is restarted as later on."""
        if self.stopping:
            raise StackStopped()
        failed = self.supervise()
        if failed:
            raise SystemExit(f"miro-sync up: {failed}; the stack cannot go on without it")

    def stop(self) -> None:
        for clean_up in self.on_stop:
            clean_up()
        running = [c for c in self.children if c.restart_at is None and c.proc is not None]
        for group in STOP_ORDER:
            stop_all([(c.name, c.proc) for c in running if c.group == group and c.proc is not None], STOP_GRACE,
                     on_kill=lambda name, proc: log.warning("process.killed", name=name, pid=proc.pid))
        for url in self.adopted:  # last, like the Redis we start ourselves
            try:
                redis.Redis.from_url(url).shutdown()
            except redis.RedisError:
                pass  # SHUTDOWN closes the connection: that is success


def _start_redis(stack: Stack, env: dict[str, str], port: int) -> str:
    url = env.get("REDIS_URL", "redis://localhost:6379/0")
    if _redis_answers(url):
        log.info("redis.found", url=url.split("@")[-1])
        return url
    binary = shutil.which("redis-server")
    if not binary:
        raise SystemExit(
            "miro-sync up: no Redis answers at REDIS_URL and redis-server is not installed; "
            "install it (apt-get install redis-server / brew install redis) or set REDIS_URL"
        )
    data = stack.state_dir / "redis"
    data.mkdir(parents=True, exist_ok=True)
    port_file = data / "port"
    if port_file.exists():
        # A private Redis left running by an `up` that was killed: never start a second one on the
        # same data folder, adopt it (and stop it with the stack).
        previous = f"redis://127.0.0.1:{port_file.read_text().strip()}/0"
        if _redis_answers(previous) and _redis_dir(previous) == str(data.resolve()):
            stack.adopted.append(previous)
            log.info("redis.private", url=previous, data=str(data), note="the private Redis of an earlier run is still up, using it")
            return previous
    port = port or free_port()
    port_file.write_text(str(port))
    stack.start("redis", [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data.resolve()),
                          "--appendonly", "yes", "--save", "", "--maxmemory-policy", "noeviction"], env, Kind.BACKING)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not _redis_answers(url):
        stack.check()
        if time.monotonic() > deadline:
            raise SystemExit("miro-sync up: the private redis-server did not start")
        time.sleep(0.05)
    log.info("redis.private", url=url, data=str(data), note="no Redis at REDIS_URL, started a private one")
    return url


def _start_ngrok(stack: Stack, port: int, env: dict[str, str]) -> str:
    """An ngrok agent (pyngrok) forwarding to the image server; returns its agent API address.

    pyngrok downloads the ngrok binary on first use unless ``PYNGROK_NGROK_PATH`` names one.
    """
    from pyngrok import conf, ngrok
    from pyngrok.exception import PyngrokError

    config = conf.PyngrokConfig(auth_token=env["NGROK_AUTHTOKEN"], ngrok_path=env.get("PYNGROK_NGROK_PATH") or conf.get_default().ngrok_path)
    try:
        tunnel = ngrok.connect(str(port), "http", pyngrok_config=config)
        api_url = ngrok.get_ngrok_process(config).api_url
    except PyngrokError as exc:
        detail = redact(" ".join(str(exc).split())[:300])  # ngrok may echo its command line
        raise SystemExit(
            f"miro-sync up: ngrok did not start ({detail}); check NGROK_AUTHTOKEN, or run without --ngrok (UPLOAD_MODE=file needs no tunnel)"
        ) from None
    stack.on_stop.append(lambda: ngrok.kill(config))
    assert api_url is not None  # pyngrok sets it once the agent has started
    log.info("tunnel.started", public_url=tunnel.public_url, agent_api=api_url)
    return api_url


def _redis_dir(url: str) -> str | None:
    try:
        return redis.Redis.from_url(url, socket_connect_timeout=0.5).config_get("dir").get("dir")
    except redis.RedisError:
        return None


def _signing_secret(state_dir: Path) -> str:
    path = state_dir / "url-signing-secret"
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_hex(32)
    path.write_text(value)
    path.chmod(0o600)
    return value


def _wait_http(stack: Stack, url: str, timeout: float = 15.0) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.check()
        try:
            requests.get(url, timeout=0.5)
            return
        except requests.RequestException:
            time.sleep(0.05)
    raise SystemExit(f"miro-sync up: {url} did not answer in {timeout:.0f} s")


def run(args: argparse.Namespace) -> int:
    env = dict(load_env())
    configure(env.get("LOG_LEVEL", "INFO").upper(), env.get("LOG_FORMAT", "auto"))
    state_dir = Path(args.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    if args.folder:
        # The one folder anything creates: the one named here (`make demo`'s ./inbox). A WATCH_FOLDER
        # that does not exist stays an error, so a typo cannot become an empty, "everything deleted" folder.
        try:
            Path(args.folder).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SettingsError("--folder", f"({args.folder}) cannot be created: {exc.strerror}") from None
        env["WATCH_FOLDER"] = str(Path(args.folder).resolve())
    env.setdefault("URL_SIGNING_SECRET", _signing_secret(state_dir))
    env.setdefault("IMAGE_SERVER_BIND", f"127.0.0.1:{args.image_port}")
    env["PYTHONUNBUFFERED"] = "1"
    me = [sys.executable, "-m", "services"]

    stack = Stack(state_dir)

    def on_signal(signum, frame):
        stack.stopping = True

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # SIGHUP: the terminal closed
        signal.signal(sig, on_signal)
    image_port = int(env["IMAGE_SERVER_BIND"].rsplit(":", 1)[1])
    sandbox_url = f"http://127.0.0.1:{args.sandbox_port}"
    if args.sandbox:
        # A real token from .env has no business with the stand-in: it would go on the sandbox's
        # command line (visible in ps) and into its start-up banner.
        if env.get("MIRO_ACCESS_TOKEN", SANDBOX_TOKEN) != SANDBOX_TOKEN:
            log.info("sandbox.token", note="MIRO_ACCESS_TOKEN is not used with --sandbox; the stand-in's own token is")
        env["MIRO_ACCESS_TOKEN"] = SANDBOX_TOKEN
        for name in ("MIRO_CLIENT_ID", "MIRO_CLIENT_SECRET", "MIRO_REFRESH_TOKEN"):  # nor does an OAuth app's
            env[name] = ""  # empty counts as unset, also over the .env file the children read
        env.setdefault("MIRO_BOARD_ID", SANDBOX_BOARD)
        env["MIRO_API_URL"] = sandbox_url
        if not args.no_tunnel:
            env["NGROK_API_URL"] = f"http://127.0.0.1:{args.tunnel_api_port}"
    if args.ngrok:
        if args.sandbox:
            raise SettingsError("--ngrok", "cannot be combined with --sandbox, which has its own tunnel stand-in")
        if not env.get("NGROK_AUTHTOKEN"):
            raise SettingsError("NGROK_AUTHTOKEN", "is not set; --ngrok needs your ngrok authtoken (https://dashboard.ngrok.com)")
        env["NGROK_API_URL"] = "http://127.0.0.1:4040"  # provisional, for validation: the agent's real address follows
    # Every child validates its own settings too; checking here first gives one line, not five.
    register_secrets(load_settings(environ=env).secrets)
    try:
        env["REDIS_URL"] = _start_redis(stack, env, args.redis_port)
        if args.sandbox:
            cmd = me + ["sandbox", "--port", str(args.sandbox_port), "--token", env["MIRO_ACCESS_TOKEN"],
                        "--board", env["MIRO_BOARD_ID"], "--state", str(state_dir / "sandbox.json")]
            if not args.no_tunnel:
                cmd += ["--tunnel-port", str(args.tunnel_port), "--tunnel-api-port", str(args.tunnel_api_port),
                        "--tunnel-upstream", f"http://127.0.0.1:{image_port}"]
            stack.start("sandbox", cmd, env, Kind.BACKING)
            _wait_http(stack, sandbox_url + "/_sandbox/stats")

        stack.start("image-server", me + ["serve"], env)
        # Workers probe the tunnel at their first url upload: the image server must answer by then.
        _wait_http(stack, f"http://127.0.0.1:{image_port}/healthz", timeout=30)
        if args.ngrok:
            env["NGROK_API_URL"] = _start_ngrok(stack, image_port, env)
        stack.start("watcher", me + ["watch"], env)
        for i in range(args.workers):
            stack.start(f"worker-{i + 1}", me + ["worker"], env)
        if args.sandbox:
            board_page = board_page_url(sandbox_url, env["MIRO_BOARD_ID"])  # as the sandbox's own banner prints it
            log.info("stack.ready", folder=env.get("WATCH_FOLDER"), board_page=board_page)
            print(f"\nDrop images into {env.get('WATCH_FOLDER')} and watch them arrive at {board_page}\n", file=sys.stderr, flush=True)
        while True:
            stack.check()
            time.sleep(0.2)
    except StackStopped:
        return 0
    finally:
        stack.stop()
