"""The board follows the folder: edits update the item in place, renames keep it, the upgrade re-uploads nothing."""

from __future__ import annotations

import os
import time

import pytest

from shared import keys
from shared.ledger import Ledger
from tests.fixtures.ledger_v1 import write_v1
from tests.fixtures.procs import wait_for
from tests.fixtures.stack import BOARD, make_image, pixels


def one_item(stack, title=None, timeout=60):
    def ready():
        items = stack.items()
        if len(items) == 1 and (title is None or items[0]["data"]["title"] == title):
            return items[0]
        return None

    return wait_for(ready, timeout, what=lambda: f"one item {title or ''}\n{stack.items()}\n" + stack.log()[-3000:])


def wait_pixels(stack, expected: bytes, timeout=60):
    return wait_for(lambda: (lambda items: items[0] if len(items) == 1 and pixels(stack.picture(items[0])) == expected else None)(stack.items()),
                    timeout, what=lambda: "the new pixels on the one item\n" + stack.log()[-3000:])


def creates(stack) -> int:
    return sum(1 for r in stack.requests() if r["method"] == "POST" and r["path"].endswith("/images"))


def test_edit_patches_the_same_item_in_its_cell_with_the_new_pixels(local_stack):
    local_stack.start()
    make_image(local_stack.folder / "shot.png", size=(64, 48), seed=1)
    before = one_item(local_stack, "shot.png")
    assert before["geometry"]["width"] == 400  # landscape: the width binds
    new = make_image(local_stack.folder / "shot.png", size=(48, 96), seed=2)  # now portrait
    after = wait_pixels(local_stack, new)
    assert after["id"] == before["id"] and after["position"] == before["position"]
    assert after["geometry"]["height"] == 400 and after["geometry"]["width"] == 200  # fitted again for the new aspect ratio
    assert creates(local_stack) == 1
    assert any(r["method"] == "PATCH" for r in local_stack.requests())
    assert "upload.updated" in local_stack.log()


def test_a_save_storm_ends_with_the_last_bytes_in_a_few_patches(local_stack):
    local_stack.start()
    path = local_stack.folder / "storm.png"
    make_image(path, seed=0)
    first = one_item(local_stack, "storm.png")
    for seed in range(1, 11):  # an editor saving ten times in about a second
        last = make_image(path, seed=seed)
        time.sleep(0.1)
    item = wait_pixels(local_stack, last)
    time.sleep(2)  # nothing more may arrive
    item = one_item(local_stack, "storm.png")
    assert item["id"] == first["id"] and pixels(local_stack.picture(item)) == last
    patches = sum(1 for r in local_stack.requests() if r["method"] == "PATCH")
    assert 1 <= patches <= 6, patches
    assert creates(local_stack) == 1


def test_rename_keeps_the_item_retitles_it_and_uploads_nothing(local_stack):
    local_stack.start()
    make_image(local_stack.folder / "verify.jpeg", kind="jpeg", seed=3)
    before = one_item(local_stack, "verify.jpeg")
    since = time.time()
    os.rename(local_stack.folder / "verify.jpeg", local_stack.folder / "verified-renamed.jpeg")
    after = one_item(local_stack, "verified-renamed.jpeg")
    assert after["id"] == before["id"] and after["position"] == before["position"]
    calls = [(r["method"], r["path"].rsplit("/", 2)[-2]) for r in local_stack.requests(since) if r["path"].startswith("/v2")]
    assert calls == [("PATCH", "images")], calls  # one Level-2 call, no upload
    assert creates(local_stack) == 1
    entries = local_stack.ledger().all_items()
    assert set(entries) == {"verified-renamed.jpeg"} and entries["verified-renamed.jpeg"].item_id == before["id"]
    assert "file.duplicate" not in local_stack.log()


def test_rename_seen_as_delete_then_create_is_caught_by_content(local_stack):
    local_stack.env["WATCH_MODE"] = "polling"
    local_stack.start()
    data = (local_stack.folder / "a.png")
    make_image(data, seed=4)
    before = one_item(local_stack, "a.png")
    raw = data.read_bytes()
    data.unlink()  # as a copy across mounts does: the old one goes, a new one comes
    (local_stack.folder / "b.png").write_bytes(raw)
    after = one_item(local_stack, "b.png")
    assert after["id"] == before["id"] and creates(local_stack) == 1


