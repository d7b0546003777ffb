"""shared.layout: name order, and frames that grow without ever overlapping anything."""

import itertools
import random

import pytest

from shared.layout import (
    Box,
    archive_frame_center,
    cell_of_child,
    child_center,
    folder_frame_box,
    frame_folder,
    frame_part,
    frame_rows,
    frame_size,
    natural_key,
    row_of,
    stacked_frame_center,
)
from shared.settings import FolderMode, Grid

GRID = Grid(columns=4, frame_columns=3, frame_rows=2, origin_x=-500, origin_y=120)


def by_name(names):
    return sorted(names, key=natural_key)


def test_name_order_is_the_one_a_person_reads():
    names = [f"b_{i:02d}.png" for i in range(45)]
    shuffled = random.Random(7).sample(names, len(names))
    assert by_name(shuffled) == names
    assert by_name(["b_10.png", "b_2.png", "b_1.png"]) == ["b_1.png", "b_2.png", "b_10.png"]  # digits as numbers
    assert by_name(["beach_3.jpg", "Beach_1.JPG", "beach_2.jpg"]) == ["Beach_1.JPG", "beach_2.jpg", "beach_3.jpg"]  # any case
    assert by_name(["img.png", "img1.png", "img10.png", "img2.png"]) == ["img.png", "img1.png", "img2.png", "img10.png"]
    assert by_name(["v1.10.png", "v2.png", "v1.9.png"]) == ["v1.9.png", "v1.10.png", "v2.png"]
    assert by_name(["a2/z.png", "a10/a.png", "a/z.png", "a b/a.png"]) == ["a/z.png", "a b/a.png", "a2/z.png", "a10/a.png"]
    assert by_name([f"n{10**30 + 1}.png", "n2.png", f"n{10**30}.png"]) == ["n2.png", f"n{10**30}.png", f"n{10**30 + 1}.png"]


def test_equal_names_under_the_key_still_have_one_order():
    names = ["b_2.png", "b_02.png", "B_2.png", "b_002.png"]
    orders = {tuple(by_name(p)) for p in itertools.permutations(names)}
    assert len(orders) == 1


def test_each_subfolder_has_a_frame_and_flat_has_none():
    assert frame_folder("a.png", FolderMode.FRAMES) is None
    assert frame_folder("trip/day 1/a.png", FolderMode.FRAMES) == "trip/day 1"
    assert frame_folder("trip/a.png", FolderMode.FLAT) is None


def test_a_frame_grows_a_row_at_a_time_from_its_minimum():
    assert [frame_rows(GRID, n) for n in (0, 1, 6, 7, 9, 10, 45)] == [2, 2, 2, 3, 3, 4, 15]
    assert [row_of(GRID, c) for c in (0, 2, 3, 44)] == [0, 0, 1, 14]


def test_a_growing_frame_keeps_its_corner_and_holds_every_cell():
    for cells in (1, 6, 7, 45, 1000):
        rows = frame_rows(GRID, cells)
        box = folder_frame_box(GRID, 3, rows)
        assert (box.left, box.top) == (folder_frame_box(GRID, 3, 1).left, GRID.origin_y)  # children are measured from it
        for cell in (0, cells - 1):
            x, y = child_center(GRID, cell)
            cell_box = Box(box.left + x - GRID.cell_width / 2, box.top + y - GRID.cell_height / 2, GRID.cell_width, GRID.cell_height)
            assert box.left <= cell_box.left and cell_box.left + cell_box.width <= box.left + box.width
            assert box.top <= cell_box.top and cell_box.top + cell_box.height <= box.top + box.height, (cells, cell)
            assert cell_of_child(GRID, x, y) == cell
    assert cell_of_child(GRID, GRID.cell_width * 3.5, GRID.cell_height / 2) is None  # right of the frame's columns
    with pytest.raises(ValueError):
        child_center(GRID, -1)


def test_frames_of_any_height_never_overlap_each_other_the_grid_the_archive_or_old_frames():
    tall = 10**6  # rows: the root grid and every frame grow downwards without end
    root = Box(GRID.origin_x, GRID.origin_y, GRID.columns * GRID.cell_width, tall * GRID.cell_height)
    w, h = frame_size(GRID)
    fixed = lambda c: Box(c[0] - w / 2, c[1] - h / 2, w, h)  # noqa: E731
    archive = [fixed(archive_frame_center(GRID, p)) for p in range(3)]
    old_stack = [fixed(stacked_frame_center(GRID, i)) for i in range(50)]  # column 0 of a board laid out before
    growing = [folder_frame_box(GRID, column, rows) for column, rows in zip(range(1, 7), (2, 3, tall, 7, 2, tall))]
    regions = [root, *archive, *growing]
    for a, b in itertools.combinations(regions, 2):
        assert not a.overlaps(b), (a, b)
    for a, b in itertools.product(old_stack, [root, *archive, *growing]):
        assert not a.overlaps(b), (a, b)
    # On a new board the first folder takes column 0, where the old stack would have been.
    assert folder_frame_box(GRID, 0, 2) == fixed(stacked_frame_center(GRID, 0))
    assert frame_part(GRID, 6) == (1, 0) and frame_part(GRID, 5) == (0, 5)  # the old frames' continuation
