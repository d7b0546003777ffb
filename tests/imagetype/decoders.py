"""Decoders that fail the way native code does, for the converter child to run (imported there by name)."""

from __future__ import annotations

import os
import signal
import time


def segfault(path: str) -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def allocate(path: str, megabytes: int) -> bytearray:
    return bytearray(megabytes << 20)


def hang(path: str) -> None:
    time.sleep(3600)
