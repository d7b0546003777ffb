"""The watcher's path filter and name checks: pure functions, tested as tables."""

from __future__ import annotations

import pytest

from services.watcher.filters import ignore_reason, name_problem, printable


@pytest.mark.parametrize(
    "relpath, reason",
    [
        ("photo.jpg", None),
        ("sub/dir/photo.PNG", None),
        ("x.png", None),
        ("no-extension", None),  # the bytes decide, not the name
        ("a b (1).jpeg", None),
        ("é/日本.png", None),
        ("photo.jpg.part", "temporary file (.part)"),
        ("photo.jpg.PART", "temporary file (.part)"),
        ("photo.jpg.crdownload", "temporary file (.crdownload)"),
        ("photo.jpg.download", "temporary file (.download)"),
        ("photo.jpg.tmp", "temporary file (.tmp)"),
        ("photo.jpg.partial", "temporary file (.partial)"),
        ("photo.jpg~", "temporary file (~)"),
        ("notes.swp", "temporary file (.swp)"),
        ("~$report.docx", "office lock file"),
        (".DS_Store", "hidden file"),
        (".gitignore", "hidden file"),  # the checkout's ./inbox holds one
        (".photo.jpg", "hidden file"),
        (".git/objects/ab", "in a hidden folder"),
        ("ok/.cache/photo.jpg", "in a hidden folder"),
        ("Thumbs.db", "system file"),
        ("desktop.ini", "system file"),
        ("~photo.jpg", None),  # only the ~$ prefix marks Office lock files
    ],
)
def test_ignore_reason(relpath, reason):
    assert ignore_reason(relpath) == reason


@pytest.mark.parametrize(
    "relpath, problem",
    [
        ("photo.jpg", None),
        ("sub/" + "é" * 127 + ".png", "name is longer than 255 bytes"),  # 131 characters, 258 bytes
        ("a" * 251 + ".png", None),  # 255 bytes: the longest legal name
        ("line\nbreak.png", "name contains control characters"),
        ("tab\there.png", "name contains control characters"),
        ("bell\x07.png", "name contains control characters"),
        ("del\x7f.png", "name contains control characters"),
        ("latin1-\udce9t\udce9.png", "name is not valid UTF-8"),
        ("a" * 256 + ".png", "name is longer than 255 bytes"),
        ("emoji 📷.png", None),
    ],
)
def test_name_problem(relpath, problem):
    assert name_problem(relpath) == problem


def test_printable_keeps_valid_names_and_escapes_bad_bytes():
    assert printable("é/photo.png") == "é/photo.png"
    assert printable("caf\udce9.png") == "caf\\xe9.png"
