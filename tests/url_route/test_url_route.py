"""The url route is trusted only when verified, and repaired in place when Miro got ngrok's warning page."""

from __future__ import annotations

import io
import time

import pytest
import rq
from PIL import Image, UnidentifiedImageError
from rq.serializers import JSONSerializer

from shared import signing
from shared.layout import slot_center
from shared.miro import MiroClient
from shared.settings import Grid
from tests.fixtures.procs import wait_for
from tests.fixtures.stack import BOARD, TOKEN, make_image, pixels

GRID = Grid(columns=10, cell_width=440, cell_height=440, padding=20, origin_x=0, origin_y=0)
GRID_ENV = {"GRID_COLUMNS": "10", "GRID_CELL_WIDTH": "440", "GRID_CELL_HEIGHT": "440", "GRID_PADDING": "20",
            "GRID_ORIGIN_X": "0", "GRID_ORIGIN_Y": "0"}


def deliveries(stack) -> dict[str, str]:
    return {path: entry.delivery for path, entry in stack.ledger().all_items().items()}


def count_lines(log: str, event: str) -> int:
    return sum(1 for line in log.splitlines() if f" {event} " in line or f'"{event}"' in line)


@pytest.fixture
def url_stack(local_stack):
    local_stack.env.update({"UPLOAD_MODE": "url", "PROBE_INTERVAL": "5", **GRID_ENV})
    return local_stack


def test_warning_page_items_are_repaired_in_place_and_show_the_picture(url_stack):
    """Pictures created by URL while a passing probe is still trusted meet the warning page: the
    deferred check refills each in place (same item, same cell, no second item), and the tunnel is
    set aside for the rest, which go by file."""
    url_stack.env["PROBE_INTERVAL"] = "60"  # the first probe's pass stays trusted: the shots go by URL
    url_stack.start()
    make_image(url_stack.folder / "warm.png", "png", seed=99)
    wait_for(lambda: deliveries(url_stack).get("warm.png") == "verified", 30, what=lambda: f"{deliveries(url_stack)}\n" + url_stack.log()[-3000:])
    url_stack.set_tunnel_mode("warning-page")
    expected = {f"shot {i}.png": make_image(url_stack.folder / f"shot {i}.png", "png", seed=i) for i in range(5)}
    url_stack.wait_items(6)

    def settled() -> bool:
        d = {path: delivery for path, delivery in deliveries(url_stack).items() if path != "warm.png"}
        return len(d) == 5 and set(d.values()) <= {"repaired", "file"} and "repaired" in d.values()

    wait_for(settled, 90, what=lambda: f"every shot repaired or sent by file: {deliveries(url_stack)}\n" + url_stack.log()[-3000:])
    url_stack.wait_idle()

    items = {item["id"]: item for item in url_stack.items()}
    assert sorted(i["data"]["title"] for i in items.values()) == sorted([*expected, "warm.png"]), "a second item appeared"
    for item in items.values():
        if item["data"]["title"] in expected:
            assert pixels(url_stack.picture(item)) == expected[item["data"]["title"]]
    calls = url_stack.requests()
    creates = [r for r in calls if r["method"] == "POST" and r["path"].endswith("/images")]
    assert len(creates) == 6, f"{len(creates)} creates for 6 files: a repair made a new item"
    log = url_stack.log()
    repaired = [(path, e) for path, e in url_stack.ledger().all_items().items() if e.delivery == "repaired"]
    assert repaired
    for path, entry in repaired:
        # Same id: the ledger's item is the one on the board, re-filled by a PATCH of that id...
        assert entry.item_id in items, (entry, sorted(items))
        assert any(r["method"] == "PATCH" and r["path"].endswith(f"/images/{entry.item_id}") for r in calls), entry
        assert any("upload.repaired" in line and entry.item_id in line for line in log.splitlines()), entry
        # ...same position: still the centre of the cell reserved for it.
        item = items[entry.item_id]
        assert (item["position"]["x"], item["position"]["y"]) == slot_center(GRID, entry.slot), (entry, item["position"])
        assert item["data"]["title"] == path
    # The tunnel is set aside once, whatever the number of pictures that met the page.
    assert count_lines(log, "tunnel.circuit_open") == 1, [line for line in log.splitlines() if "circuit" in line]


def test_the_old_bug_a_plain_url_create_leaves_a_broken_picture(url_stack):
    """What the old script did: a URL create through the free-plan tunnel, trusted because Miro said 201."""
    url_stack.start()
    url_stack.set_tunnel_mode("warning-page")
    url_stack.env["UPLOAD_MODE"] = "file"  # the stack itself must not touch this file: keep it out of the folder
    hidden_dir = url_stack.folder / ".old-script"
    hidden_dir.mkdir()
    make_image(hidden_dir / "a.png", "png", seed=9)
    public = f"http://127.0.0.1:{url_stack.ports['tunnel']}"
    url = public + signing.sign_path(".old-script/a.png", url_stack.secret(), 300)
    client = MiroClient(url_stack.api, TOKEN)
    item = client.create_image_url(BOARD, url, title="old way", position={"x": 0, "y": -2000}, geometry={"width": 300})
    stored = client.get_resource(client.get_image(BOARD, item["id"])["data"]["imageUrl"])
    assert b"ERR_NGROK_6024" in stored
    with pytest.raises(UnidentifiedImageError):
        Image.open(io.BytesIO(stored)).load()


