"""The Miro REST API v2 endpoints the project uses, with Miro's statuses, bodies, scopes and credits.

Every request goes: injected error? -> token (401) -> credits (429) -> scope (403) -> board (404)
-> body (400) -> work. Every answer carries ``X-RateLimit-*``. Assumptions where Miro's behaviour
is not documented are marked ASSUMPTION and listed in ``services/sandbox/README.md``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from shared.log import get_logger

from . import bodies, errors, geometry, render, resources
from .config import ALL_SCOPES, LEVEL_1, LEVEL_2, LEVEL_3, READ, WRITE
from .errors import ApiError, invalid
from .fetcher import fetch
from .images import inspect
from .oauth import OAUTH_USER
from .store import Fetch, Item

log = get_logger("sandbox")

bp = Blueprint("miro_api", __name__, url_prefix="/v2")

ITEM_TYPES = ("text", "shape", "sticky_note", "image", "document", "card", "app_card", "preview", "frame", "embed",
              "doc_format", "data_table_format")
"""``type`` values ``GET /items`` accepts (the spec's enum)."""
ANONYMOUS = ""


def sandbox():
    return current_app.extensions["sandbox"]


def base_url() -> str:
    return request.host_url.rstrip("/")


# ---- the pipeline every call goes through --------------------------------------------------


@bp.before_request
def authenticate() -> None:
    sb = sandbox()
    g.token = ANONYMOUS
    status = sb.faults.error_status()
    if status is not None:
        sb.traffic.count("injected_errors")
        if status == 429:
            g.rate = sb.credits.exhaust(_bearer() or ANONYMOUS)
        raise errors.injected(status)
    token = _bearer()
    if not token:
        raise errors.token_not_provided()
    if token in sb.config.tokens:
        g.token, g.scopes = token, sb.config.tokens[token]
        return
    if sb.oauth is None or not sb.oauth.knows(token):
        raise errors.token_not_found()
    refused = sb.oauth.access_error(token)
    if refused is not None:
        raise refused
    # Every OAuth token is the same user and app: Miro's credit budget does not restart on a refresh.
    g.token, g.scopes = OAUTH_USER, ALL_SCOPES


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def operation(level: int | None, scope: str) -> Callable:
    """Charge ``level`` credits, require ``scope`` and an existing board, then run the view."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(board_id: str, **kwargs: Any):
            sb = sandbox()
            if level:
                allowed, g.rate = sb.credits.charge(g.token, level)
                if not allowed:
                    raise errors.too_many_requests()
            if scope not in g.scopes:
                raise errors.insufficient_permissions(scope)
            if not sb.store.has_board(board_id):
                raise errors.not_found("Board")
            return view(board_id, **kwargs)

        return wrapper

    return decorate


@bp.after_request
def rate_headers(response: Response) -> Response:
    rate = g.get("rate") or sandbox().credits.peek(g.get("token", ANONYMOUS))
    response.headers.update(rate.headers())
    return response


@bp.errorhandler(ApiError)
def api_error(exc: ApiError):
    return jsonify(exc.body()), exc.status


def http_error_as_miro(exc: HTTPException):
    """Routing errors under /v2 (unknown path, wrong method, body too large) in Miro's shape."""
    codes = {404: "notFound", 405: "methodNotAllowed", 413: "payloadTooLarge"}
    body = ApiError(exc.code or 500, codes.get(exc.code or 500, "error"), exc.description or exc.name).body()
    response = jsonify(body)
    response.status_code = exc.code or 500
    return rate_headers(response)


# ---- boards --------------------------------------------------------------------------------


@bp.get("/boards/<board_id>")
@operation(LEVEL_1, READ)
def get_board(board_id: str):
    sb = sandbox()
    owner = render.user_id(next(iter(sb.config.tokens)))
    return jsonify(render.board(base_url(), board_id, sb.store.board_created_at(board_id), owner))


# ---- images --------------------------------------------------------------------------------


@bp.post("/boards/<board_id>/images")
@operation(LEVEL_2, WRITE)
def create_image(board_id: str):
    fetched: Fetch | None = None
    from_file = request.mimetype == "multipart/form-data"
    if from_file:
        body, content, part_type = bodies.multipart(sandbox().config.max_resource_bytes)
        title = body.get("title", "")
    else:
        body = bodies.json_body()
        bodies.check_keys(body, bodies.URL_BODY_KEYS)
        data = bodies.url_data(body, required=True) or {}
        title = data.get("title", "")
    x, y = geometry.read_position(body) or (0.0, 0.0)
    width, height, rotation = geometry.read_image_geometry(body)
    parent_id = _parent(board_id, geometry.read_parent_id(body))
    if not from_file:
        content, part_type, fetched = _fetch(data["url"])  # only once the request is known to be valid
    sb = sandbox()
    item_id, resource_id = sb.store.new_ids()
    picture = inspect(content)
    w, h = geometry.image_size(width, height, picture.size)
    now, user = time.time(), render.user_id(g.token)
    item = Item(id=item_id, board_id=board_id, type="image", title=title, x=x, y=y, width=w, height=h,
                created_at=now, created_by=user, modified_at=now, modified_by=user, parent_id=parent_id,
                rotation=rotation, alt_text=body.get("altText"), fetch=fetched, resource_id=resource_id,
                **_bytes_fields(content, picture, part_type))
    sb.store.add(item)
    sb.traffic.count("creates")
    log.info("sandbox.image.created", board=board_id, item_id=item_id, bytes=len(content), decodes=item.decodes,
             route="url" if fetched else "file", fetch_status=fetched.status if fetched else None)
    return jsonify(render.image_item(base_url(), item)), 201


@bp.get("/boards/<board_id>/images/<item_id>")
@operation(LEVEL_1, READ)
def get_image(board_id: str, item_id: str):
    return jsonify(render.image_item(base_url(), _item(board_id, item_id, "image")))


@bp.patch("/boards/<board_id>/images/<item_id>")
@operation(LEVEL_2, WRITE)
def update_image(board_id: str, item_id: str):
    item = _item(board_id, item_id, "image")
    changes: dict[str, Any] = {}
    url: str | None = None
    new_bytes: tuple[bytes, str | None, Fetch | None] | None = None
    if request.mimetype == "multipart/form-data":
        body, content, part_type = bodies.multipart(sandbox().config.max_resource_bytes)
        changes.update({k: body[src] for src, k in (("title", "title"), ("altText", "alt_text")) if src in body})
        new_bytes = (content, part_type, None)
    else:
        body = bodies.json_body()
        bodies.check_keys(body, bodies.URL_BODY_KEYS)
        data = bodies.url_data(body, required=False) or {}
        if "title" in data:
            changes["title"] = data["title"]
        url = data.get("url")
    width, height, rotation = geometry.read_image_geometry(body)
    changes.update(_placement(board_id, item, body))
    if rotation is not None:
        changes["rotation"] = rotation
    if url is not None:
        new_bytes = _fetch(url)
    sb = sandbox()
    if new_bytes is not None:
        content, part_type, fetched = new_bytes
        picture = inspect(content)
        if width is None and height is None:
            width = item.width  # ASSUMPTION: a new picture keeps the item's width unless told otherwise
        changes.update(_bytes_fields(content, picture, part_type), fetch=fetched, resource_id=sb.store.new_ids()[1])
        changes["width"], changes["height"] = geometry.image_size(width, height, picture.size)
    elif width is not None or height is not None:
        shape = (item.width, item.height) if item.decodes else None
        changes["width"], changes["height"] = geometry.image_size(width, height, shape)  # type: ignore[arg-type]
    sb.store.update(item, modified_at=time.time(), modified_by=render.user_id(g.token), **changes)
    return jsonify(render.image_item(base_url(), item))


@bp.delete("/boards/<board_id>/images/<item_id>")
@operation(LEVEL_3, WRITE)
def delete_image(board_id: str, item_id: str):
    _delete(board_id, _item(board_id, item_id, "image"))
    return "", 204


@bp.get("/boards/<board_id>/resources/images/<resource_id>")
@operation(None, READ)  # ASSUMPTION: downloading a resource costs no credits (not documented)
def get_resource(board_id: str, resource_id: str):
    fmt = request.args.get("format", "preview")
    if fmt not in ("preview", "original"):
        raise invalid("format", "format must be preview or original")
    redirect = request.args.get("redirect", "false")
    if redirect not in ("true", "false"):
        raise invalid("redirect", "redirect must be true or false")
    item = sandbox().store.by_resource(board_id, resource_id)
    if item is None:
        raise errors.not_found("Resource")
    url = resources.signed_url(base_url(), sandbox().secret, board_id, resource_id)
    if redirect == "true":
        response = Response(status=307)
        response.headers["Location"] = url
        return response
    # ASSUMPTION: the "resource object" of redirect=false is {"type", "url"}; both formats give the stored bytes.
    return jsonify({"type": item.content_type, "url": url})


# ---- frames --------------------------------------------------------------------------------


@bp.post("/boards/<board_id>/frames")
@operation(LEVEL_2, WRITE)
def create_frame(board_id: str):
    body = bodies.json_body()
    fields = _frame_fields(body, creating=True)
    x, y = geometry.read_position(body) or (0.0, 0.0)
    width, height = geometry.read_frame_geometry(body)
    sb = sandbox()
    item_id, _ = sb.store.new_ids()
    now, user = time.time(), render.user_id(g.token)
    item = Item(id=item_id, board_id=board_id, type="frame", title=fields.get("title", ""), x=x, y=y, width=width, height=height,
                created_at=now, created_by=user, modified_at=now, modified_by=user, fill_color=fields.get("fill_color"))
    sb.store.add(item)
    return jsonify(render.frame_item(base_url(), item)), 201


@bp.get("/boards/<board_id>/frames/<item_id>")
@operation(LEVEL_1, READ)
def get_frame(board_id: str, item_id: str):
    return jsonify(render.frame_item(base_url(), _item(board_id, item_id, "frame")))


@bp.patch("/boards/<board_id>/frames/<item_id>")
@operation(LEVEL_2, WRITE)
def update_frame(board_id: str, item_id: str):
    frame = _item(board_id, item_id, "frame")
    body = bodies.json_body()
    changes = _frame_fields(body, creating=False)
    position = geometry.read_position(body)
    if position is not None:
        changes["x"], changes["y"] = position
    width, height = geometry.read_frame_resize(body)
    changes |= {k: v for k, v in (("width", width), ("height", height)) if v is not None}
    # ASSUMPTION: children keep their positions relative to the frame's top-left corner (the corner Miro
    # measures them from), so a move or a resize that shifts that corner carries them along.
    sandbox().store.update(frame, modified_at=time.time(), modified_by=render.user_id(g.token), **changes)
    return jsonify(render.frame_item(base_url(), frame))


@bp.delete("/boards/<board_id>/frames/<item_id>")
@operation(LEVEL_3, WRITE)
def delete_frame(board_id: str, item_id: str):
    _delete(board_id, _item(board_id, item_id, "frame"))
    return "", 204


# ---- generic items -------------------------------------------------------------------------


@bp.get("/boards/<board_id>/items")
@operation(LEVEL_2, READ)
def list_items(board_id: str):
    args = request.args
    limit = bodies.limit(args.get("limit", "10"))
    kind = args.get("type")
    if kind is not None and kind not in ITEM_TYPES:
        raise invalid("type", f"type must be one of {', '.join(ITEM_TYPES)}")
    sb = sandbox()
    parent = args.get("parent_item_id")
    if parent is not None:
        _item(board_id, parent, "frame")  # ASSUMPTION: an unknown frame is 404, not an empty list
        items = sb.store.children(board_id, parent)
    else:
        items = sb.store.items(board_id)
    if kind:
        items = [i for i in items if i.type == kind]
    after = bodies.cursor_after(args.get("cursor"))
    remaining = [i for i in items if int(i.id) > after] if after is not None else items
    page = remaining[:limit]
    base = base_url()
    query = {k: v for k, v in args.items() if k != "cursor"} | {"limit": str(limit)}
    self_url = f"{base}{request.path}?{urlencode({**query, **({'cursor': args['cursor']} if 'cursor' in args else {})})}"
    body: dict[str, Any] = {"data": [render.generic_item(base, i) for i in page], "total": len(items), "size": len(page),
                            "limit": limit, "links": {"self": self_url}}
    if len(remaining) > limit:
        cursor = bodies.cursor_for(page[-1].id)
        body["cursor"] = cursor
        body["links"]["next"] = f"{base}{request.path}?{urlencode({**query, 'cursor': cursor})}"
    return jsonify(body)


@bp.get("/boards/<board_id>/items/<item_id>")
@operation(LEVEL_1, READ)
def get_item(board_id: str, item_id: str):
    return jsonify(render.generic_item(base_url(), _item(board_id, item_id)))


@bp.patch("/boards/<board_id>/items/<item_id>")
@operation(LEVEL_2, WRITE)
def update_item(board_id: str, item_id: str):
    item = _item(board_id, item_id)
    body = bodies.json_body()
    bodies.check_keys(body, {"position", "parent"})
    changes = _placement(board_id, item, body)
    sandbox().store.update(item, modified_at=time.time(), modified_by=render.user_id(g.token), **changes)
    return jsonify(render.generic_item(base_url(), item))


@bp.delete("/boards/<board_id>/items/<item_id>")
@operation(LEVEL_3, WRITE)
def delete_item(board_id: str, item_id: str):
    _delete(board_id, _item(board_id, item_id))
    return "", 204


# ---- helpers -------------------------------------------------------------------------------


def _item(board_id: str, item_id: str, kind: str | None = None) -> Item:
    item = sandbox().store.get(board_id, item_id)
    if item is None or (kind and item.type != kind):
        raise errors.not_found("Item")
    return item


def _frame_box(board_id: str, frame_id: str | None) -> tuple[float, float, float, float] | None:
    if frame_id is None:
        return None
    frame = sandbox().store.get(board_id, frame_id)
    return (frame.x, frame.y, frame.width, frame.height) if frame else None


def _frame_fields(body: dict[str, Any], creating: bool) -> dict[str, Any]:
    """``title`` and ``fill_color`` from a frame create (``data`` required) or update body."""
    bodies.check_keys(body, {"data", "style", "position", "geometry"})
    data = body.get("data")
    if data is None and not creating:
        data = {}
    if not isinstance(data, dict):
        raise invalid("data", "data is required and must be an object" if creating else "data must be an object", reason="required")
    bodies.check_keys(data, {"title", "format", "type", "showContent"}, "data")
    when = " when a frame is created" if creating else ""
    if data.get("format", "custom") != "custom":
        raise invalid("data.format", f"data.format can only be custom{when}")
    if data.get("type", "freeform") != "freeform":
        raise invalid("data.type", f"data.type can only be freeform{when}")
    style = body.get("style") or {}
    if not isinstance(style, dict):
        raise invalid("style", "style must be an object")
    bodies.check_keys(style, {"fillColor"}, "style")
    fields: dict[str, Any] = {}
    if "title" in data or creating:
        fields["title"] = bodies.string(data.get("title", ""), "data.title")
    if "fillColor" in style:
        fields["fill_color"] = bodies.string(style["fillColor"], "style.fillColor")
    return fields


def _parent(board_id: str, parent_id: str | None) -> str | None:
    if parent_id is None:
        return None
    frame = sandbox().store.get(board_id, parent_id)
    if frame is None or frame.type != "frame":
        # ASSUMPTION: a parent that is not a frame of this board is a bad parameter (400), not a 404.
        raise invalid("parent.id", f"parent.id {parent_id} is not a frame on this board")
    return parent_id


def _placement(board_id: str, item: Item, body: dict[str, Any]) -> dict[str, Any]:
    """Position and parent changes; without a new position a re-parented item keeps its place on the board."""
    position = geometry.read_position(body)
    changes: dict[str, Any] = {}
    parent_id = item.parent_id
    if body.get("parent") is not None:
        if item.type == "frame":
            raise invalid("parent.id", "a frame cannot be put inside another frame")
        parent_id = _parent(board_id, geometry.read_parent_id(body))
        if parent_id != item.parent_id:
            changes["parent_id"] = parent_id
            if position is None:
                absolute = geometry.to_board(item.x, item.y, _frame_box(board_id, item.parent_id))
                position = geometry.to_parent(*absolute, _frame_box(board_id, parent_id))
    if position is not None:
        changes["x"], changes["y"] = position
    return changes


def _delete(board_id: str, item: Item) -> None:
    sb = sandbox()
    if item.type == "frame":
        # ASSUMPTION: deleting a frame through the API leaves its children on the board, where they were.
        box = _frame_box(board_id, item.id)
        for child in sb.store.children(board_id, item.id):
            x, y = geometry.to_board(child.x, child.y, box)
            sb.store.update(child, parent_id=None, x=x, y=y)
    sb.store.delete(board_id, item.id)


def _fetch(url: str) -> tuple[bytes, str | None, Fetch]:
    sb = sandbox()
    result = fetch(url, sb.config.fetch_user_agent, sb.config.fetch_timeout)
    sb.traffic.count("fetches")
    log.info("sandbox.fetch", url=url[:200], status=result.status, content_type=result.content_type,
             bytes=len(result.content), error=result.error)
    # Like Miro in the "pictures never show" report: whatever came back is the picture, even an error page.
    return result.content, result.content_type, Fetch(url[:2000], result.user_agent, result.status, result.content_type,
                                                       result.error)


def _bytes_fields(content: bytes, picture: Any, received_type: str | None) -> dict[str, Any]:
    sha = sandbox().store.put_blob(content)
    content_type = picture.content_type or received_type or "application/octet-stream"
    return {"sha256": sha, "bytes_len": len(content), "content_type": content_type, "decodes": picture.size is not None}
