"""The processes of a benchmark run, and what we read from them.

One ``redis-server`` and one sandbox (``miro-sync sandbox``) live for the whole run; each scenario
starts the services it measures (``miro-sync watch``, ``miro-sync worker``, stock RQ workers, the
baseline) as child processes with the same commands ``miro-sync up`` uses, each logging JSON lines
to its own file. Between scenarios Redis is flushed and the sandbox reset, so nothing carries over.

Figures come from outside the services: the sandbox's request log (arrival time of each API
request), the services' own JSON log lines (their ``ts``), and ``/proc`` (peak RSS ``VmHWM``) and
psutil (CPU time) for the processes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import psutil
import redis

from services.sandbox.control import SandboxControl
from shared import processes

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
MIRO_SYNC = [PYTHON, "-m", "services"]
TOKEN = "sandbox-token"
BOARD = "sandbox-board="

T = TypeVar("T")


class BenchError(RuntimeError):
    """A scenario could not run (a process died, a wait timed out): the bench stops with this message."""


free_port = processes.free_port


def wait_for(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.02) -> T:
    return processes.wait_for(predicate, timeout, what, interval, error=BenchError, tolerate=())


class Child(processes.LoggedProcess):
    """A child process in its own session, output to ``log_path``; JSON log lines parsed on demand."""

    def __init__(self, name: str, args: list[str], log_path: Path, env: dict[str, str]) -> None:
        self.name = name
        self.started_at = time.time()
        super().__init__(args, log_path, env=env, cwd=ROOT)
        self._process = psutil.Process(self.popen.pid)
        self._offset = 0
        self._events: list[dict] = []

    def events(self, name: str | None = None) -> list[dict]:
        """JSON log lines so far (those with ``event == name`` when given)."""
        with open(self.log_path, "rb") as fh:
            fh.seek(self._offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1
        self._offset += end
        for line in data[:end].splitlines():
            if line.startswith(b"{"):
                try:
                    self._events.append(json.loads(line))
                except ValueError:
                    pass
        return [e for e in self._events if name is None or e.get("event") == name]

    def wait_event(self, name: str, timeout: float, count: int = 1) -> dict:
        def seen():
            if not self.alive():
                raise BenchError(f"{self.name} exited ({self.popen.returncode}):\n{self.tail()}")
            found = self.events(name)
            return found[count - 1] if len(found) >= count else None

        return wait_for(seen, timeout, f"{self.name}: {name}\n{self.tail()}", interval=0.01)

    def tail(self, chars: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def peak_rss_mb(self) -> float:
        """The kernel's high-water mark of resident memory (``VmHWM``): exact, no sampling."""
        return _proc_status_kb(self.pid, "VmHWM") / 1024

    def cpu_seconds(self) -> float:
        """User + system CPU of the process and its threads, its live descendants (a pool's workers) and
        every descendant already waited for (a forking worker's work horses)."""
        total = 0.0
        for proc in [self._process, *self._process.children(recursive=True)]:
            try:
                t = proc.cpu_times()
            except psutil.NoSuchProcess:  # a work horse that just ended: its parent's children_* has it
                continue
            total += t.user + t.system + t.children_user + t.children_system
        return total

    def on_kill(self, timeout: float) -> None:
        print(f"bench: {self.name} (pid {self.pid}) ignored SIGTERM for {timeout:g} s; killed (log: {self.log_path})",
              file=sys.stderr)

    def stop(self, timeout: float = 20.0) -> None:
        if self.popen.poll() is None:
            started = time.monotonic()
            super().stop(timeout)
            self.stop_seconds = time.monotonic() - started
        else:
            super().stop(0)


def _proc_status_kb(pid: int, field_name: str) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise BenchError(f"/proc/{pid}/status has no {field_name}")


def _answers(url: str, child: Child) -> bool:
    if not child.alive():
        raise BenchError(f"{child.name} exited ({child.popen.returncode}):\n{child.tail()}")
    try:
        import requests

        return requests.get(url, timeout=1).status_code == 200
    except Exception:  # not listening yet
        return False


