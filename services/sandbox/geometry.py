"""Reading ``position``, ``geometry`` and ``parent`` from a request, and sizing images. Pure.

Rules imitated from Miro's docs and spec:
- an image takes ``width`` **or** ``height``, never both (400); the other side follows the picture's
  aspect ratio; with neither, the picture's own pixel size;
- ``x, y`` is the item's centre; inside a frame it is relative to the frame's top-left corner.
"""

from __future__ import annotations

from typing import Any

from .errors import ApiError, invalid

DEFAULT_FRAME_SIZE = (1000.0, 600.0)
"""A frame created without geometry (Miro's own default is not documented)."""
BROKEN_IMAGE_SIZE = 100.0
"""Side of the square a picture that does not decode is shown as, when no size was asked for."""


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid(field, f"{field} must be a number")
    return float(value)


def _object(body: dict[str, Any], key: str, field: str | None = None) -> dict[str, Any] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid(field or key, f"{field or key} must be an object")
    return value


def read_position(body: dict[str, Any]) -> tuple[float, float] | None:
    pos = _object(body, "position")
    if pos is None:
        return None
    unknown = set(pos) - {"x", "y", "origin"}
    if unknown:
        raise invalid("position", f"unknown position fields {sorted(unknown)}")
    if pos.get("origin", "center") != "center":
        raise invalid("position.origin", "position.origin can only be center")
    return _number(pos.get("x", 0), "position.x"), _number(pos.get("y", 0), "position.y")


def read_image_geometry(body: dict[str, Any]) -> tuple[float | None, float | None, float | None]:
    """``(width, height, rotation)`` as asked; at most one of width and height."""
    geo = _object(body, "geometry")
    if geo is None:
        return None, None, None
    unknown = set(geo) - {"width", "height", "rotation"}
    if unknown:
        raise invalid("geometry", f"unknown geometry fields {sorted(unknown)}")
    if geo.get("width") is not None and geo.get("height") is not None:
        raise invalid("geometry", "only one of geometry.width and geometry.height can be set, the other follows the "
                      "image's aspect ratio", reason="conflict")
    width = _positive(geo.get("width"), "geometry.width")
    height = _positive(geo.get("height"), "geometry.height")
    rotation = _number(geo["rotation"], "geometry.rotation") if geo.get("rotation") is not None else None
    return width, height, rotation


def read_frame_geometry(body: dict[str, Any]) -> tuple[float, float]:
    """A new frame's size; a side not given is the default's."""
    width, height = read_frame_resize(body)
    return width or DEFAULT_FRAME_SIZE[0], height or DEFAULT_FRAME_SIZE[1]


def read_frame_resize(body: dict[str, Any]) -> tuple[float | None, float | None]:
    """The sides of a frame that are asked for (both may be set: a frame keeps no aspect ratio)."""
    geo = _object(body, "geometry") or {}
    unknown = set(geo) - {"width", "height"}
    if unknown:
        raise invalid("geometry", f"unknown geometry fields {sorted(unknown)}")
    return _positive(geo.get("width"), "geometry.width"), _positive(geo.get("height"), "geometry.height")


def _positive(value: Any, field: str) -> float | None:
    if value is None:
        return None
    number = _number(value, field)
    if number <= 0:
        raise invalid(field, f"{field} must be greater than 0")
    return number


def read_parent_id(body: dict[str, Any]) -> str | None:
    parent = _object(body, "parent")
    if parent is None:
        return None
    pid = parent.get("id")
    if not isinstance(pid, str) or not pid.isdigit():
        raise invalid("parent.id", "parent.id must be the id of a frame (a string of digits)")
    return pid


def image_size(width: float | None, height: float | None, natural: tuple[int, int] | None) -> tuple[float, float]:
    """The item's size from the side asked for and the picture's pixel size (None: it does not decode)."""
    if natural is None:
        side = width or height or BROKEN_IMAGE_SIZE
        return side, side
    nat_w, nat_h = natural
    if width is not None:
        return width, round(width * nat_h / nat_w, 2)
    if height is not None:
        return round(height * nat_w / nat_h, 2), height
    return float(nat_w), float(nat_h)


def to_board(x: float, y: float, frame: tuple[float, float, float, float] | None) -> tuple[float, float]:
    """Board coordinates of a centre given in its parent's terms; ``frame`` is (x, y, width, height)."""
    if frame is None:
        return x, y
    fx, fy, fw, fh = frame
    return fx - fw / 2 + x, fy - fh / 2 + y


def to_parent(x: float, y: float, frame: tuple[float, float, float, float] | None) -> tuple[float, float]:
    """The inverse of :func:`to_board`."""
    if frame is None:
        return x, y
    fx, fy, fw, fh = frame
    return x - (fx - fw / 2), y - (fy - fh / 2)


def require_json_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "invalidParameters", "Invalid parameters: the request body must be a JSON object",
                       {"fields": [{"field": "body", "reason": "invalid", "message": "expected a JSON object"}]})
    return body
