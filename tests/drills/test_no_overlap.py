"""Drill: pictures of every shape fill their cells and never overlap on the board.

The pictures are far larger than a cell (landscape, portrait, panorama, tall strip, square), so
an item placed at its natural size, or sized on the wrong side, covers its neighbours. The
bounding boxes come from the sandbox's items (centre ``position`` plus the ``geometry`` Miro
derives from the side the worker sent and the picture's own aspect ratio).
"""

from __future__ import annotations

import io
import itertools

from PIL import Image

from tests.drills.harness import drop_file

COLUMNS, CELL_W, CELL_H, PADDING = 3, 440, 300, 20
SHAPES = {"landscape": (1600, 1000), "portrait": (900, 1600), "panorama": (4000, 500), "strip": (300, 2400),
          "square": (1200, 1200), "just-wider": (1300, 880)}


def _png(size: tuple[int, int], seed: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (seed * 40 % 256, 255 - seed * 30 % 256, seed * 70 % 256)).save(buf, format="PNG")
    return buf.getvalue()


def box(item: dict) -> tuple[float, float, float, float]:
    x, y = item["position"]["x"], item["position"]["y"]
    w, h = item["geometry"]["width"], item["geometry"]["height"]
    return x - w / 2, y - h / 2, x + w / 2, y + h / 2


def test_pictures_of_every_shape_fill_their_cells_without_overlap(rig):
    rig.env.update({"GRID_COLUMNS": str(COLUMNS), "GRID_CELL_WIDTH": str(CELL_W), "GRID_CELL_HEIGHT": str(CELL_H),
                    "GRID_PADDING": str(PADDING)})
    rig.start_watcher()
    rig.start_worker()
    expected = {}
    for seed, (shape, size) in enumerate(itertools.islice(itertools.cycle(SHAPES.items()), 9)):
        name = f"{seed} {shape}.png"
        expected[name] = _png(size, seed)
        drop_file(rig.folder / name, expected[name])
    items = rig.wait_items(len(expected))
    rig.wait_idle()
    rig.assert_each_once(expected)
    items = rig.items()

    box_w, box_h = CELL_W - 2 * PADDING, CELL_H - 2 * PADDING
    for item in items:
        left, top, right, bottom = box(item)
        w, h = right - left, bottom - top
        name = item["data"]["title"]
        # Fills the cell: the binding side is the cell's inner box, the other one fits in it.
        assert w <= box_w + 0.01 and h <= box_h + 0.01, (name, w, h)
        assert abs(w - box_w) < 0.01 or abs(h - box_h) < 0.01, (name, w, h)
    for a, b in itertools.combinations(items, 2):
        la, ta, ra, ba = box(a)
        lb, tb, rb, bb = box(b)
        assert ra <= lb or rb <= la or ba <= tb or bb <= ta, ("overlap", a["data"]["title"], box(a), b["data"]["title"], box(b))
    rig.stop_all_cleanly()
