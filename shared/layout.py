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