def test_healthy_tunnel_url_route_is_verified_without_repair(url_stack):
    url_stack.start()
    expected = {f"ok {i}.jpg": make_image(url_stack.folder / f"ok {i}.jpg", "jpeg", seed=i) for i in range(3)}
    url_stack.wait_items(3)
    # Verified at once when the served record is there as the create returns, else by the deferred check.
    wait_for(lambda: list(deliveries(url_stack).values()) == ["verified"] * 3, 30, what=lambda: f"{deliveries(url_stack)}\n{url_stack.log()[-3000:]}")
    for item in url_stack.items():
        assert item["fetched_status"] == 200 and pixels(url_stack.picture(item)) == expected[item["data"]["title"]]
    assert "upload.repaired" not in url_stack.log()


@pytest.mark.parametrize("mode,reason_code", [("offline", "offline"), ("bandwidth", "quota"), ("requests", "quota")])
def test_tunnel_error_pages_set_the_tunnel_aside_and_pictures_go_by_file(url_stack, mode, reason_code):
    url_stack.start()
    url_stack.set_tunnel_mode(mode)
    make_image(url_stack.folder / "during outage.png", "png", seed=1)
    wait_for(lambda: "during outage.png" in deliveries(url_stack), 30, what=lambda: url_stack.log()[-3000:])
    assert deliveries(url_stack)["during outage.png"] == "file"  # in UPLOAD_MODE=url
    opened = [line for line in url_stack.log().splitlines() if "tunnel.circuit_open" in line]
    assert len(opened) == 1 and f"reason={reason_code}" in opened[0], opened

    url_stack.set_tunnel_mode("normal")
    wait_for(lambda: "tunnel.circuit_closed" in url_stack.log(), 30, what=lambda: url_stack.log()[-3000:])
    make_image(url_stack.folder / "after outage.png", "png", seed=2)
    wait_for(lambda: deliveries(url_stack).get("after outage.png") == "verified", 30, what=lambda: url_stack.log()[-3000:])
    assert len(url_stack.items()) == 2


def test_a_tunnel_without_an_endpoint_fails_url_jobs_with_the_reason_and_loses_nothing(url_stack):
    """Not ngrok's page but the set-up (the agent lists no endpoint): UPLOAD_MODE=url says why and fails the job."""
    url_stack.start()
    url_stack.set_tunnel_mode("starting")
    make_image(url_stack.folder / "during outage.png", "png", seed=1)
    conn = url_stack.ledger().redis
    queue = rq.Queue("miro-sync", connection=conn, serializer=JSONSerializer)
    failed = wait_for(lambda: queue.failed_job_registry.get_job_ids(), 30, what=lambda: url_stack.log()[-3000:])
    reason = queue.fetch_job(failed[0]).latest_result().exc_string
    assert "tunnel unusable (no-endpoint)" in reason, reason
    assert url_stack.items() == []

    url_stack.set_tunnel_mode("normal")
    time.sleep(6)  # a failed probe is trusted for min(PROBE_INTERVAL, 15 s) = 5 s here
    queue.failed_job_registry.requeue(failed[0])  # the dashboard's requeue
    wait_for(lambda: deliveries(url_stack).get("during outage.png") == "verified", 30, what=lambda: url_stack.log()[-3000:])
    assert len(url_stack.items()) == 1


def test_auto_mode_sends_big_pictures_by_file_when_the_tunnel_is_down(local_stack):
    local_stack.env.update({"UPLOAD_MODE": "auto", "PROBE_INTERVAL": "5"})
    local_stack.start()
    local_stack.set_tunnel_mode("offline")
    import os

    big = Image.frombytes("RGB", (1500, 1500), os.urandom(1500 * 1500 * 3))  # noise: ~6.8 MB as PNG
    tmp = local_stack.folder / ".big.png.tmp"
    big.save(tmp, format="PNG")
    assert tmp.stat().st_size > 6 * 1024 * 1024
    tmp.rename(local_stack.folder / "big.png")
    wait_for(lambda: "big.png" in deliveries(local_stack), 60, what=lambda: local_stack.log()[-3000:])
    entry = local_stack.ledger().all_items()["big.png"]
    assert entry.route == "file"
    items = local_stack.items()
    assert len(items) == 1 and items[0]["bytes_len"] <= 6 * 1024 * 1024 and items[0]["decodes"]
