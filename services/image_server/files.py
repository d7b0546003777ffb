"""Which file a signed name may open, and only that.

The signature already proves the worker chose the name, so these checks are a second wall: even a
name the worker signed by mistake (``../x``, ``/etc/passwd``, a hidden file, a link out of the folder)
opens nothing outside the watch folder, and nothing that is not an image.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import BinaryIO

from werkzeug.security import safe_join

from shared.imagetype import CONTENT_TYPES, SNIFF_BYTES, sniff


class NotServable(Exception):
    """The name does not lead to a servable image. ``reason`` is one short word for the log."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


_DRIVE = re.compile(r"^[A-Za-z]:")


def check_name(relpath: str) -> None:
    """Refuse names that are absolute, climb, hide, or use syntax other than POSIX ``a/b``. Pure."""
    if not relpath or "\x00" in relpath or "\\" in relpath:
        raise NotServable("unsafe-name")
    if relpath.startswith("/") or _DRIVE.match(relpath):
        raise NotServable("absolute")
    parts = relpath.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise NotServable("unsafe-name")
    if any(p.startswith(".") for p in parts):
        raise NotServable("hidden")


def open_image(folder: Path, relpath: str) -> tuple[BinaryIO, int, str]:
    """(open file, size, content type) of the image ``relpath`` names inside ``folder``."""
    check_name(relpath)
    joined = safe_join(str(folder), relpath)
    if joined is None:
        raise NotServable("unsafe-name")
    root = folder.resolve()
    try:
        real = Path(joined).resolve(strict=True)  # follows every link, in the name and its parents
    except (OSError, RuntimeError):
        raise NotServable("missing") from None
    if not real.is_relative_to(root) or real == root:
        raise NotServable("outside-folder")
    check_name(real.relative_to(root).as_posix())  # a link inside the folder to a hidden file
    try:
        # O_NOFOLLOW: the last part cannot have become a link since resolve(); O_NONBLOCK: a FIFO
        # planted in the folder must not hang the worker thread.
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        raise NotServable("unreadable") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise NotServable("not-a-file")
    f = os.fdopen(fd, "rb")
    try:
        kind = sniff(f.read(SNIFF_BYTES))  # the bytes say what it is, not the name
        if kind is None:
            raise NotServable("not-an-image")
        f.seek(0)
    except BaseException:
        f.close()
        raise
    return f, info.st_size, CONTENT_TYPES[kind]
