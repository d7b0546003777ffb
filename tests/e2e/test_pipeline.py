"""Issue 3 acceptance: the whole pipeline as local processes against the sandbox."""

from __future__ import annotations

import collections
import io
import time

import pytest
from PIL import Image

from tests.fixtures.procs import wait_for
from tests.fixtures.stack import make_image, pixels

NAMES = [
    ("plain.png", "png"), ("photo one.jpg", "jpeg"), ("hash#tag.png", "png"), ("100%.png", "png"),
    ("why?.jpeg", "jpeg"), ("Ünïcødé straße.png", "png"), ("日本語の写真.jpg", "jpeg"), ("emoji 🎉📷.png", "png"),
    ("Ελληνικά.png", "png"), ("a&b=c+d.jpg", "jpeg"),
]


def drop_ten(folder, start=0):
    return {name: make_image(folder / name, kind, seed=start + i) for i, (name, kind) in enumerate(NAMES)}


def assert_board_matches(stack, expected: dict[str, bytes]):
    items = stack.items()
    titles = collections.Counter(i["data"]["title"] for i in items)
    assert {t: c for t, c in titles.items() if c > 1} == {}, "an item appears twice"
    assert set(titles) == set(expected)
    positions = {(i["position"]["x"], i["position"]["y"]) for i in items}
    assert len(positions) == len(items), "two items share a grid cell"
    for item in items:
        assert pixels(stack.picture(item)) == expected[item["data"]["title"]], item["data"]["title"]


@pytest.mark.parametrize("mode", ["file", "url"])
def test_ten_images_each_once_in_distinct_cells_with_same_pixels(local_stack, mode):
    local_stack.env["UPLOAD_MODE"] = mode
    local_stack.start()
    expected = drop_ten(local_stack.folder)
    local_stack.wait_items(10)
    time.sleep(1)  # nothing more may arrive
    assert_board_matches(local_stack, expected)
    # The sandbox records a fetch only for items Miro made from a URL.
    routes = {"url" if item["fetched_url"] else "file" for item in local_stack.items()}
    assert routes == {mode}, routes
    assert {entry.route for entry in local_stack.ledger().all_items().values()} == {mode}


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
    time.sleep(2)
    assert_board_matches(local_stack, expected)


def test_slowly_written_file_is_uploaded_once_complete(local_stack):
    local_stack.start()
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
    items = local_stack.wait_items(1)
    time.sleep(2)
    items = local_stack.items()
    assert len(items) == 1
    assert pixels(local_stack.picture(items[0])) == pixels(data)


def test_bad_files_reported_once_and_never_reach_miro(local_stack):
    local_stack.start()
    (local_stack.folder / "notes.png").write_text("this is not a picture\n" * 20)
    (local_stack.folder / "empty.png").write_bytes(b"")
    good = io.BytesIO()
    Image.new("RGB", (200, 200), (10, 200, 30)).save(good, format="JPEG")
    (local_stack.folder / "cut.jpg").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    expected = {"fine.png": make_image(local_stack.folder / "fine.png", "png", seed=3)}
    local_stack.wait_items(1)
    wait_for(lambda: all(f"file={n}" in local_stack.log() or f'file="{n}"' in local_stack.log() for n in ("notes.png", "empty.png", "cut.jpg")), 20,
             what=lambda: "a line for each bad file\n" + local_stack.log()[-3000:])
    time.sleep(1.5)
    assert_board_matches(local_stack, expected)
    log = local_stack.log()
    for name in ("notes.png", "empty.png", "cut.jpg"):
        lines = [line for line in log.splitlines() if "file.rejected" in line and (f"file={name}" in line or f'file="{name}"' in line)]
        assert len(lines) == 1, (name, lines)
        assert "reason=" in lines[0]


def test_killing_up_itself_leaves_no_orphans_and_the_next_run_resumes(local_stack):
    import os
    import signal

    local_stack.start()
    expected = drop_ten(local_stack.folder)
    local_stack.wait_items(10)
    group = local_stack.proc.pid
    os.kill(group, signal.SIGKILL)  # only `up`: its children must notice and go
    local_stack.proc.popen.wait(10)  # reap it, so only live children keep the group alive

    def group_gone():
        try:
            os.killpg(group, 0)
            return False
        except ProcessLookupError:
            return True

    wait_for(group_gone, 30, what="every process of the killed stack to exit")
    local_stack.start()
    expected["after.png"] = make_image(local_stack.folder / "after.png", "png", seed=77)
    local_stack.wait_items(11)
    time.sleep(1)
    assert_board_matches(local_stack, expected)
