"""Drills for the operations beyond create: update (edit), retitle/move (rename), delete, archive, frame create.

Each keeps the create's promises: a worker SIGKILLed at any point leaves no duplicate item, no
lost update and no double delete; a Redis restart mid-burst loses nothing; 5xx are retried.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import time

import pytest

from tests.fixtures.procs import wait_for

from .harness import drop_file, picture, read


def shas(rig) -> dict[str, tuple[str, str]]:
    """title -> (item id, sha256 of its bytes)."""
    return {i["data"]["title"]: (i["id"], i["bytes_sha256"]) for i in rig.items()}


def expect_board(rig, expected: dict[str, bytes], timeout: float = 90) -> None:
    want = {name: hashlib.sha256(data).hexdigest() for name, data in expected.items()}
    wait_for(lambda: {t: s for t, (_, s) in shas(rig).items()} == want, timeout, interval=0.3,
             what=lambda: f"the board to show the last bytes\n{sorted(shas(rig))[:5]}\n" + rig.tail())


def in_flight(rig, method: str, suffix: str):
    return [r for r in rig.sandbox.requests() if r["method"] == method and r["path"].endswith(suffix) and r["status"] is None]


@pytest.mark.slow
def test_sigkill_during_an_edit_burst_loses_no_update_and_makes_no_item(rig):
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    rig.start_watcher()
    workers = rig.start_workers(3)
    expected = rig.drop(30)
    rig.wait_items(30)
    rig.wait_idle()
    ids = {i["id"] for i in rig.items()}
    rig.sandbox.set_faults(latency_ms=150)
    for name in expected:  # a new version of every file
        expected[name] = picture(int(name[4:8]) + 5000)
        drop_file(rig.folder / name, expected[name])
    for kill in range(4):
        time.sleep(rng.uniform(0.3, 0.9))
        victim = rng.choice([w for w in workers if w.alive()])
        os.killpg(victim.pid, signal.SIGKILL)
        victim.popen.wait(5)
        workers.remove(victim)
        workers.append(rig.start("worker", name=f"respawn{kill}"))
    expect_board(rig, expected)
    rig.wait_idle()
    assert {i["id"] for i in rig.items()} == ids, f"an item was made or lost (seed {seed})"
    assert rig.failed_jobs() == 0, f"seed {seed}"


@pytest.mark.slow
def test_redis_restart_during_edits_and_renames(rig, redis_server):
    rig.start_watcher()
    rig.start_workers(2)
    expected = rig.drop(20)
    rig.wait_items(20)
    rig.wait_idle()
    ids = {i["id"] for i in rig.items()}
    rig.sandbox.set_faults(latency_ms=30)
    names = sorted(expected)
    for name in names[:10]:
        expected[name] = picture(int(name[4:8]) + 7000)
        drop_file(rig.folder / name, expected[name])
    for name in names[10:]:
        os.rename(rig.folder / name, rig.folder / f"renamed-{name}")
        expected[f"renamed-{name}"] = expected.pop(name)
    redis_server.stop()
    time.sleep(3)
    redis_server.start()
    expect_board(rig, expected)
    rig.wait_idle()
    assert {i["id"] for i in rig.items()} == ids
    assert rig.failed_jobs() == 0
    for proc in rig.procs.values():
        assert proc.alive(), f"{proc.log_path.name} died with Redis:\n{read(proc)[-3000:]}"


@pytest.mark.slow
def test_server_errors_on_update_move_and_delete_are_retried(rig):
    rig.env.update({"ON_DELETE": "remove", "DELETE_SETTLE_SECONDS": "0.5"})
    rig.start_watcher()
    rig.start_workers(2)
    expected = rig.drop(6)
    rig.wait_items(6)
    rig.wait_idle()
    names = sorted(expected)
    rig.sandbox.set_faults(error_status=500, error_for_seconds=3)
    for name in names[:2]:
        expected[name] = picture(int(name[4:8]) + 9000)
        drop_file(rig.folder / name, expected[name])
    for name in names[2:4]:
        os.rename(rig.folder / name, rig.folder / f"moved-{name}")
        expected[f"moved-{name}"] = expected.pop(name)
    for name in names[4:]:
        os.unlink(rig.folder / name)
        del expected[name]
    expect_board(rig, expected)
    rig.wait_idle()
    assert rig.failed_jobs() == 0
    assert rig.events("upload.retry"), "the outage was not met (the drill proves nothing)"


def test_killed_during_a_frame_create_makes_one_frame(rig):
    rig.start_watcher()
    [worker] = rig.start_workers(1)
    rig.sandbox.set_faults(latency_ms=1500)
    (rig.folder / "sub").mkdir()
    drop_file(rig.folder / "sub" / "a.png", picture(1))
    wait_for(lambda: in_flight(rig, "POST", "/frames"), 20, what="the frame create")
    os.killpg(worker.pid, signal.SIGKILL)
    worker.popen.wait(5)
    wait_for(lambda: not in_flight(rig, "POST", "/frames"), 10, what="Miro to finish the create")
    rig.sandbox.set_faults(latency_ms=0)
    rig.start_workers(1)
    rig.wait_items(1, timeout=30)
    rig.wait_idle()
    frames = [i for i in rig.sandbox.items(rig.sandbox.board_id) if i["type"] == "frame"]
    assert [f["data"]["title"] for f in frames] == ["sub"]
    assert rig.items()[0]["parent"]["id"] == frames[0]["id"]
    assert rig.events("frame.recovered")
    assert rig.failed_jobs() == 0


def test_killed_during_a_delete_deletes_once(rig):
    rig.env.update({"ON_DELETE": "remove", "DELETE_SETTLE_SECONDS": "0.3"})
    rig.start_watcher()
    [worker] = rig.start_workers(1)
    expected = rig.drop(3)
    rig.wait_items(3)
    rig.wait_idle()
    gone = sorted(expected)[0]
    gone_id = next(i["id"] for i in rig.items() if i["data"]["title"] == gone)
    rig.sandbox.set_faults(latency_ms=1500)
    os.unlink(rig.folder / gone)
    wait_for(lambda: in_flight(rig, "DELETE", gone_id), 20, what="the delete call")
    os.killpg(worker.pid, signal.SIGKILL)
    worker.popen.wait(5)
    wait_for(lambda: not in_flight(rig, "DELETE", gone_id), 10, what="Miro to finish the delete")
    rig.sandbox.set_faults(latency_ms=0)
    rig.start_workers(1)
    wait_for(lambda: rig.events("file.deleted"), 30, what=lambda: rig.tail())
    rig.wait_idle()
    deletes = [r for r in rig.sandbox.requests() if r["method"] == "DELETE"]
    assert {r["path"].rsplit("/", 1)[-1] for r in deletes} == {gone_id}  # never another item
    assert [r["status"] for r in deletes][0] == 204 and all(r["status"] == 404 for r in deletes[1:])
    assert sorted(i["data"]["title"] for i in rig.items()) == sorted(expected)[1:]
    assert rig.failed_jobs() == 0


def test_a_file_deleted_while_its_upload_is_in_flight_is_still_deleted(rig):
    """The delete event comes before the ledger knows the item: the watcher looks the path up again."""
    rig.env.update({"ON_DELETE": "remove", "DELETE_SETTLE_SECONDS": "0.5"})
    rig.start_watcher()
    rig.start_workers(1)
    rig.drop(1)  # a folder left empty would be held as "missing or empty", rightly
    rig.wait_items(1)
    rig.wait_idle()
    rig.sandbox.set_faults(latency_ms=1500)
    drop_file(rig.folder / "brief.png", picture(3))
    wait_for(lambda: in_flight(rig, "POST", "/images"), 20, what="the create call")
    os.unlink(rig.folder / "brief.png")
    wait_for(lambda: rig.events("file.deleted"), 30, what=lambda: rig.tail())
    rig.wait_idle()
    assert [i["data"]["title"] for i in rig.items()] == ["img-0000.png"] and rig.failed_jobs() == 0
