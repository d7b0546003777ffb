"""Stand-ins for a broken picture stack, each failing as native code or a bad edit would, for the
tests of the fuzzer's seam (bench.fuzz.isolated.run_one). Module-level functions: the fork
server's child imports them by name."""

from __future__ import annotations

import ctypes
import os
import threading

from shared.imagetype import BadImage, Upload


def aborts(path: str, max_bytes: int) -> Upload:
    os.abort()


def segfaults(path: str, max_bytes: int) -> Upload:
    ctypes.string_at(0)  # reads address 0
    raise AssertionError("unreachable")


def hangs(path: str, max_bytes: int) -> Upload:
    threading.Event().wait()
    raise AssertionError("unreachable")


def bloats(path: str, max_bytes: int) -> Upload:
    held = b"\x01" * (400 << 20)  # written, so resident
    threading.Event().wait()
    return Upload(held, "image/jpeg", "x.jpg", 1, 1, None)


def raises(path: str, max_bytes: int) -> Upload:
    raise KeyError(0x8825)


def refuses_without_a_reason(path: str, max_bytes: int) -> Upload:
    raise BadImage("")


def sends_too_much(path: str, max_bytes: int) -> Upload:
    return Upload(bytes(max_bytes + 1), "image/jpeg", "x.jpg", 1, 1, "jpeg->jpeg q90")


def refuses(path: str, max_bytes: int) -> Upload:
    raise BadImage("corrupt png (no IHDR)")
