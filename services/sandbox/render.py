"""Items and boards as Miro's JSON (schemas of the spec: ImageItem, FrameItem, GenericItem, Board...). Pure.

``base`` is the sandbox's own address as the client reached it (``http://127.0.0.1:8765``), which
stands where Miro's answers say ``https://api.miro.com``.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any
from urllib.parse import quote

from .control import board_page_url
from .store import Item


def iso(t: float) -> str:
    """UTC, ISO 8601, trailing Z, as Miro writes it (``2024-08-21T11:19:57Z``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def user_id(token: str) -> str:
    """A stable Miro-like user id (digits) for the owner of a token."""
    return str(3458764500000000000 + int(hashlib.sha256(token.encode()).hexdigest()[:12], 16) % 10**12)


def board_path(board_id: str) -> str:
    return "/v2/boards/" + quote(board_id, safe="")


def image_url(base: str, item: Item) -> str:
    return f"{base}{board_path(item.board_id)}/resources/images/{item.resource_id}?format=preview&redirect=false"


def _kind_path(item: Item) -> str:
    return "images" if item.type == "image" else "frames"


def self_link(base: str, item: Item) -> str:
    return f"{base}{board_path(item.board_id)}/{_kind_path(item)}/{item.id}"


def _position(item: Item) -> dict[str, Any]:
    return {"x": item.x, "y": item.y, "origin": "center",
            "relativeTo": "parent_top_left" if item.parent_id else "canvas_center"}


def _geometry(item: Item) -> dict[str, Any]:
    geo: dict[str, Any] = {"width": item.width, "height": item.height}
    if item.rotation is not None:
        geo["rotation"] = item.rotation
    return geo


def _data(base: str, item: Item) -> dict[str, Any]:
    if item.type == "image":
        return {"imageUrl": image_url(base, item), "title": item.title}
    return {"format": "custom", "title": item.title, "type": "freeform"}


def _audit(item: Item) -> dict[str, Any]:
    return {
        "createdAt": iso(item.created_at), "createdBy": {"id": item.created_by, "type": "user"},
        "modifiedAt": iso(item.modified_at), "modifiedBy": {"id": item.modified_by, "type": "user"},
    }


def image_item(base: str, item: Item) -> dict[str, Any]:
    """``ImageItem``: the answer of image create/get/update."""
    body: dict[str, Any] = {"id": item.id, "type": "image", "data": _data(base, item), "position": _position(item),
                            "geometry": _geometry(item), **_audit(item), "links": {"self": self_link(base, item)}}
    if item.parent_id:
        frame_link = f"{base}{board_path(item.board_id)}/frames/{item.parent_id}"
        body["parent"] = {"id": item.parent_id, "links": {"self": frame_link}}
    return body


def frame_item(base: str, item: Item) -> dict[str, Any]:
    """``FrameItem``: the answer of frame create/get."""
    return {"id": item.id, "type": "frame", "data": _data(base, item), "style": {"fillColor": item.fill_color or "#ffffffff"},
            "position": _position(item), "geometry": _geometry(item), **_audit(item),
            "links": {"self": self_link(base, item)}}


def generic_item(base: str, item: Item) -> dict[str, Any]:
    """``GenericItem``: an entry of ``GET /items``, and the answer of the generic item endpoints."""
    body: dict[str, Any] = {"id": item.id, "type": item.type, "data": _data(base, item), "position": _position(item),
                            "geometry": _geometry(item), **_audit(item)}
    if item.parent_id:
        body["parent"] = {"id": item.parent_id}
    return body


def board(base: str, board_id: str, created_at: float, owner_id: str) -> dict[str, Any]:
    """``BoardWithLinksAndLastOpened``: the answer of ``GET /v2/boards/{board_id}``."""
    owner = {"id": owner_id, "name": "Sandbox User", "type": "user"}
    return {
        "id": board_id, "type": "board", "name": f"Sandbox board {board_id}",
        "description": "A local stand-in for a Miro board (miro-sync sandbox)",
        "viewLink": board_page_url(base, board_id),
        "team": {"id": "3458764500000000000", "name": "Sandbox team", "type": "team"},
        "owner": owner, "createdBy": owner, "modifiedBy": owner,
        "currentUserMembership": {**owner, "role": "owner"},
        "createdAt": iso(created_at), "modifiedAt": iso(created_at),
        "links": {"self": f"{base}{board_path(board_id)}"},
    }
