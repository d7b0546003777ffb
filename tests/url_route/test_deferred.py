"""The URL route at full speed: verification is deferred, and a tunnel that does not deliver is set aside.

One stack for the module (`miro-sync up --sandbox --workers 0`: sandbox, tunnel stand-in, image
server, watcher, Redis); each test starts its own worker processes with the settings it needs, so
it can kill one. Files carry the test's own prefix, and the tunnel's shared state is reset between tests.

To get pictures created by URL that Miro does not fetch, a test lets the workers' probe pass first
(cached for ``PROBE_INTERVAL``), then switches the tunnel to ngrok's warning page: Miro's fetcher
gets the page, as it would when its fetcher is told apart from our probe.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import time
import zlib

import pytest
import redis as redis_lib

from shared import keys
from tests.drills.harness import events, read
from tests.fixtures.procs import MIRO_SYNC, Proc, wait_for
from tests.fixtures.stack import BOARD, LocalStack, make_image, pixels


class Stack:
    def __init__(self, local: LocalStack, spawn_module) -> None:
        self.local = local
        self.spawn = spawn_module
        self.workers: list[Proc] = []
        self.redis = redis_lib.Redis.from_url(local.redis_url)
        self.runs = 0

    def reset(self) -> None:
        self.local.set_tunnel_mode("normal")
        # Checks an earlier test left pending (its grace not over) would count against this test's circuit.
        self.redis.delete(keys.TUNNEL_CIRCUIT, keys.TUNNEL_PROBE, keys.TUNNEL_WARNED, keys.verify_pending(BOARD), keys.verify_details(BOARD))

    def start_workers(self, count: int, **env: str) -> list[Proc]:
        settings = {"UPLOAD_MODE": "url", "PROBE_INTERVAL": "300", "VERIFY_GRACE": "2", "LOG_FORMAT": "json", **env}
        started = []
        for _ in range(count):
            self.runs += 1
            started.append(self.spawn(MIRO_SYNC + ["worker"], f"worker-{self.runs}", self.local.service_env(**settings)))
        for proc in started:
            wait_for(lambda proc=proc: '"worker.started"' in read(proc) or not proc.alive(), 60, what="a worker to start")
            assert proc.alive(), read(proc)[-3000:]
        self.workers += started
        return started

    def stop_workers(self) -> None:
        for proc in self.workers:
            proc.stop()
        self.workers.clear()

    def events(self, name: str) -> list[dict]:
        return [e for p in self.workers for e in events(read(p)) if e.get("event") == name]

    def tail(self) -> str:
        return "\n".join(read(p)[-2500:] for p in self.workers)

    def items(self, prefix: str) -> list[dict]:
        return [i for i in self.local.items() if i["data"]["title"].startswith(prefix)]

    def entries(self, prefix: str) -> dict[str, dict]:
        found = {}
        for path, raw in self.redis.hgetall(keys.ledger_paths(BOARD)).items():
            if path.decode().startswith(prefix):
                found[path.decode()] = json.loads(raw)
        return found

    def drop(self, prefix: str, count: int, start: int = 0) -> dict[str, bytes]:
        names = [f"{prefix}{i}.png" for i in range(start, start + count)]
        return {name: make_image(self.local.folder / name, "png", seed=zlib.crc32(name.encode())) for name in names}  # distinct bytes

    def warm_up(self, prefix: str) -> None:
        """One picture through a healthy tunnel: the workers' probe passes and is cached."""
        self.drop(prefix + "warm-", 1)
        wait_for(lambda: [e for e in self.entries(prefix + "warm-").values() if e["delivery"] == "verified"], 30,
                 what=lambda: "the warm-up picture to be verified\n" + self.tail())

    def circuit(self) -> dict | None:
        raw = self.redis.get(keys.TUNNEL_CIRCUIT)
        return json.loads(raw) if raw else None

    def pending(self) -> dict[str, float]:
        return {m.decode(): s for m, s in self.redis.zrange(keys.verify_pending(BOARD), 0, -1, withscores=True)}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("deferred")
    procs: list[Proc] = []

    def spawn(args, name, env=None):
        proc = Proc(args, root / f"{name}.log", env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        procs.append(proc)
        return proc

    local = LocalStack(root=root, spawn=spawn, workers=0)
    local.env.update({"UPLOAD_MODE": "url"})
    local.start(wait=False)
    wait_for(lambda: "stack.ready" in local.proc.output(), 60, what=lambda: local.proc.output()[-3000:])
    made = Stack(local, spawn)
    yield made
    for proc in reversed(procs):
        proc.stop()


@pytest.fixture
def deferred(stack):
    stack.reset()
    yield stack
    stack.stop_workers()


def test_a_worker_is_free_again_right_after_a_url_create(deferred):
    """One worker, a grace of 30 s: all three pictures are created, by URL, long before the first check."""
    deferred.start_workers(1, VERIFY_GRACE="30")
    deferred.warm_up("free-")
    deferred.local.set_tunnel_mode("warning-page")
    started = time.time()
    deferred.drop("free-", 3)
    wait_for(lambda: len(deferred.entries("free-")) == 4, 20, what=lambda: "three url creates\n" + deferred.tail())
    assert time.time() - started < 20  # a worker that waited for each check would need 60 s
    entries = {p: e for p, e in deferred.entries("free-").items() if "warm" not in p}
    assert {e["route"] for e in entries.values()} == {"url"}
    assert {e["delivery"] for e in entries.values()} == {"unverified"}
    pending = deferred.pending()
    assert {e["item_id"] for e in entries.values()} <= set(pending)
    assert all(pending[e["item_id"]] > e["at"] + 25 for e in entries.values())  # checked after the grace, not before
    assert not deferred.events("upload.repaired")


def test_a_deferred_verification_repairs_in_place(deferred):
    deferred.start_workers(2, CIRCUIT_FAILURES="100")
    deferred.warm_up("fix-")
    deferred.local.set_tunnel_mode("warning-page")
    expected = deferred.drop("fix-", 3)
    wait_for(lambda: len(deferred.items("fix-")) == 4, 20, what=deferred.tail)
    created = {i["data"]["title"]: (i["id"], i["position"]) for i in deferred.items("fix-")}
    assert not any(i["decodes"] for i in deferred.items("fix-") if "warm" not in i["data"]["title"])  # broken at first

    def all_repaired():
        entries = deferred.entries("fix-")
        return len(entries) == 4 and all(e["delivery"] == "repaired" for p, e in entries.items() if "warm" not in p)

    wait_for(all_repaired, 30, what=lambda: f"repairs: {deferred.entries('fix-')}\n{deferred.tail()}")
    items = deferred.items("fix-")
    assert len(items) == 4  # no second item
    assert {i["data"]["title"]: (i["id"], i["position"]) for i in items} == created  # same ids, same positions
    for item in items:
        if "warm" not in item["data"]["title"]:
            assert pixels(deferred.local.picture(item)) == expected[item["data"]["title"]]
    repaired = deferred.events("upload.repaired")
    assert len(repaired) == 3 and all(e.get("item_id") for e in repaired)
    assert deferred.pending() == {}


def test_a_worker_killed_between_create_and_verification_loses_nothing(deferred):
    """The worker that created three pictures by URL dies before their checks; another worker repairs them."""
    env = {"VERIFY_GRACE": "8", "CIRCUIT_FAILURES": "100"}
    [victim] = deferred.start_workers(1, **env)
    deferred.warm_up("kill-")
    deferred.local.set_tunnel_mode("warning-page")
    expected = deferred.drop("kill-", 3)
    wait_for(lambda: len(deferred.entries("kill-")) == 4, 20, what=deferred.tail)
    assert len(deferred.pending()) == 3, deferred.entries("kill-")
    os.killpg(victim.pid, signal.SIGKILL)
    victim.popen.wait(5)
    [survivor] = deferred.start_workers(1, **env)
    wait_for(lambda: all(e["delivery"] == "repaired" for p, e in deferred.entries("kill-").items() if "warm" not in p), 30,
             what=lambda: f"{deferred.entries('kill-')}\n{deferred.tail()}")
    items = deferred.items("kill-")
    titles = collections.Counter(i["data"]["title"] for i in items)
    assert set(titles) == set(expected) | {"kill-warm-0.png"} and max(titles.values()) == 1
    for item in items:
        assert item["decodes"], item
    assert len([e for e in events(read(survivor)) if e.get("event") == "upload.repaired"]) == 3  # the survivor did them
    assert deferred.pending() == {}


def test_the_circuit_opens_on_the_warning_page_and_closes_after_a_passing_probe(deferred):
    deferred.start_workers(2, PROBE_INTERVAL="5")  # a failed probe is trusted 5 s
    deferred.local.set_tunnel_mode("warning-page")
    deferred.drop("page-", 3)
    wait_for(lambda: len(deferred.entries("page-")) == 3, 20, what=deferred.tail)
    assert {e["route"] for e in deferred.entries("page-").values()} == {"file"}  # in UPLOAD_MODE=url
    circuit = deferred.circuit()
    assert circuit["state"] == "open" and circuit["reason"] == "warning-page" and circuit["until"] is None, circuit

    deferred.local.set_tunnel_mode("normal")
    wait_for(lambda: deferred.circuit()["state"] == "closed", 20, what=lambda: f"{deferred.circuit()}\n{deferred.tail()}")
    deferred.drop("page-", 1, start=3)
    wait_for(lambda: deferred.entries("page-").get("page-3.png", {}).get("delivery") == "verified", 20, what=deferred.tail)
    assert len(deferred.events("tunnel.circuit_open")) == 1
    assert len(deferred.events("tunnel.circuit_closed")) == 1


def test_k_failed_verifications_trip_the_circuit(deferred):
    deferred.start_workers(2, CIRCUIT_FAILURES="2", CIRCUIT_WINDOW="60", CIRCUIT_COOLDOWN="600")
    deferred.warm_up("trip-")
    deferred.local.set_tunnel_mode("warning-page")
    deferred.drop("trip-", 2)
    wait_for(lambda: (deferred.circuit() or {}).get("state") == "open", 30, what=lambda: f"{deferred.circuit()}\n{deferred.tail()}")
    circuit = deferred.circuit()
    assert circuit["reason"] == "verifications-failed" and circuit["until"] >= circuit["since"] + 600, circuit
    # The two pictures created by URL are still repaired; a new one goes by file.
    wait_for(lambda: [e["delivery"] for p, e in sorted(deferred.entries("trip-").items()) if "warm" not in p] == ["repaired"] * 2, 30,
             what=deferred.tail)
    deferred.drop("trip-", 1, start=2)
    wait_for(lambda: "trip-2.png" in deferred.entries("trip-"), 20, what=deferred.tail)
    assert deferred.entries("trip-")["trip-2.png"]["route"] == "file"
    assert len(deferred.events("tunnel.circuit_open")) == 1