class RedisServer:
    """A private ``redis-server`` with AOF on, as ``miro-sync up`` starts it."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> float:
        """Start and wait until it answers; the seconds that took (the AOF is replayed first)."""
        binary = shutil.which("redis-server")
        if not binary:
            raise BenchError("redis-server is not installed; run `make deps` (see README)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir), "--appendonly", "yes",
             "--save", "", "--maxmemory-policy", "noeviction"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        client, proc = self.client(), self.proc

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.exceptions.BusyLoadingError:
                return False
            except redis.ConnectionError:
                if proc.poll() is not None:
                    raise BenchError("redis-server exited at start") from None
                return False

        wait_for(answers, 30, "redis-server", interval=0.005)
        client.close()
        return time.perf_counter() - started

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # redis fsyncs the AOF on SIGTERM
            self.proc.wait(30)


class SandboxServer(SandboxControl):
    """``miro-sync sandbox`` in its own process (its CPU is not ours), driven by its admin endpoints."""

    def __init__(self, logs: Path, credits_per_minute: int) -> None:
        self.port = free_port()
        super().__init__(f"http://127.0.0.1:{self.port}")
        env = dict(os.environ, MIRO_SYNC_ENV_FILE="/nonexistent", LOG_FORMAT="json", LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1")
        self.child = Child("sandbox", MIRO_SYNC + ["sandbox", "--port", str(self.port), "--token", TOKEN, "--board", BOARD,
                                                    "--credits-per-minute", str(credits_per_minute)], logs / "sandbox.log", env)

        def up() -> bool:
            if not self.child.alive():
                raise BenchError("the sandbox exited at start:\n" + self.child.tail())
            try:
                self.stats()
                return True
            except Exception:  # not listening yet
                return False

        wait_for(up, 30, "the sandbox", interval=0.05)

    def fresh(self, latency_ms: int) -> None:
        self.reset()
        self.set_faults(latency_ms=latency_ms)

    def creates(self) -> list[dict]:
        """Image create requests (``POST .../images``) in arrival order."""
        return [r for r in self.requests() if r["method"] == "POST" and r["path"].endswith("/images")]

    def wait_creates(self, count: int, timeout: float, watch: Sequence[Child] = ()) -> None:
        def done() -> bool:
            for child in watch:
                if not child.alive():
                    raise BenchError(f"{child.name} exited ({child.popen.returncode}):\n{child.tail()}")
            return self.stats()["creates"] >= count

        wait_for(done, timeout, f"{count} images on the sandbox board", interval=0.1)

    def stop(self) -> None:
        self.child.stop()
        self.close()


class TunnelServer:
    """The ngrok stand-in (``python -m services.sandbox.tunnel``) in its own process, as ngrok is not
    Miro: in front of the port the url drills start the image server on."""

    def __init__(self, logs: Path) -> None:
        self.image_port, port, api_port = free_port(), free_port(), free_port()
        self.api = f"http://127.0.0.1:{api_port}"
        env = dict(os.environ, MIRO_SYNC_ENV_FILE="/nonexistent", LOG_FORMAT="json", LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1")
        self.child = Child("tunnel", [PYTHON, "-m", "services.sandbox.tunnel", "--tunnel-port", str(port), "--tunnel-api-port",
                                      str(api_port), "--tunnel-upstream", f"http://127.0.0.1:{self.image_port}"], logs / "tunnel.log", env)
        wait_for(lambda: _answers(f"{self.api}/api/tunnels", self.child), 30, "the ngrok stand-in")

    def set_mode(self, mode: str) -> None:
        """``normal``, ``warning-page``, ... (see services/sandbox/tunnel.py)."""
        import requests

        requests.put(f"{self.api}/_sandbox/tunnel/mode", json={"mode": mode}, timeout=5).raise_for_status()

    def stop(self) -> None:
        self.child.stop()


@dataclass
class Bench:
    """Everything one benchmark run owns; ``close()`` stops every process it started."""

    workdir: Path
    pause: float = 1.0  # seconds services get to go idle after start-up, before a drill
    credits_per_minute: int = 100_000
    children: list[Child] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.logs = self.workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.redis_server = RedisServer(self.workdir / "redis")
        self.redis_server.start()
        self.redis = self.redis_server.client()
        try:
            self.sandbox = SandboxServer(self.logs, self.credits_per_minute)
        except BaseException:
            self.redis_server.stop()
            raise
        try:
            self.tunnel = TunnelServer(self.logs)
        except BaseException:
            self.sandbox.stop()
            self.redis_server.stop()
            raise
        self._counter = 0

    # --- scenarios -----------------------------------------------------------------------------
    def fresh(self, name: str, latency_ms: int = 0) -> Path:
        """Stop the services, empty Redis and the board; a new empty watch folder for ``name``
        (earlier scenarios' folders are deleted: some hold 100,000 files)."""
        self.stop_services()
        self.redis.flushall()
        self.sandbox.fresh(latency_ms)
        self.tunnel.set_mode("normal")
        folders = self.workdir / "folders"
        if folders.exists():
            shutil.rmtree(folders)
        folder = folders / name
        folder.mkdir(parents=True)
        return folder

    def env(self, folder: Path, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "MIRO_SYNC_ENV_FILE": "/nonexistent",
            "REDIS_URL": self.redis_server.url,
            "MIRO_API_URL": self.sandbox.url,
            "MIRO_ACCESS_TOKEN": TOKEN,
            "MIRO_BOARD_ID": BOARD,
            "WATCH_FOLDER": str(folder),
            "UPLOAD_MODE": "file",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        })
        env.pop("NGROK_API_URL", None)
        env.pop("PUBLIC_BASE_URL", None)
        env.update(extra)
        return env

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> Child:
        self._counter += 1
        child = Child(name, args, self.logs / f"{self._counter:03d}-{name}.log", env)
        self.children.append(child)
        return child

    def start_watcher(self, folder: Path, wait: bool = True, **env: str) -> Child:
        child = self.spawn("watcher", MIRO_SYNC + ["watch"], self.env(folder, **env))
        if wait:
            child.wait_event("watch.scan", 60)
        return child

    def start_workers(self, folder: Path, count: int, kind: str = "simple", wait: bool = True, **env: str) -> list[Child]:
        """``simple``: ``miro-sync worker`` (ours); ``fork``: stock ``rq worker`` (fork per job);
        ``fork-preloaded``: the same with our imports done before the fork (:mod:`bench.forkworker`);
        ``pool``: stock ``rq worker-pool`` (one pool of ``count`` forking workers)."""
        environment = self.env(folder, **env)
        rq = [str(Path(PYTHON).parent / "rq")]
        common = ["-u", self.redis_server.url, "-S", "rq.serializers.JSONSerializer", "miro-sync"]
        if kind == "simple":
            children = [self.spawn(f"worker-{i + 1}", MIRO_SYNC + ["worker"], environment) for i in range(count)]
            ready = "worker.started"
        elif kind in ("fork", "fork-preloaded"):
            worker_class = "rq.worker.Worker" if kind == "fork" else "bench.forkworker.PreloadedWorker"
            children = [self.spawn(f"rq-{kind}-{i + 1}", rq + ["worker", "--logging_level", "WARNING", "-w", worker_class] + common, environment)
                        for i in range(count)]
            ready = None
        elif kind == "pool":
            children = [self.spawn("rq-pool", rq + ["worker-pool", "-n", str(count), "-l", "WARNING"] + common, environment)]
            ready = None
        else:
            raise ValueError(kind)
        if wait:
            for child in children:
                if ready:
                    child.wait_event(ready, 60)
            if not ready:
                self.wait_rq_workers(count)
        return children

    def wait_rq_workers(self, count: int) -> None:
        """Stock RQ workers log nothing we parse: wait until ``count`` registered in Redis and idle."""
        from rq import Worker

        wait_for(lambda: len([w for w in Worker.all(connection=self.redis) if w.get_state() == "idle"]) >= count,
                 60, f"{count} RQ workers", interval=0.1)

    def start_image_server(self, folder: Path, **env: str) -> Child:
        """``miro-sync serve`` on the port the sandbox's tunnel forwards to; its URL env for the workers."""
        child = self.spawn("image-server", MIRO_SYNC + ["serve"], self.env(folder, **self.url_env(), **env))
        wait_for(lambda: _answers(f"http://127.0.0.1:{self.tunnel.image_port}/healthz", child), 30, "the image server")
        return child

    def url_env(self) -> dict[str, str]:
        """The settings of the url route through the sandbox's tunnel (add ``UPLOAD_MODE``)."""
        return {"NGROK_API_URL": self.tunnel.api, "URL_SIGNING_SECRET": "bench-signing-secret-0123456789",
                "IMAGE_SERVER_BIND": f"127.0.0.1:{self.tunnel.image_port}"}

    def start_baseline(self, folder: Path, wait: bool = True) -> Child:
        child = self.spawn("baseline", [PYTHON, "-m", "bench.baseline", "--folder", str(folder), "--api", self.sandbox.url,
                                        "--token", TOKEN, "--board", BOARD], self.env(folder))
        if wait:
            child.wait_event("baseline.ready", 60)
        return child

    def stop_services(self) -> None:
        for child in reversed(self.children):
            child.stop()
        self.children.clear()

    def close(self) -> None:
        self.stop_services()
        self.tunnel.stop()
        self.sandbox.stop()
        self.redis.close()
        self.redis_server.stop()
