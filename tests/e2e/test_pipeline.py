"""The whole pipeline as local processes (`miro-sync up --sandbox`): each picture once, in its own cell, same pixels.

Every "nothing more may arrive" check waits for the pipeline to go idle first (no job queued,
running or scheduled, counts still), so a late duplicate is on the board before the board is read.

Tests that only need a running file-mode stack share one (``shared_stack``): each looks at the
items it added (the board minus what was there when it began) and uses pictures of its own, while
"never twice" and "one item per cell" are checked over the whole board.
"""

from __future__ import annotations

import collections
import io
import time

import pytest
from PIL import Image

from tests.fixtures.procs import wait_for
from tests.fixtures.stack import LocalStack, make_image, pixels

NAMES = [
    ("plain.png", "png"), ("photo one.jpg", "jpeg"), ("hash#tag.png", "png"), ("100%.png", "png"),
    ("why?.jpeg", "jpeg"), ("Ünïcødé straße.png", "png"), ("日本語の写真.jpg", "jpeg"), ("emoji 🎉📷.png", "png"),
    ("Ελληνικά.png", "png"), ("a&b=c+d.jpg", "jpeg"),
]


def drop_ten(folder, start=0):
    return {name: make_image(folder / name, kind, seed=start + i) for i, (name, kind) in enumerate(NAMES)}


def assert_board_matches(stack, expected: dict[str, bytes], before: frozenset[str] = frozenset()):
    """The items added since ``before`` (item ids) are exactly ``expected``; the whole board has no twin, no shared cell."""
    board = stack.items()
    all_titles = collections.Counter(i["data"]["title"] for i in board)
    assert {t: c for t, c in all_titles.items() if c > 1} == {}, "an item appears twice"
    positions = {(i["position"]["x"], i["position"]["y"]) for i in board}
    assert len(positions) == len(board), "two items share a grid cell"
    items = [i for i in board if i["id"] not in before]
    assert sorted(i["data"]["title"] for i in items) == sorted(expected)
    for item in items:
        assert pixels(stack.picture(item)) == expected[item["data"]["title"]], item["data"]["title"]


@pytest.fixture(scope="module")
def module_stack(module_spawn):
    stack = LocalStack(root=module_spawn.folder, spawn=module_spawn)
    stack.start()
    yield stack
    stack.stop()


@pytest.fixture
def shared_stack(module_stack):
    """The module's file-mode stack, idle; ``.before`` holds the ids of the items already there."""
    module_stack.wait_idle(quiet=0.5)
    module_stack.before = frozenset(i["id"] for i in module_stack.items())
    return module_stack


def test_ten_images_each_once_in_distinct_cells_with_same_pixels_file(shared_stack):
    expected = drop_ten(shared_stack.folder)
    shared_stack.wait_items(len(shared_stack.before) + 10)
    shared_stack.wait_idle()  # nothing more may arrive
    assert_board_matches(shared_stack, expected, shared_stack.before)
    # The sandbox records a fetch only for items Miro made from a URL.
    assert {"url" if item["fetched_url"] else "file" for item in shared_stack.items()} == {"file"}
    assert {entry.route for entry in shared_stack.ledger().all_items().values()} == {"file"}


def test_ten_images_each_once_in_distinct_cells_with_same_pixels_url(local_stack):
    local_stack.env["UPLOAD_MODE"] = "url"
    local_stack.start()
    expected = drop_ten(local_stack.folder)
    local_stack.wait_items(10)
    local_stack.wait_idle()  # nothing more may arrive
    assert_board_matches(local_stack, expected)
    routes = {"url" if item["fetched_url"] else "file" for item in local_stack.items()}
    assert routes == {"url"}, routes
    assert {entry.route for entry in local_stack.ledger().all_items().values()} == {"url"}


def test_restart_uploads_nothing_twice_and_catches_up(local_stack):
    local_stack.start()
    expected = drop_ten(local_stack.folder)
    local_stack.wait_items(10)
    assert local_stack.stop() == 0
    # While everything (the private Redis included) is down, three more pictures arrive.
    for i, name in enumerate(["late 1.png", "late 2.png", "late 3.png"]):
        expected[name] = make_image(local_stack.folder / name, "png", seed=50 + i)
    local_stack.start()
    local_stack.wait_items(13)
    local_stack.wait_idle()
    assert_board_matches(local_stack, expected)


