"""The scan's walk: every candidate file once, in name order (a backfill takes its cells in that order)."""

from __future__ import annotations

import os
import random

from services.watcher.scan import walk


def test_the_walk_goes_in_name_order_folder_by_folder(tmp_path):
    files = [f"b_{i}.png" for i in range(12)] + ["Trip/IMG_2.JPG", "Trip/img_10.jpg", "trip 2/a.png", "Trip/day 9/x.png",
                                                   "Trip/day 10/x.png", ".hidden/x.png", "x.png.part"]
    for name in random.Random(5).sample(files, len(files)):  # created in no particular order
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    os.symlink(tmp_path / "Trip", tmp_path / "link-to-trip")  # reported, never followed
    seen = [s.relpath for chunk in walk(tmp_path, chunk=5) for s in chunk]
    assert seen == [f"b_{i}.png" for i in range(12)] + ["link-to-trip", "Trip/IMG_2.JPG", "Trip/img_10.jpg", "Trip/day 9/x.png",
                                                        "Trip/day 10/x.png", "trip 2/a.png"]
    assert [s.relpath for chunk in walk(tmp_path, under="Trip") for s in chunk][:2] == ["Trip/IMG_2.JPG", "Trip/img_10.jpg"]
