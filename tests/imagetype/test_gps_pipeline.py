"""Through the whole stack (watcher, worker, image server, sandbox): what Miro stores carries no GPS."""

from __future__ import annotations

import io
import os
import re

from PIL import Image

from tests.imagetype.pictures import encoded, noisy
from tests.imagetype.test_gps import WHEN, assert_no_gps, gps_exif, pixels, read_exif


def drop(folder, name: str, data: bytes) -> None:
    tmp = folder / f".{name}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, folder / name)


def test_gps_photo_reaches_the_board_without_gps_and_never_by_url(local_stack):
    # url mode: a file without GPS goes by URL (the image server sends it as it is); one with GPS
    # must not, and goes by upload with its GPS cut out.
    local_stack.env["UPLOAD_MODE"] = "url"
    local_stack.start()
    photo = encoded(noisy(64, 48), "JPEG", quality=90, exif=gps_exif().tobytes())
    plain = encoded(noisy(64, 48), "JPEG", quality=90)
    drop(local_stack.folder, "phone.jpg", photo)
    drop(local_stack.folder, "plain.jpg", plain)

    items = {i["data"]["title"]: i for i in local_stack.wait_items(2)}

    stored = local_stack.picture(items["phone.jpg"])
    assert read_exif(photo).get_ifd(0x8825) and WHEN.encode() in photo
    assert_no_gps(stored)
    assert read_exif(stored)[0x0112] == 1 and pixels(stored) == pixels(photo)
    with Image.open(io.BytesIO(stored)) as im:
        assert im.format == "JPEG"
    routes = {title: i.get("source") or ("url" if i.get("fetched_user_agent") else "file") for title, i in items.items()}
    assert routes == {"phone.jpg": "file", "plain.jpg": "url"}
    assert local_stack.picture(items["plain.jpg"]) == plain
    done = [line for line in local_stack.log().splitlines() if "upload.done" in line and "file=phone.jpg" in line]
    assert len(done) == 1 and re.search(r"\bstripped=gps\b", done[0]), done


def test_camera_jpeg_stored_turned_is_upright_on_the_board_and_never_by_url(local_stack):
    # As the user met it: 2000x1500 stored, EXIF orientation 6. Sized from the pixels as stored (the
    # sandbox's rule), it was a 533x400 landscape box; sent upright, it is the portrait a viewer shows.
    from tests.imagetype.test_upright import assert_upright_raw, camera_jpeg

    local_stack.env["UPLOAD_MODE"] = "url"
    local_stack.start()
    drop(local_stack.folder, "camera.jpg", camera_jpeg())

    (item,) = local_stack.wait_items(1)

    assert (item.get("source") or ("url" if item.get("fetched_user_agent") else "file")) == "file"
    geometry = item["geometry"]
    assert geometry["height"] > geometry["width"]
    assert abs(geometry["width"] / geometry["height"] - 1500 / 2000) < 0.01
    assert_upright_raw(local_stack.picture(item), 1500, 2000)
