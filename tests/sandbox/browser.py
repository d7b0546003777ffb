"""Headless Chromium driven over the DevTools protocol (Runtime.evaluate), for board-page tests."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import requests
import websocket

from tests.fixtures.procs import wait_for

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--remote-debugging-port=0", "--window-size=1280,800",
]


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """One page of a headless Chromium started with ``spawn``; ``evaluate`` runs JavaScript in it."""

    def __init__(self, spawn, profile: Path) -> None:
        binary = chromium_binary()
        assert binary, "chromium is not installed"
        self.proc = spawn([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"], "chromium")
        port_file = profile / "DevToolsActivePort"
        wait_for(lambda: port_file.exists() and port_file.read_text().strip(), 30, what="Chromium's DevTools port")
        port = int(port_file.read_text().split()[0])
        targets = wait_for(lambda: [t for t in requests.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
                                    if t["type"] == "page"], 10, what="a page target")
        # Without an Origin header Chromium accepts the connection (no --remote-allow-origins needed).
        self.ws = websocket.create_connection(targets[0]["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        self._ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == call_id:  # anything else is an event
                assert "error" not in message, message
                return message["result"]

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def close(self) -> None:
        self.ws.close()
        self.proc.stop()