@pytest.fixture
def own_redis(tmp_path):
    from tests.fixtures.redis import RedisServer

    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def test_upgrade_from_the_first_ledger_layout_uploads_nothing_again(local_stack, own_redis):
    """Fill Redis as the code before the path model left it, then start this code on it."""
    local_stack.env["REDIS_URL"] = own_redis.url
    local_stack.start()
    names = ["one.png", "two.png", "sub/three.png"]
    (local_stack.folder / "sub").mkdir()
    for i, name in enumerate(names):
        make_image(local_stack.folder / name, seed=i)
    local_stack.wait_items(3)
    client = own_redis.client()
    ledger = Ledger(client, BOARD)
    wait_for(lambda: ledger.count() == 3, 30, what="the ledger")
    ids_before = {i["id"] for i in local_stack.items()}
    assert local_stack.stop() == 0
    # Rewrite the ledger as the first layout (content -> item), exactly as that code wrote it.
    entries = ledger.all_items()
    for key in client.keys(f"{keys.PREFIX}:board:{BOARD}:*"):
        if not key.decode().endswith(("next-slot",)):
            client.delete(key)
    for rel, e in entries.items():
        write_v1(client, BOARD, rel, e.size, e.mtime_ns, e.sha256, {"item_id": e.item_id, "slot": e.slot})
    os.link(local_stack.folder / "one.png", local_stack.folder / "copy-of-one.png")  # same bytes, same mtime
    st = os.stat(local_stack.folder / "copy-of-one.png")
    write_v1(client, BOARD, "copy-of-one.png", st.st_size, st.st_mtime_ns, entries["one.png"].sha256, None)

    local_stack.start()
    wait_for(lambda: local_stack.log().count("watch.scan") >= 2, 60,
             what=lambda: local_stack.log()[-3000:])
    time.sleep(3)  # nothing may be uploaded
    assert "ledger.migrated" in local_stack.log()
    writes = [r for r in local_stack.requests() if r["method"] in ("POST", "PATCH", "DELETE")]
    assert writes == []
    assert {i["id"] for i in local_stack.items()} == ids_before
    after = ledger.all_items()
    assert {rel: e.item_id for rel, e in after.items() if e.owner} == {rel: e.item_id for rel, e in entries.items()}
    assert after["copy-of-one.png"].dup_of == "one.png"
    assert client.get(keys.ledger_schema(BOARD)) == b"2"
    # ...and the upgraded entries work: an edit patches the very item.
    new = make_image(local_stack.folder / "two.png", seed=9)
    item_two = next(i for i in local_stack.items() if i["data"]["title"] == "two.png")
    wait_for(lambda: pixels(local_stack.picture(next(i for i in local_stack.items() if i["id"] == item_two["id"]))) == new, 60,
             what=lambda: local_stack.log()[-3000:])
    assert len(local_stack.items()) == 3


def test_renamed_back_and_edited_after_a_board_delete(local_stack):
    local_stack.start()
    make_image(local_stack.folder / "x.png", seed=7)
    first = one_item(local_stack, "x.png")
    os.rename(local_stack.folder / "x.png", local_stack.folder / "y.png")
    one_item(local_stack, "y.png")
    os.rename(local_stack.folder / "y.png", local_stack.folder / "x.png")  # same version as the first upload
    back = one_item(local_stack, "x.png")
    assert back["id"] == first["id"] and creates(local_stack) == 1
    # A person deletes the item on the board; a new version of the file brings it back in the same cell.
    import requests

    from tests.fixtures.stack import TOKEN

    requests.delete(f"{local_stack.api}/v2/boards/{BOARD}/items/{first['id']}", headers={"Authorization": f"Bearer {TOKEN}"},
                    timeout=5).raise_for_status()
    new = make_image(local_stack.folder / "x.png", seed=8)
    again = wait_pixels(local_stack, new)
    assert again["id"] != first["id"] and again["position"] == first["position"]
    assert "upload.recreated" in local_stack.log()
