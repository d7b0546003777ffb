"""The baseline: a sequential uploader with the old script's design, run against the same sandbox.

One process, a watchdog observer, and in its event handler one ``requests`` multipart upload at a
time: no queue, no ledger, no rate limiter, no validation. Each closed (or moved-in) image is read
and posted at once, so while one upload waits for Miro the next events wait in watchdog's queue.
It lays pictures out in a grid by a counter in memory, and on a restart it sees only new events.

    python -m bench.baseline --folder DIR --api http://127.0.0.1:8765 --token T --board B

Prints JSON lines: ``baseline.ready`` once watching, ``baseline.uploaded`` / ``baseline.failed`` per file.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import requests
from watchdog.events import DirMovedEvent, FileClosedEvent, FileMovedEvent, FileSystemEventHandler
from watchdog.observers import Observer

TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif"}
COLUMNS, CELL = 10, 440


def emit(event: str, **fields) -> None:
    print(json.dumps({"ts": round(time.time(), 3), "event": event, **fields}), flush=True)


class Uploader(FileSystemEventHandler):
    def __init__(self, api: str, token: str, board: str) -> None:
        self.url = f"{api}/v2/boards/{quote(board, safe='')}/images"
        self.headers = {"Authorization": f"Bearer {token}"}
        self.count = 0

    def on_closed(self, event: FileClosedEvent) -> None:
        self.upload(Path(os.fsdecode(event.src_path)))

    def on_moved(self, event: DirMovedEvent | FileMovedEvent) -> None:
        self.upload(Path(os.fsdecode(event.dest_path)))

    def upload(self, path: Path) -> None:
        content_type = TYPES.get(path.suffix.lower())
        if content_type is None or path.name.startswith("."):
            return
        slot, self.count = self.count, self.count + 1
        data = {"title": path.name, "position": {"x": slot % COLUMNS * CELL, "y": slot // COLUMNS * CELL, "origin": "center"},
                "geometry": {"width": CELL - 40}}
        try:
            body = path.read_bytes()
            parts: dict[str, tuple[str | None, str | bytes, str]] = {
                "data": (None, json.dumps(data), "application/json"), "resource": (path.name, body, content_type)}
            r = requests.post(self.url, headers=self.headers, timeout=30, files=parts)
            r.raise_for_status()
            emit("baseline.uploaded", file=path.name, item_id=r.json()["id"], bytes=len(body))
        except (OSError, requests.RequestException, ValueError, KeyError) as exc:
            emit("baseline.failed", file=path.name, error=str(exc))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", required=True)
    parser.add_argument("--api", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--board", required=True)
    args = parser.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    observer = Observer()
    observer.schedule(Uploader(args.api, args.token, args.board), args.folder, recursive=True,
                      event_filter=[FileClosedEvent, FileMovedEvent])
    observer.start()
    emit("baseline.ready", folder=args.folder)
    stop.wait()
    observer.stop()
    observer.join(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
