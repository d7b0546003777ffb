"""Pure placement maths: slot number -> board position, image size -> geometry. No I/O."""

from __future__ import annotations

from .settings import Grid


def slot_center(grid: Grid, slot: int) -> tuple[float, float]:
    """Centre of cell ``slot`` (0-based, row-major) in board coordinates.

    Miro positions an item by its centre, so the centre of the cell is the item's position.
    """
    if slot < 0:
        raise ValueError(f"slot must be >= 0, got {slot}")
    row, col = divmod(slot, grid.columns)
    x = grid.origin_x + col * grid.cell_width + grid.cell_width / 2
    y = grid.origin_y + row * grid.cell_height + grid.cell_height / 2
    return x, y


def fit_geometry(grid: Grid, width: int, height: int) -> dict[str, float]:
    """Miro geometry that fits an image of ``width``x``height`` pixels inside a cell.

    Miro accepts width or height, never both (400 otherwise), and keeps the aspect ratio: set
    the side that binds. Landscape images get a width, portrait images a height.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    box_w = grid.cell_width - 2 * grid.padding
    box_h = grid.cell_height - 2 * grid.padding
    if width / height >= box_w / box_h:
        return {"width": float(box_w)}
    return {"height": float(box_h)}


def slot_of_position(grid: Grid, x: float, y: float) -> int | None:
    """The slot whose centre is (x, y), or None: used to recognise our own items on a board."""
    col = (x - grid.origin_x - grid.cell_width / 2) / grid.cell_width
    row = (y - grid.origin_y - grid.cell_height / 2) / grid.cell_height
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        return None
    col, row = round(col), round(row)
    if not (0 <= col < grid.columns) or row < 0:
        return None
    return row * grid.columns + col


# --- frames: one per subfolder (right of the root grid), the archive (left of it) ------------------
#
# Every frame has the same size (FRAME_COLUMNS x FRAME_ROWS cells) and a fixed place given by its
# index, so frames never overlap each other or the root grid, whatever order they are made in. A
# child's position is its centre relative to the frame's top-left corner (Miro's rule for children).

ARCHIVE_TITLE = "miro-sync archive"


def frame_size(grid: Grid) -> tuple[float, float]:
    return float(grid.frame_columns * grid.cell_width), float(grid.frame_rows * grid.cell_height)


def frame_capacity(grid: Grid) -> int:
    return grid.frame_columns * grid.frame_rows


def frame_part(grid: Grid, slot: int) -> tuple[int, int]:
    """(which frame of the folder, which cell in it) for the folder's ``slot``: a full frame is continued."""
    return divmod(slot, frame_capacity(grid))


def frame_title(folder: str, part: int) -> str:
    return folder if part == 0 else f"{folder} ({part + 1})"


def folder_frame_center(grid: Grid, index: int) -> tuple[float, float]:
    """Frame ``index`` (0-based, in creation order) in the column right of the root grid."""
    w, h = frame_size(grid)
    left = grid.origin_x + grid.columns * grid.cell_width + grid.frame_gap
    top = grid.origin_y + index * (h + grid.frame_gap)
    return left + w / 2, top + h / 2


def archive_frame_center(grid: Grid, part: int) -> tuple[float, float]:
    """The archive's frame ``part``, in a column left of the root grid."""
    w, h = frame_size(grid)
    right = grid.origin_x - grid.frame_gap
    top = grid.origin_y + part * (h + grid.frame_gap)
    return right - w / 2, top + h / 2


def child_center(grid: Grid, cell: int) -> tuple[float, float]:
    """Centre of ``cell`` inside a frame, relative to the frame's top-left corner."""
    if not 0 <= cell < frame_capacity(grid):
        raise ValueError(f"cell must be in 0..{frame_capacity(grid) - 1}, got {cell}")
    row, col = divmod(cell, grid.frame_columns)
    return col * grid.cell_width + grid.cell_width / 2, row * grid.cell_height + grid.cell_height / 2


def cell_of_child(grid: Grid, x: float, y: float) -> int | None:
    """The frame cell whose centre is (x, y) (parent-relative), or None."""
    col = (x - grid.cell_width / 2) / grid.cell_width
    row = (y - grid.cell_height / 2) / grid.cell_height
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        return None
    col, row = round(col), round(row)
    if not (0 <= col < grid.frame_columns and 0 <= row < grid.frame_rows):
        return None
    return row * grid.frame_columns + col
