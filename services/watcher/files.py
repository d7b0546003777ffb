"""The watcher's cheap look at one file: what it is, without reading more than its first bytes.

Deep validation (decoding) is the worker's; here we only stat, open without following links,
read :data:`shared.imagetype.SNIFF_BYTES` and sniff. The version (size, mtime_ns) comes from
the open descriptor, so it describes the bytes we sniffed.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from shared import imagetype

from .filters import name_problem

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)

SYMLINK = "symbolic link (refused: it can point outside the folder)"


@dataclass(frozen=True)
class Candidate:
    """An image file, complete as far as we can tell: to be queued unless already synced."""

    relpath: str
    size: int
    mtime_ns: int
    kind: str


@dataclass(frozen=True)
class Refused:
    relpath: str
    size: int
    mtime_ns: int
    reason: str


@dataclass(frozen=True)
class Gone:
    relpath: str


@dataclass(frozen=True)
class NotAFile:
    """A directory (even one named ``x.png``): nothing to upload."""

    relpath: str


Outcome = Candidate | Refused | Gone | NotAFile


def examine(folder: Path, relpath: str) -> Outcome:
    path = os.path.join(folder, relpath)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return Gone(relpath)
    except OSError as exc:
        return Refused(relpath, -1, 0, f"cannot be read ({exc.strerror})")
    if stat.S_ISLNK(st.st_mode):
        return Refused(relpath, st.st_size, st.st_mtime_ns, SYMLINK)
    if stat.S_ISDIR(st.st_mode):
        return NotAFile(relpath)
    if not stat.S_ISREG(st.st_mode):
        return Refused(relpath, st.st_size, st.st_mtime_ns, "not a regular file")
    problem = name_problem(relpath)
    if problem:
        return Refused(relpath, st.st_size, st.st_mtime_ns, problem)
    if st.st_size == 0:
        return Refused(relpath, 0, st.st_mtime_ns, "empty file (0 bytes)")
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        return Gone(relpath)
    except PermissionError:
        return Refused(relpath, st.st_size, st.st_mtime_ns, "unreadable (permission denied)")
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # replaced by a link since the lstat
            return Refused(relpath, st.st_size, st.st_mtime_ns, SYMLINK)
        return Refused(relpath, st.st_size, st.st_mtime_ns, f"cannot be read ({exc.strerror})")
    try:
        st = os.fstat(fd)
        head = os.read(fd, imagetype.SNIFF_BYTES)
    except OSError as exc:
        return Refused(relpath, st.st_size, st.st_mtime_ns, f"cannot be read ({exc.strerror})")
    finally:
        os.close(fd)
    if not stat.S_ISREG(st.st_mode):
        return Refused(relpath, st.st_size, st.st_mtime_ns, "not a regular file")
    if not head:
        return Refused(relpath, 0, st.st_mtime_ns, "empty file (0 bytes)")
    kind = imagetype.sniff(head)
    if kind is None:
        return Refused(relpath, st.st_size, st.st_mtime_ns, imagetype.describe_non_image(head))
    unsupported = imagetype.unsupported_reason(kind)
    if unsupported:
        return Refused(relpath, st.st_size, st.st_mtime_ns, unsupported)
    return Candidate(relpath, st.st_size, st.st_mtime_ns, kind)
