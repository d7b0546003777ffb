"""The two ways a picture reaches Miro.

* file: multipart ``POST /v2/boards/{id}/images`` with the bytes (at most 6 MB; larger or exotic
  images are converted/downscaled first). Miro has the picture when it answers 201.
* url: Miro fetches a signed URL of the image server through the tunnel. Miro answers 201 even
  when what it fetched was ngrok's warning page, so a 201 proves nothing: the image server records
  every signed URL it served in full, and an item whose URL was not served within the grace period
  is repaired in place with a multipart PATCH (same id, same position).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from shared import keys, signing
from shared.imagetype import ImageInfo, prepare_upload
from shared.ledger import Delivery
from shared.log import get_logger
from shared.ratelimit import Cost

from .context import WorkerContext

log = get_logger("worker")


class TunnelUnavailable(Exception):
    """UPLOAD_MODE=url and the public URL does not deliver images (offline, over quota...)."""

    def __init__(self, probe) -> None:
        self.probe = probe
        super().__init__(f"tunnel unusable ({probe.reason}): {probe.detail}")


@dataclass(frozen=True)
class Delivered:
    item_id: str
    route: str
    delivery: Delivery
    bytes_sent: int
    converted: str | None = None
    stripped: str | None = None


def upload_by_file(ctx: WorkerContext, path: Path, info: ImageInfo, data: dict) -> Delivered:
    upload = prepare_upload(path, info, ctx.settings.max_upload_bytes, keep_gps=ctx.settings.keep_gps)
    ctx.limiter.acquire(Cost.IMAGE_WRITE)
    item = ctx.miro.create_image_file(ctx.settings.miro_board_id, upload.content, upload.filename, upload.content_type, data)
    return Delivered(str(item["id"]), "file", Delivery.FILE, len(upload.content), upload.converted, upload.stripped)


def upload_by_url(ctx: WorkerContext, path: Path, relpath: str, info: ImageInfo, data: dict) -> Delivered:
    settings = ctx.settings
    probe = ctx.tunnel.usable()
    public_url = probe.public_url
    if not public_url:
        raise TunnelUnavailable(probe)
    signed = signing.sign_path(relpath, settings.url_signing_secret or "", settings.url_ttl_seconds)
    sig = parse_qs(urlsplit(signed).query)["sig"][0]
    ctx.limiter.acquire(Cost.IMAGE_WRITE)
    item = ctx.miro.create_image_url(
        settings.miro_board_id, public_url + signed, title=data["title"], position=data["position"], geometry=data["geometry"],
        parent_id=(data.get("parent") or {}).get("id"),
    )
    item_id = str(item["id"])
    if _wait_served(ctx, sig, info.size, settings.verify_grace):
        return Delivered(item_id, "url", Delivery.VERIFIED, info.size)

    # Miro said 201 but never fetched our file: the tunnel answered in our place (warning page,
    # offline page...). Refill the same item from the bytes; it keeps its id and position.
    ctx.tunnel.invalidate()
    ctx.tunnel.warn_once(ctx.tunnel.usable(force=True), log)
    upload = prepare_upload(path, info, settings.max_upload_bytes, keep_gps=settings.keep_gps)
    ctx.limiter.acquire(Cost.IMAGE_WRITE)
    ctx.miro.update_image_file(settings.miro_board_id, item_id, upload.content, upload.filename, upload.content_type)
    log.info("upload.repaired", file=relpath, item_id=item_id, reason="Miro did not fetch the signed URL")
    return Delivered(item_id, "url", Delivery.REPAIRED, len(upload.content), upload.converted, upload.stripped)


def _wait_served(ctx: WorkerContext, sig: str, size: int, grace: float) -> bool:
    """True once the image server reports the signed URL served in full (polls up to ``grace`` s)."""
    deadline = time.monotonic() + grace
    key = keys.served(sig)
    while True:
        raw = ctx.redis.get(key)
        if raw is not None and json.loads(raw).get("bytes") == size:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
