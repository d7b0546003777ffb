"""Which paths the watcher leaves alone, and which names it refuses. Pure functions, no I/O.

*Ignored* paths are not ours to upload and not worth a word (debug log only): files being
downloaded or edited (``.part``, ``.crdownload``, ``~$x.docx``, ``.x.swp``), hidden files and
anything under a hidden folder. *Refused* names are files a person put there on purpose whose
name cannot travel safely (into a JSON job, a Miro title, a log line): they get one log line.
"""

from __future__ import annotations

import os
import unicodedata

TEMP_SUFFIXES = (".part", ".partial", ".crdownload", ".download", ".tmp", ".temp", ".swp", ".swx", "~")
"""Names ending so are files still being written (browsers, editors, download managers)."""

SYSTEM_NAMES = frozenset({"thumbs.db", "desktop.ini", "icon\r"})
"""Files operating systems drop into folders (compared in lower case)."""

MAX_NAME_BYTES = 255
"""The longest file name most file systems accept (one path component, UTF-8 bytes)."""


def ignore_reason(relpath: str) -> str | None:
    """Why ``relpath`` (relative, ``/``-separated) is not a candidate, or None when it is."""
    *folders, name = relpath.split("/")
    if any(part.startswith(".") for part in folders):
        return "in a hidden folder"
    if name.startswith("."):
        return "hidden file"
    if name.startswith("~$"):
        return "office lock file"
    lower = name.lower()
    for suffix in TEMP_SUFFIXES:
        if lower.endswith(suffix):
            return f"temporary file ({suffix})"
    if lower in SYSTEM_NAMES:
        return "system file"
    return None


def name_problem(relpath: str) -> str | None:
    """Why this name cannot be synced, or None. Checked for every candidate file."""
    try:
        encoded = relpath.encode("utf-8")
    except UnicodeEncodeError:
        return "name is not valid UTF-8"
    if any(unicodedata.category(c) == "Cc" for c in relpath):
        return "name contains control characters"
    if any(len(part) > MAX_NAME_BYTES for part in encoded.split(b"/")):
        return f"name is longer than {MAX_NAME_BYTES} bytes"
    return None


def printable(relpath: str) -> str:
    """``relpath`` safe for a log line and a Redis field: undecodable bytes become ``\\xNN``."""
    return os.fsencode(relpath).decode("utf-8", "backslashreplace")
