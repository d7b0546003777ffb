"""The drill rig: real watcher and worker processes, a real Redis, an in-thread sandbox Miro.

Unlike ``miro-sync up`` (one process tree), the rig starts each process itself, so a drill can
SIGKILL one worker, restart Redis under everyone, or change the token the sandbox accepts.

    def test_x(rig):
        rig.start_watcher(); rig.start_workers(2)
        expected = rig.drop(50)                 # {file name: bytes}
        rig.wait_items(50)
        rig.assert_each_once(expected)
"""

from __future__ import annotations

import collections
import hashlib
import io
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis as redis_lib
from PIL import Image

from services.sandbox.server import SandboxHandle
from shared import keys
from tests.fixtures import idle
from tests.fixtures.procs import MIRO_SYNC, Proc, wait_for

QUEUE = idle.QUEUE


def picture(seed: int, size: tuple[int, int] = (48, 32)) -> bytes:
    """A small PNG whose bytes differ for every ``seed`` (so no two drill images are duplicates)."""
    w, h = size
    im = Image.new("RGB", size)
    im.putdata([((x * 7 + seed) % 256, (y * 11 + seed // 256) % 256, (x * y + seed * 13) % 256) for y in range(h) for x in range(w)])
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def drop_file(path: Path, data: bytes) -> None:
    """Appear complete at once, as a camera or a browser download would (write aside, rename)."""
    tmp = path.with_name(f".drop-{uuid.uuid4().hex}.tmp")  # hidden: the watcher ignores it
    tmp.write_bytes(data)
    os.replace(tmp, path)


def read(proc: Proc) -> str:
    """What a process wrote so far (also after it stopped, when ``Proc.output`` no longer works)."""
    return proc.log_path.read_text(errors="replace")


def events(text: str) -> list[dict[str, Any]]:
    """The JSON log lines of a process's output (other lines, e.g. tracebacks, are left out)."""
    found = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except ValueError:
                pass
    return found


@dataclass
class Rig:
    root: Path
    spawn: Callable[..., Proc]
    sandbox: SandboxHandle
    redis_url: str
    env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, Proc] = field(default_factory=dict)
    command_prefix: list[str] = field(default_factory=list)  # e.g. setpriv ... to drop privileges

    def __post_init__(self) -> None:
        self.folder = self.root / "inbox"
        self.folder.mkdir(exist_ok=True)
        self._runs: collections.Counter[str] = collections.Counter()
        self.redis = redis_lib.Redis.from_url(self.redis_url)

    # --- processes -------------------------------------------------------------------------------
    def process_env(self, **extra: str) -> dict[str, str]:
        env = {
            "MIRO_SYNC_ENV_FILE": "/nonexistent",
            "REDIS_URL": self.redis_url,
            "MIRO_API_URL": self.sandbox.url,
            "MIRO_ACCESS_TOKEN": self.sandbox.token,
            "MIRO_BOARD_ID": self.sandbox.board_id,
            "WATCH_FOLDER": str(self.folder),
            "UPLOAD_MODE": "file",
            "LOG_FORMAT": "json",
            "SETTLE_SECONDS": "0.3",
        }
        env.update(self.env)
        env.update(extra)
        return env

    def start(self, role: str, name: str | None = None, wait: str | None = None, **env: str) -> Proc:
        """Start ``miro-sync <role>``; with ``wait``, until that event is in its output."""
        name = name or role
        self._runs[name] += 1
        log_name = f"{name}-{self._runs[name]}"
        proc = self.spawn(self.command_prefix + MIRO_SYNC + [role], log_name, env=self.process_env(**env))
        self.procs[log_name] = proc
        if wait:
            wait_for(lambda: f'"{wait}"' in read(proc) or not proc.alive(), 60, what=f"{log_name}: {wait}")
            assert proc.alive(), f"{log_name} exited:\n{read(proc)[-3000:]}"
        return proc

    def start_watcher(self, **env: str) -> Proc:
        return self.start("watch", wait="watch.started", **env)

    def start_worker(self, name: str = "worker", **env: str) -> Proc:
        return self.start("worker", name=name, wait="worker.started", **env)

    def start_workers(self, count: int, **env: str) -> list[Proc]:
        """Start ``count`` workers at once (they boot in parallel), then wait for each."""
        procs = [self.start("worker", name=f"worker{i + 1}", **env) for i in range(count)]
        for proc in procs:
            wait_for(lambda proc=proc: '"worker.started"' in read(proc) or not proc.alive(), 60, what="a worker to start")
            assert proc.alive(), read(proc)[-3000:]
        return procs

    def stop_cleanly(self, proc: Proc) -> None:
        """SIGTERM, and the process must end by itself with code 0 (not be killed after a timeout)."""
        code = proc.stop()
        assert code == 0, f"{proc.log_path.name} ended with {code}:\n{read(proc)[-2000:]}"

    def stop_all_cleanly(self) -> None:
        for proc in self.procs.values():
            if proc.alive():
                self.stop_cleanly(proc)

    def output(self) -> str:
        """Everything every process of the rig wrote so far."""
        return "\n".join(read(p) for p in self.procs.values())

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        found = events(self.output())
        return [e for e in found if name is None or e.get("event") == name]

    # --- the folder ------------------------------------------------------------------------------
    def drop(self, count: int, start: int = 0, prefix: str = "img") -> dict[str, bytes]:
        """Drop ``count`` distinct pictures; returns {file name: bytes}."""
        dropped = {}
        for seed in range(start, start + count):
            name = f"{prefix}-{seed:04d}.png"
            data = picture(seed)
            drop_file(self.folder / name, data)
            dropped[name] = data
        return dropped

    # --- the board -------------------------------------------------------------------------------
    def items(self) -> list[dict]:
        return [i for i in self.sandbox.items(self.sandbox.board_id) if i.get("type") == "image"]

    def wait_items(self, count: int, timeout: float = 60) -> list[dict]:
        def enough():
            items = self.items()
            return items if len(items) >= count else None

        return wait_for(enough, timeout, interval=0.2, what=lambda: f"{count} items on the board (have {len(self.items())})\n" + self.tail())

    def wait_idle(self, timeout: float = 30, quiet: float = 1.0) -> None:
        """Until no job is queued, running or waiting for a retry, and none finished for ``quiet`` s."""
        idle.wait_idle(self.redis, QUEUE, quiet=quiet, timeout=timeout, tail=self.tail)

    def pending_jobs(self) -> dict[str, int]:
        return idle.pending_jobs(self.redis, QUEUE)

    def failed_jobs(self) -> int:
        return self.redis.zcard(f"rq:failed:{QUEUE}")

    def assert_each_once(self, expected: dict[str, bytes]) -> None:
        """Every expected file is on the board exactly once, with its own bytes, in its own cell."""
        items = self.items()
        titles = collections.Counter(i["data"]["title"] for i in items)
        assert {t: c for t, c in titles.items() if c > 1} == {}, "an item appears twice"
        assert set(titles) == set(expected), (sorted(set(expected) - set(titles))[:10], sorted(set(titles) - set(expected))[:10])
        for item in items:
            assert item["bytes_sha256"] == hashlib.sha256(expected[item["data"]["title"]]).hexdigest(), item["data"]["title"]
        cells = collections.Counter((i["position"]["x"], i["position"]["y"]) for i in items)
        assert max(cells.values()) == 1, "two items share a grid cell"
        # The ledger agrees with the board: one entry per item, pointing at it.
        entries = [json.loads(v) for v in self.redis.hvals(keys.ledger_paths(self.sandbox.board_id))]
        ledger = {e["item_id"] for e in entries if e.get("dup_of") is None}
        assert ledger == {str(i["id"]) for i in items}

    def tail(self, chars: int = 4000) -> str:
        return self.output()[-chars:]
