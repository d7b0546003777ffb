"""Drill: `miro-sync up` stopped at random moments of bursts; every stop is prompt, nothing is lost or doubled.

Each stop is one of: Ctrl-C (SIGINT to `up`'s process group, as a terminal sends it), SIGTERM to
`up`, SIGTERM to every process of the tree at once, or SIGTERM to one service (a worker, the
watcher, the image server), which `up` starts again. Every process that got the signal must be gone
within ``PROMPT`` seconds by itself: `up` exits 0 and never had to SIGKILL a child. One Redis and one
sandbox stay up across the stops (only what was stopped is started again); some stops come while
Redis is away. After the stops, and a last run, every dropped file is on the board exactly once.
"""

from __future__ import annotations

import os
import random
import signal
import time

import psutil
import pytest

from tests.fixtures.procs import MIRO_SYNC, Proc, free_port, wait_for

from .harness import Rig, read

STOPS = 30
PROMPT = 10.0
"""Seconds every stopped process has to be gone in."""
BURST = 3
"""Pictures dropped before each stop."""
WHOLE = ("sigint-group", "sigterm-up", "sigterm-every")
ONE = ("sigterm-worker", "sigterm-watch", "sigterm-serve")
"""One service, by its `miro-sync` command."""


def drill_seed() -> int:
    """``DRILL_SEED=<n>`` replays a run (the seed is printed and named in every failure)."""
    return int(os.environ.get("DRILL_SEED") or random.randrange(1 << 30))


class Up:
    """`miro-sync up` (no sandbox of its own: the rig's, and the rig's Redis) and its process tree."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.runs = 0
        self.proc: Proc | None = None

    def start(self, ready: bool = True) -> Proc:
        """With ``ready``, until both workers have started; else at once (a stop may come mid-start)."""
        self.runs += 1
        args = MIRO_SYNC + ["up", "--workers", "2", "--state-dir", str(self.rig.root / "state"), "--image-port", str(free_port())]
        self.proc = self.rig.spawn(args, f"up-{self.runs}", env=self.rig.process_env(LOG_FORMAT="text"))
        if not ready:
            return self.proc
        wait_for(lambda: read(self.proc).count("worker.started") >= 2 or not self.proc.alive(), 60,
                 what=lambda: "the stack to start\n" + read(self.proc)[-3000:])
        assert self.proc.alive(), read(self.proc)[-3000:]
        return self.proc

    def tree(self) -> list[psutil.Process]:
        assert self.proc is not None
        try:
            return [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def service(self, role: str) -> psutil.Process | None:
        """A direct child of `up` running ``miro-sync <role>``, if one is running now."""
        for child in self.tree()[1:]:
            try:
                if child.ppid() == self.tree()[0].pid and child.cmdline()[3:4] == [role]:
                    return child
            except (psutil.NoSuchProcess, IndexError):
                continue
        return None


def assert_gone_promptly(procs: list[psutil.Process], since: float, what: str) -> None:
    _, alive = psutil.wait_procs(procs, timeout=max(0.1, since + PROMPT - time.monotonic()))
    assert not alive, f"{what}: still running {PROMPT:g} s after the signal: {[p.cmdline() for p in alive if p.is_running()]}"


@pytest.mark.slow
def test_stops_at_random_moments_are_prompt_and_lose_nothing(rig, redis_server):
    seed = drill_seed()
    print(f"stop drill seed: {seed} (replay with DRILL_SEED={seed})")
    rng = random.Random(seed)
    rig.sandbox.set_faults(latency_ms=40)  # a create takes a moment: stops land inside uploads
    up = Up(rig)
    up.start()
    expected: dict[str, bytes] = {}
    # A third stop the whole stack (each costs a start of it), the rest one service (`up` restarts it).
    kinds = [WHOLE[i // 3 % 3] if i % 3 == 0 else rng.choice(ONE) for i in range(STOPS)]
    rng.shuffle(kinds)
    started = time.monotonic()
    for n, kind in enumerate(kinds):
        print(f"{time.monotonic() - started:6.1f} s: stop {n} {kind}")
        context = f"stop {n} ({kind}), seed {seed}"
        if up.proc is None or not up.proc.alive():
            up.start(ready=rng.random() < 0.5)
        expected |= rig.drop(BURST, start=n * BURST)
        redis_away = kind in WHOLE and rng.random() < 0.2
        if redis_away:
            redis_server.stop()
        time.sleep(rng.uniform(0, 0.6))  # a random moment of the burst
        assert up.proc is not None
        if kind in WHOLE:
            tree = up.tree()
            since = time.monotonic()
            if kind == "sigint-group":
                os.killpg(up.proc.pid, signal.SIGINT)
            elif kind == "sigterm-up":
                up.proc.popen.send_signal(signal.SIGTERM)
            else:
                for process in tree:
                    try:
                        process.send_signal(signal.SIGTERM)
                    except psutil.NoSuchProcess:
                        pass
            assert_gone_promptly(tree, since, context)
            assert up.proc.popen.wait(5) == 0, f"{context}: up exited with {up.proc.popen.returncode}\n{read(up.proc)[-3000:]}"
            assert "process.killed" not in read(up.proc), f"{context}: up had to kill a child\n{read(up.proc)[-3000:]}"
            if redis_away:
                redis_server.start()
        else:
            victim = up.service(kind.removeprefix("sigterm-"))
            if victim is None:  # still waiting for its restart after an earlier stop
                continue
            try:
                family = [victim, *victim.children(recursive=True)]  # before the signal: it may be gone at once
            except psutil.NoSuchProcess:
                continue  # it left by itself meanwhile (a restart under way)
            since = time.monotonic()
            try:
                victim.send_signal(signal.SIGTERM)
            except psutil.NoSuchProcess:
                pass
            assert_gone_promptly(family, since, context)
            # `up` saw it leave by itself and restarts it after a backoff. (Before a service has set up its
            # handlers, in its first moments, SIGTERM's default action ends it: nothing is under way then.)
            wait_for(lambda victim=victim: f"pid={victim.pid} exit=" in read(up.proc), 5,
                     what=lambda context=context: f"{context}: up to see the exit\n" + read(up.proc)[-2000:])
            line = next(x for x in read(up.proc).splitlines() if f"pid={victim.pid} exit=" in x)
            assert "code 0" in line or "signal SIGTERM" in line, f"{context}: {line}"

    if up.proc is None or not up.proc.alive():
        up.start()
    print(f"{time.monotonic() - started:6.1f} s: the last run")
    rig.wait_items(len(expected), timeout=60)
    rig.wait_idle(timeout=30)
    rig.assert_each_once(expected)
    assert rig.failed_jobs() == 0, f"seed {seed}"
    print(f"{time.monotonic() - started:6.1f} s: all {len(expected)} on the board once")
    since = time.monotonic()
    tree = up.tree()
    os.killpg(up.proc.pid, signal.SIGINT)
    assert_gone_promptly(tree, since, f"the last stop, seed {seed}")
