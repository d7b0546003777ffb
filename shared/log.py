"""One log line per event, structured, with secrets masked.

Usage::

    log = get_logger("worker")
    log.info("upload.done", file="a b.png", item_id="3458…", route="file")

Lines are ``key=value`` text on a terminal and JSON objects otherwise (or as ``LOG_FORMAT`` says).
Every registered secret is replaced by ``***`` in the final line, whatever field carried it, so a
token inside an exception message or a URL cannot leak.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

_SECRETS: set[str] = set()


def register_secrets(values: Iterable[str]) -> None:
    """Mask these strings in every log line from now on (values shorter than 4 chars are ignored)."""
    _SECRETS.update(v for v in values if v and len(v) >= 4)


def redact(text: str) -> str:
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
    return text


class EventLogger(logging.LoggerAdapter[logging.Logger]):
    """``log.info("event.name", key=value, ...)``: fields travel as ``record.fields``."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        fields = {k: kwargs.pop(k) for k in list(kwargs) if k not in ("exc_info", "stack_info", "stacklevel", "extra")}
        kwargs["extra"] = {"fields": fields}
        return msg, kwargs


def get_logger(name: str) -> EventLogger:
    return EventLogger(logging.getLogger(f"miro_sync.{name}"), {})


def _fmt_value(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in " =\"\n\t") or not text.isprintable():
        return json.dumps(text, ensure_ascii=False)
    return text


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        parts = [f"{stamp}.{int(record.msecs):03d}Z", record.levelname.lower(), record.name.removeprefix("miro_sync."), record.getMessage()]
        for key, value in getattr(record, "fields", {}).items():
            if value is not None:
                parts.append(f"{key}={_fmt_value(value)}")
        if record.exc_info:
            parts.append("error=" + _fmt_value(self.formatException(record.exc_info)))
        return redact(" ".join(parts))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name.removeprefix("miro_sync."),
            "event": record.getMessage(),
        }
        for key, value in getattr(record, "fields", {}).items():
            if value is not None:
                payload[key] = value if isinstance(value, (int, float, bool)) else str(value)
        if record.exc_info:
            payload["error"] = self.formatException(record.exc_info)
        return redact(json.dumps(payload, ensure_ascii=False))


def configure(level: str = "INFO", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Send every ``miro_sync.*`` event (and warnings from libraries) to ``stream`` (stderr)."""
    stream = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("miro_sync").setLevel(level)
    # RQ logs a line per job start/end at INFO; keep its warnings and errors only.
    logging.getLogger("rq").setLevel(logging.WARNING)
