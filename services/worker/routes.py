"""The two ways a picture reaches Miro.

* file: multipart ``POST /v2/boards/{id}/images`` with the bytes (at most 6 MB; larger or exotic
  images are converted/downscaled first). Miro has the picture when it answers 201.
* url: Miro fetches a signed URL of the image server through the tunnel. Miro answers 201 even
  when what it fetched was ngrok's warning page, so a 201 proves nothing: the image server records
  every signed URL it served in full. When that record is not there yet as the create returns, the
  item is left *unverified* and the worker moves on; :mod:`.verify` checks it after the grace period
  and repairs it in place with a multipart PATCH (:func:`repair_by_file`: same id, same position).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from redis import Redis

from shared import keys, metrics, signing
from shared.image import isolated
from shared.imagetype import ImageInfo, Upload
from shared.ledger import Delivery
from shared.log import get_logger
from shared.ratelimit import Cost
from shared.settings import Settings

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
    sig: str | None = None  # url route: the signed URL's signature, whose ``keys.served`` record verifies it


def prepare_timed(path: Path, info: ImageInfo, settings: Settings) -> Upload:
    """:func:`isolated.prepare_upload`, its time recorded when the picture had to be converted or downscaled."""
    started = time.perf_counter()
    upload = isolated.prepare_upload(path, info, settings.max_upload_bytes, keep_gps=settings.keep_gps)
    if upload.converted:
        metrics.record_conversion(time.perf_counter() - started)
    return upload


def upload_by_file(ctx: WorkerContext, path: Path, info: ImageInfo, data: dict) -> Delivered:
    upload = prepare_timed(path, info, ctx.settings)
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
    # One look, no wait: Miro may have fetched the URL before it answered.
    delivery = Delivery.VERIFIED if served_in_full(ctx.redis, sig, info.size) else Delivery.UNVERIFIED
    return Delivered(item_id, "url", delivery, info.size, sig=sig)


def repair_by_file(ctx: WorkerContext, path: Path, info: ImageInfo, item_id: str) -> int:
    """Refill the item from the bytes (multipart PATCH): it keeps its id and position. Bytes sent."""
    settings = ctx.settings
    upload = prepare_timed(path, info, settings)
    ctx.limiter.acquire(Cost.IMAGE_WRITE)
    ctx.miro.update_image_file(settings.miro_board_id, item_id, upload.content, upload.filename, upload.content_type)
    return len(upload.content)


def served_in_full(redis: Redis, sig: str, size: int) -> bool:
    """Whether the image server has sent the signed URL ``sig`` in full (``size`` bytes)."""
    raw = redis.get(keys.served(sig))
    return raw is not None and json.loads(raw).get("bytes") == size