def test_slowly_written_file_is_uploaded_once_complete(shared_stack):
    local_stack = shared_stack
    im = Image.new("RGB", (300, 200))
    im.putdata([(x % 256, y % 256, (x + y) % 256) for y in range(200) for x in range(300)])
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    data = buf.getvalue()
    path = local_stack.folder / "slow.png"
    with open(path, "wb") as fh:
        for i in range(0, len(data), len(data) // 8 + 1):
            fh.write(data[i : i + len(data) // 8 + 1])
            fh.flush()
            time.sleep(0.3)
    local_stack.wait_items(len(local_stack.before) + 1)
    local_stack.wait_idle()
    assert_board_matches(local_stack, {"slow.png": pixels(data)}, local_stack.before)


def test_bad_files_reported_once_and_never_reach_miro(shared_stack):
    local_stack = shared_stack
    (local_stack.folder / "notes.png").write_text("this is not a picture\n" * 20)
    (local_stack.folder / "empty.png").write_bytes(b"")
    good = io.BytesIO()
    Image.new("RGB", (200, 200), (10, 200, 30)).save(good, format="JPEG")
    (local_stack.folder / "cut.jpg").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    expected = {"fine.png": make_image(local_stack.folder / "fine.png", "png", seed=103)}
    local_stack.wait_items(len(local_stack.before) + 1)
    wait_for(lambda: all(f"file={n}" in local_stack.log() or f'file="{n}"' in local_stack.log() for n in ("notes.png", "empty.png", "cut.jpg")), 20,
             what=lambda: "a line for each bad file\n" + local_stack.log()[-3000:])
    local_stack.wait_idle()
    assert_board_matches(local_stack, expected, local_stack.before)
    log = local_stack.log()
    for name in ("notes.png", "empty.png", "cut.jpg"):
        lines = [line for line in log.splitlines() if "file.rejected" in line and (f"file={name}" in line or f'file="{name}"' in line)]
        assert len(lines) == 1, (name, lines)
        assert "reason=" in lines[0]


def test_killing_up_itself_leaves_no_orphans_and_the_next_run_resumes(local_stack):
    import os
    import re
    import signal

    local_stack.start()
    expected = drop_ten(local_stack.folder)
    local_stack.wait_items(10)
    # Every child leads its own process group: follow each one started (and what it started).
    groups = {int(pid) for pid in re.findall(r"process.started .*?pid=(\d+)", local_stack.proc.output())}
    assert len(groups) >= 5, local_stack.proc.output()[-2000:]
    os.kill(local_stack.proc.pid, signal.SIGKILL)  # only `up`: its children must notice and go
    local_stack.proc.popen.wait(10)

    def gone(group: int) -> bool:
        try:
            os.killpg(group, 0)
            return False
        except ProcessLookupError:
            return True

    wait_for(lambda: all(gone(g) for g in groups), 10, what=lambda: f"every process of the killed stack to exit: {[g for g in groups if not gone(g)]}")
    local_stack.start()
    expected["after.png"] = make_image(local_stack.folder / "after.png", "png", seed=77)
    local_stack.wait_items(11)
    local_stack.wait_idle()
    assert_board_matches(local_stack, expected)


def test_up_restarts_a_killed_worker_and_stops_promptly_on_ctrl_c(local_stack):
    import os
    import re
    import signal

    import psutil

    local_stack.start()
    output = local_stack.proc.output
    worker = int(re.findall(r"process.started name=worker-1 pid=(\d+)", output())[-1])
    os.kill(worker, signal.SIGKILL)
    # One line says which process went, how, and when it comes back; then it is back.
    wait_for(lambda: re.search(rf'process.exited name=worker-1 pid={worker} exit="signal SIGKILL" restart_in_s=[\d.]+', output()), 10,
             what=lambda: "the exit to be reported\n" + output()[-2000:])
    wait_for(lambda: len(re.findall(r"process.started name=worker-1 ", output())) == 2, 10, what=lambda: "a new worker-1\n" + output()[-2000:])
    expected = drop_ten(local_stack.folder)
    local_stack.wait_items(10)
    local_stack.wait_idle()
    assert_board_matches(local_stack, expected)

    tree = [psutil.Process(local_stack.proc.pid), *psutil.Process(local_stack.proc.pid).children(recursive=True)]
    started = time.monotonic()
    os.killpg(local_stack.proc.pid, signal.SIGINT)  # what a terminal sends on Ctrl-C
    _, alive = psutil.wait_procs(tree, timeout=10)
    assert not alive, [p.cmdline() for p in alive]
    assert local_stack.proc.popen.wait(1) == 0
    assert time.monotonic() - started < 10
    assert "process.killed" not in output()


def test_a_picture_that_kills_its_worker_costs_that_picture_alone_under_up(local_stack):
    """`up --workers 2`, twenty good pictures and one whose job kills whatever worker runs it (the
    test plays the crash: it SIGKILLs the worker running that job, as a decoder crash or the OOM
    killer would). `up` restarts each, the twenty arrive once, the third death quarantines the
    picture and `status --json` names it with the reason."""
    import json
    import os
    import re
    import signal
    import subprocess
    import threading

    from services.worker import rqcompat
    from shared.jobs import job_id, upload_queue
    from tests.fixtures.idle import QUEUE
    from tests.fixtures.procs import MIRO_SYNC

    local_stack.start()
    queue = upload_queue(local_stack.ledger().redis, QUEUE)
    poison = local_stack.folder / "poison.bmp"
    Image.effect_noise((3000, 2000), 40).convert("RGB").save(poison, "BMP")  # slow to convert: the kill lands first
    st = poison.stat()
    target = job_id(poison.name, st.st_size, st.st_mtime_ns)
    kills: list[int] = []
    done = threading.Event()

    def kill_whoever_runs_it() -> None:
        while not done.wait(0.02):
            for jid, execution_id in rqcompat.started_entries(queue):
                _, worker = rqcompat.execution_worker(queue.connection, jid, execution_id)
                pid = int(worker.rsplit("-", 2)[-2]) if jid == target and worker else None
                # Read after the registry: RQ takes the job out of its intermediate list once it runs our code.
                if pid and pid not in kills and target not in rqcompat.intermediate_job_ids(queue):
                    try:
                        os.killpg(pid, signal.SIGKILL)  # each worker of `up` leads its own process group
                        kills.append(pid)
                    except ProcessLookupError:
                        pass

    killer = threading.Thread(target=kill_whoever_runs_it, daemon=True)
    killer.start()
    try:
        expected = {f"good-{i:02d}.png": make_image(local_stack.folder / f"good-{i:02d}.png", "png", seed=200 + i) for i in range(20)}
        local_stack.wait_items(20, timeout=90)

        def status() -> dict:
            done_ = subprocess.run(MIRO_SYNC + ["status", "--json"], env={"PATH": "/usr/bin:/bin", **local_stack.service_env()},
                                   capture_output=True, text=True, timeout=60)
            return json.loads(done_.stdout)

        wait_for(lambda: any(r["path"] == poison.name for r in status()["recent_rejections"]), 90,
                 what=lambda: f"the picture to be quarantined ({len(kills)} kills)\n" + local_stack.proc.output()[-3000:])
        local_stack.wait_idle()
    finally:
        done.set()
        killer.join(5)
    assert len(kills) == 3, "the third death ends it: no worker takes it again"
    assert_board_matches(local_stack, expected)
    [rejection] = [r for r in status()["recent_rejections"] if r["path"] == poison.name]
    assert rejection["reason"] == "a worker died 3 times on this file" and rejection["at"]
    assert local_stack.proc.alive(), "up goes on"
    output = local_stack.proc.output()
    assert len(re.findall(r"process.exited name=worker-\d", output)) == 3
    assert status()["workers_alive"] >= 1
