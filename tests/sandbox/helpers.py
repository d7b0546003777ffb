"""Small makers of test pictures and request bodies for the sandbox tests."""

from __future__ import annotations

import io
import json
from typing import Any
from urllib.parse import quote

from PIL import Image


def png(width: int = 40, height: int = 20, color: str = "red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    return buf.getvalue()


def jpeg(width: int = 30, height: int = 60, color: str = "blue") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "JPEG")
    return buf.getvalue()


def board_path(board_id: str, rest: str = "") -> str:
    """``/v2/boards/<percent-encoded id><rest>`` as Miro's clients send it."""
    return f"/v2/boards/{quote(board_id, safe='')}{rest}"


def file_parts(content: bytes, data: dict[str, Any] | None = None, filename: str = "picture.png",
               content_type: str = "image/png", data_type: str | None = "application/json") -> dict[str, Any]:
    """``files=`` for requests: the ``resource`` part and, if given, the ``data`` JSON part."""
    parts: dict[str, Any] = {"resource": (filename, content, content_type)}
    if data is not None:
        parts["data"] = (None, json.dumps(data), data_type) if data_type else (None, json.dumps(data))
    return parts
