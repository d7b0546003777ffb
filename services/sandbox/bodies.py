"""Reading a request the way Miro does: JSON bodies, the multipart upload, query values.

Each problem is a 400 ``invalidParameters`` naming the field (``context.fields[0].field``). Fields
Miro's spec does not define are refused too, so a client typo shows here instead of being ignored.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from flask import request

from .errors import invalid
from .geometry import require_json_object

URL_BODY_KEYS = {"data", "position", "geometry", "parent"}
"""Top level of a JSON image create/update (``ImageCreateRequest``/``ImageUpdateRequest``)."""
FILE_DATA_KEYS = {"title", "altText", "position", "geometry", "parent"}
"""The multipart ``data`` part (``UploadFileFromDevice.data``)."""
LIMIT_RANGE = (10, 50)
"""``limit`` of ``GET /items``: Miro's minimum and maximum."""


def check_keys(obj: dict[str, Any], allowed: set[str], prefix: str = "") -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        name = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise invalid(name, f"unknown field {name}")


def string(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise invalid(field, f"{field} must be a string")
    return value


def json_body() -> dict[str, Any]:
    if request.mimetype != "application/json":
        raise invalid("Content-Type", "send application/json (or multipart/form-data for a file upload)")
    try:
        body = json.loads(request.get_data(as_text=True) or "null")
    except ValueError:
        raise invalid("body", "the request body is not valid JSON") from None
    return require_json_object(body)


def url_data(body: dict[str, Any], required: bool) -> dict[str, Any] | None:
    """``data`` of a JSON image request: ``{url, title}``; ``url`` required on create."""
    data = body.get("data")
    if data is None and not required:
        return None
    if not isinstance(data, dict):
        raise invalid("data", "data is required and must be an object", reason="required")
    check_keys(data, {"url", "title"}, "data")
    if "title" in data:
        string(data["title"], "data.title")
    url = data.get("url")
    if url is None and not required:
        return data
    if not isinstance(url, str) or not url:
        raise invalid("data.url", "data.url is required", reason="required")
    if not url.startswith(("http://", "https://", "data:")):
        raise invalid("data.url", "data.url must be an http(s) or data: URL")
    return data


def multipart(max_bytes: int) -> tuple[dict[str, Any], bytes, str | None]:
    """The ``resource`` file (bytes, part type) and the optional ``data`` JSON part.

    ``data`` is read whether it comes as a plain field (with or without its own Content-Type) or
    as a file part; Werkzeug's parser puts the first kind in ``request.form``, the second in ``files``.
    """
    resource = request.files.get("resource")
    if resource is None:
        raise invalid("resource", "resource is required: the image file as a multipart part", reason="required")
    content = resource.read(max_bytes + 1)
    if len(content) > max_bytes:
        # ASSUMPTION: over 6 MB is 400 invalidParameters naming resource (Miro's real answer is undocumented).
        raise invalid("resource", f"the file is larger than the maximum of {max_bytes} bytes (6 MB)", reason="tooLarge")
    raw: str | None = request.form.get("data")
    if raw is None and "data" in request.files:
        raw = request.files["data"].read().decode("utf-8", errors="replace")
    body: dict[str, Any] = {}
    if raw is not None and raw.strip():
        try:
            body = require_json_object(json.loads(raw))
        except ValueError:
            raise invalid("data", "the data part is not valid JSON") from None
    check_keys(body, FILE_DATA_KEYS, "data")
    for key in ("title", "altText"):
        if key in body:
            string(body[key], f"data.{key}")
    return body, content, resource.mimetype or None


def limit(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = -1
    low, high = LIMIT_RANGE
    if not low <= value <= high:
        raise invalid("limit", f"limit must be a number between {low} and {high}")
    return value


def cursor_for(last_id: str) -> str:
    """An opaque cursor after ``last_id``, shaped like Miro's (base64 of ``<id>~``)."""
    return base64.b64encode(f"{last_id}~".encode()).decode()


def cursor_after(raw: str | None) -> int | None:
    """The item id a cursor points after, or None for the first page."""
    if raw is None:
        return None
    try:
        return int(base64.b64decode(raw, validate=True).decode().rstrip("~"))
    except ValueError:
        raise invalid("cursor", "cursor is not one this board gave out") from None
