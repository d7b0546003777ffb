"""Deleted files: ON_DELETE keep | remove | archive, and the mass-delete guard."""

from __future__ import annotations

import time

from shared.layout import ARCHIVE_TITLE
from tests.fixtures.procs import wait_for
from tests.fixtures.stack import make_image


def all_items(stack) -> list[dict]:
    import requests

    r = requests.get(f"{stack.api}/_sandbox/boards/sandbox-board=/items", timeout=5)
    r.raise_for_status()
    return r.json()["items"]


def start_with(stack, count: int, **env) -> list[dict]:
    stack.env.update({"DELETE_SETTLE_SECONDS": "1", "FOLDERS": "flat", **env})
    stack.start()
    for i in range(count):
        make_image(stack.folder / f"p{i}.png", seed=i)
    return stack.wait_items(count)


def deletes(stack) -> list[dict]:
    return [r for r in stack.requests() if r["method"] == "DELETE"]


def test_keep_leaves_the_item_and_a_rescan_does_not_bring_it_back(local_stack):
    local_stack.env["RESCAN_INTERVAL"] = "1"
    items = start_with(local_stack, 2)
    (local_stack.folder / "p0.png").unlink()
    wait_for(lambda: "file.deleted" in local_stack.log(), 30, what=lambda: local_stack.log()[-3000:])
    time.sleep(2.5)  # rescans pass
    assert {i["id"] for i in local_stack.items()} == {i["id"] for i in items}
    ledger = local_stack.ledger()
    assert set(ledger.all_items()) == {"p1.png"} and ledger.released("p0.png")["policy"] == "keep"
    assert deletes(local_stack) == [] and local_stack.log().count("file.deleted") == 1


def test_remove_deletes_the_item_once(local_stack):
    items = start_with(local_stack, 2, ON_DELETE="remove")
    gone = next(i for i in items if i["data"]["title"] == "p0.png")
    (local_stack.folder / "p0.png").unlink()
    wait_for(lambda: {i["data"]["title"] for i in local_stack.items()} == {"p1.png"}, 30, what=lambda: local_stack.log()[-3000:])
    time.sleep(1.5)
    assert [r["path"].rsplit("/", 1)[-1] for r in deletes(local_stack)] == [gone["id"]]
    assert set(local_stack.ledger().all_items()) == {"p1.png"}


def test_archive_moves_the_item_into_the_archive_frame_left_of_the_grid(local_stack):
    items = start_with(local_stack, 2, ON_DELETE="archive")
    gone = next(i for i in items if i["data"]["title"] == "p0.png")
    (local_stack.folder / "p0.png").unlink()

    def archived():
        board = all_items(local_stack)
        frames = {i["id"]: i for i in board if i["type"] == "frame"}
        item = next(i for i in board if i["id"] == gone["id"])
        parent = (item.get("parent") or {}).get("id")
        return (item, frames[parent]) if parent in frames else None

    item, frame = wait_for(archived, 30, what=lambda: local_stack.log()[-3000:])
    assert frame["data"]["title"] == ARCHIVE_TITLE
    assert frame["position"]["x"] + frame["geometry"]["width"] / 2 < 0  # left of the root grid (origin 0)
    rel = item["position"]
    assert 0 < rel["x"] < frame["geometry"]["width"] and 0 < rel["y"] < frame["geometry"]["height"]
    assert deletes(local_stack) == [] and len(local_stack.items()) == 2


def test_the_guard_holds_a_mass_delete_with_one_line(local_stack):
    items = start_with(local_stack, 6, ON_DELETE="remove", MAX_DELETE="3")
    for i in range(5):
        (local_stack.folder / f"p{i}.png").unlink()
    wait_for(lambda: "delete.held" in local_stack.log(), 30, what=lambda: local_stack.log()[-3000:])
    time.sleep(2)
    assert local_stack.log().count("delete.held") == 1 and "count=5" in local_stack.log()
    held = next(line for line in local_stack.log().splitlines() if "delete.held" in line)
    assert "miro-sync check --fix --max-delete N" in held, held  # real deletions, more than the limit: how to apply them
    assert deletes(local_stack) == [] and len(local_stack.items()) == len(items)
    assert len(local_stack.ledger().all_items()) == 6  # nothing forgotten either


def test_a_folder_that_empties_at_once_deletes_nothing(local_stack):
    items = start_with(local_stack, 3, ON_DELETE="remove")
    for i in range(3):
        (local_stack.folder / f"p{i}.png").unlink()  # as an unmounted share looks
    wait_for(lambda: "delete.held" in local_stack.log(), 30, what=lambda: local_stack.log()[-3000:])
    time.sleep(1.5)
    held = next(line for line in local_stack.log().splitlines() if "delete.held" in line)
    # What an unmounted share (or a typo'd folder) causes is never offered for applying: check the mount.
    assert "watch folder missing or empty" in held and "mounted" in held and "--fix" not in held, held
    assert deletes(local_stack) == [] and len(local_stack.items()) == len(items)
