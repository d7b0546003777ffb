"""What the sandbox shows about itself: admin endpoints (``/_sandbox/...``) and the board page.

No authentication: the sandbox is a local test tool and is never exposed (the ngrok stand-in
forwards to the image server, not here).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request

from . import geometry, render
from .control import board_page_url
from .faults import FaultError
from .store import Item

bp = Blueprint("sandbox_admin", __name__, template_folder="templates", static_folder="static",
               static_url_path="/_sandbox/static")


def sandbox():
    return current_app.extensions["sandbox"]


def admin_item(base: str, item: Item, frames: dict[str, Item]) -> dict[str, Any]:
    """The API's view of an item plus what only the sandbox knows (bytes, fetch, place on the board)."""
    body = render.generic_item(base, item)
    frame = frames.get(item.parent_id or "")
    x, y = geometry.to_board(item.x, item.y, (frame.x, frame.y, frame.width, frame.height) if frame else None)
    fetch = item.fetch
    body.update({
        "board_position": {"x": x, "y": y},
        "bytes_sha256": item.sha256, "bytes_len": item.bytes_len, "content_type": item.content_type,
        "decodes": item.decodes, "alt_text": item.alt_text,
        "blob_url": f"/_sandbox/blobs/{item.sha256}" if item.sha256 else None,
        "fetched_url": fetch.url if fetch else None,
        "fetched_user_agent": fetch.user_agent if fetch else None,
        "fetched_status": fetch.status if fetch else None,
        "fetched_content_type": fetch.content_type if fetch else None,
        "fetch_error": fetch.error if fetch else None,
    })
    return body


@bp.get("/_sandbox/boards/<board_id>/items")
def items(board_id: str):
    store = sandbox().store
    if not store.has_board(board_id):
        abort(404)
    all_items = store.items(board_id)
    frames = {i.id: i for i in all_items if i.type == "frame"}
    base = request.host_url.rstrip("/")
    return jsonify({"items": [admin_item(base, i, frames) for i in all_items]})


@bp.get("/_sandbox/blobs/<sha256>")
def blob(sha256: str):
    store = sandbox().store
    item = next((i for b in store.board_ids() for i in store.items(b) if i.sha256 == sha256), None)
    if item is None:
        abort(404)
    response = Response(store.blob(sha256), content_type=item.content_type)
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"  # named by its content
    return response


@bp.get("/_sandbox/requests")
def requests_log():
    since = request.args.get("since", type=float)
    return jsonify({"requests": sandbox().traffic.requests(since)})


@bp.get("/_sandbox/stats")
def stats():
    sb = sandbox()
    counts = sb.traffic.stats()
    if sb.oauth is not None:
        counts.setdefault("refreshes", 0)
    return jsonify(counts)


@bp.get("/_sandbox/faults")
def get_faults():
    sb = sandbox()
    return jsonify({**sb.faults.snapshot(), "credits_per_minute": sb.credits.limit})


@bp.post("/_sandbox/faults")
def set_faults():
    sb = sandbox()
    spec = request.get_json(silent=True)
    if not isinstance(spec, dict):
        return jsonify({"error": "send a JSON object of faults"}), 400
    try:
        sb.faults.apply(spec)
    except FaultError as exc:
        return jsonify({"error": str(exc)}), 400
    if spec.get("credits_per_minute") is not None:
        sb.credits.set_limit(int(spec["credits_per_minute"]))
    return get_faults()


@bp.delete("/_sandbox/faults")
def clear_faults():
    sb = sandbox()
    sb.faults.clear()
    sb.credits.set_limit(sb.config.credits_per_minute)
    return get_faults()


@bp.post("/_sandbox/reset")
def reset():
    sb = sandbox()
    sb.store.reset()
    sb.traffic.reset()
    sb.faults.clear()
    sb.credits.set_limit(sb.config.credits_per_minute)
    sb.credits.reset()
    return jsonify({"reset": True})


@bp.get("/boards/<board_id>")
def board_page(board_id: str):
    if not sandbox().store.has_board(board_id):
        abort(404)
    return render_template("board.html", board_id=board_id, items_url=f"/_sandbox/boards/{quote(board_id, safe='')}/items")


@bp.get("/")
def index():
    boards = [(b, board_page_url("", b)) for b in sandbox().store.board_ids()]
    return render_template("index.html", boards=boards)
