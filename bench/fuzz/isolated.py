"""The fuzzer's one seam to the picture stack: :func:`run_one`, a file in, a :class:`Verdict` out.

Each case runs ``inspect`` then ``prepare_upload`` (6 MB, GPS removed, as the worker calls them)
in a child process, so a native crash, a hang or a memory blow-up costs that child and is reported,
never the caller. Children are forked from multiprocessing's fork server, which imported and
preloaded the picture stack (:mod:`bench.fuzz.warm`) while it still had one thread: a fork per case
instead of a fresh interpreter (about 0.4 s of imports), and never a fork of a process whose libvips
thread pool has run (the child would hand work to threads it does not have).

Until the converter has an isolation of its own, this child is it. When it does (an entry point that
returns the upload or raises ``BadImage`` and turns a crash into a reason), :func:`picture_stack`
calls that entry point instead of ``prepare_upload``, and the reasons it gives for a dead or killed
converter are read as :data:`FINDINGS` in :func:`_answer`.
"""

from __future__ import annotations

import faulthandler
import functools
import multiprocessing
import os
import resource
import signal
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from shared.settings import MIRO_MAX_UPLOAD_BYTES

HARD_CAP = 4
"""The child's data segment is capped at this many times :attr:`Limits.memory_mb`, so a bomb that
allocates faster than the parent samples cannot take the machine's memory from its other users."""

_POLL = 0.02  # seconds between samples of the child's RSS
_SHOWN_TYPES = frozenset({"image/png", "image/jpeg", "image/gif"})


@dataclass(frozen=True)
class Limits:
    seconds: float = 10.0
    """No answer by then is a hang. Pictures in the corpus take milliseconds; a 50 MP JPEG about a second."""
    memory_mb: int = 1024
    """Peak RSS over this is a finding (the conversion aims at 300 MB for a 50 MP photo)."""
    max_bytes: int = MIRO_MAX_UPLOAD_BYTES


class Outcome(str, Enum):
    ACCEPTED = "accepted"  # an upload that keeps the contract: fits max_bytes, a type Miro shows
    REFUSED = "refused"  # BadImage with a reason
    CRASH = "crash"  # the child died: a signal, or an exit without an answer
    HANG = "hang"  # no answer within Limits.seconds
    MEMORY = "memory"  # peak RSS over Limits.memory_mb, MemoryError, or a refusal for lack of memory
    UNEXPECTED = "unexpected"  # any other exception, a BadImage without a reason, an upload breaking the contract


FINDINGS = frozenset({Outcome.CRASH, Outcome.HANG, Outcome.MEMORY, Outcome.UNEXPECTED})


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    detail: str  # the refusal's reason, the exception, the signal, what the upload was
    seconds: float
    peak_mb: float  # the child's peak RSS (the fork server's ~40 MB of libraries included)
    trace: str = ""  # where it was: the Python stack at a crash or hang (faulthandler), or a traceback

    @property
    def is_finding(self) -> bool:
        return self.outcome in FINDINGS

    def describe(self) -> str:
        return f"{self.outcome.value}: {self.detail} ({self.seconds:.2f} s, {self.peak_mb:.0f} MB)"


def picture_stack(path: str, max_bytes: int) -> Any:
    """What the worker does with a file: validate it, then the bytes to upload (or BadImage)."""
    from shared.imagetype import inspect, prepare_upload

    return prepare_upload(path, inspect(path), max_bytes)


def run_one(path: str | os.PathLike[str], limits: Limits = Limits(), stack: Callable[[str, int], Any] = picture_stack) -> Verdict:
    """Run ``stack`` (the picture stack; run_one's own tests give stand-ins that crash) on ``path``
    in a child process: what happened, whatever happened.

    A script (``python file.py``) that calls this needs multiprocessing's ``if __name__ == "__main__":``
    guard: each child prepares by running the main file again. ``python -m`` and pytest need nothing."""
    ctx = _context()
    receive, send = ctx.Pipe(duplex=False)
    fd, trace_path = tempfile.mkstemp(prefix="fuzz-trace-")
    os.close(fd)
    child = ctx.Process(target=_examine, args=(stack, str(path), limits, send, trace_path), daemon=True)
    started = time.monotonic()
    try:
        child.start()
        send.close()
        answer, peak, killed = _watch(child, receive, limits, started)
        seconds = time.monotonic() - started
        trace = Path(trace_path).read_text(errors="replace")
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        receive.close()
        os.unlink(trace_path)
    if killed is not None:
        return Verdict(killed, _killed_detail(killed, limits, peak), seconds, peak, trace)
    if answer is None:
        code = child.exitcode or 0
        died = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code} without an answer"
        return Verdict(Outcome.CRASH, died, seconds, peak, trace)
    peak = max(peak, answer["peak_mb"])
    outcome = Outcome(answer["outcome"])
    if peak > limits.memory_mb and outcome not in FINDINGS:
        return Verdict(Outcome.MEMORY, f"peak RSS {peak:.0f} MB after it was {outcome.value}: {answer['detail']}", seconds, peak)
    return Verdict(outcome, answer["detail"], seconds, peak, answer.get("trace", ""))


@functools.cache
def _context() -> Any:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["bench.fuzz.warm"])
    return ctx


def _watch(child: Any, receive: Connection, limits: Limits, started: float) -> tuple[dict[str, Any] | None, float, Outcome | None]:
    """Wait for the child's answer or its death, sampling its RSS: (answer, peak MB, why it was killed)."""
    peak = 0.0
    while True:
        ready = wait([receive, child.sentinel], timeout=_POLL)
        if receive in ready or receive.poll():
            try:
                return receive.recv(), peak, None
            except EOFError:  # died before answering
                return None, peak, None
        if child.sentinel in ready:
            return None, peak, None
        peak = max(peak, _rss_mb(child.pid))
        if peak > limits.memory_mb:
            child.kill()
            return None, peak, Outcome.MEMORY
        if time.monotonic() - started > limits.seconds:
            child.kill()
            return None, peak, Outcome.HANG


def _killed_detail(outcome: Outcome, limits: Limits, peak: float) -> str:
    if outcome is Outcome.HANG:
        return f"no answer in {limits.seconds:.0f} s (killed)"
    return f"RSS {peak:.0f} MB over the {limits.memory_mb} MB limit (killed)"


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, IndexError):  # gone between the wait and the read
        return 0.0


# --- in the child ---------------------------------------------------------------------------------


def _examine(stack: Callable[[str, int], Any], path: str, limits: Limits, send: Connection, trace_path: str) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash is reported, not dumped into the working folder
    cap = limits.memory_mb * HARD_CAP << 20
    resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))
    trace = open(trace_path, "w")  # open until the child ends: faulthandler writes to it when it dies
    faulthandler.enable(trace)
    faulthandler.dump_traceback_later(limits.seconds * 0.8, file=trace)  # where a hang was, before the kill
    answer = _answer(stack, path, limits)
    faulthandler.cancel_dump_traceback_later()
    answer["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    send.send(answer)


def _answer(stack: Callable[[str, int], Any], path: str, limits: Limits) -> dict[str, Any]:
    from shared.imagetype import BadImage

    try:
        upload = stack(path, limits.max_bytes)
    except BadImage as exc:
        reason = str(exc).strip()
        if not reason:
            return {"outcome": Outcome.UNEXPECTED.value, "detail": "BadImage without a reason", "trace": traceback.format_exc()}
        # libvips refuses an allocation it cannot make ("out of memory"): under the cap, not in production
        return {"outcome": (Outcome.MEMORY if "out of memory" in reason.lower() else Outcome.REFUSED).value, "detail": reason}
    except BaseException as exc:  # everything the caller was not promised: that is the finding
        outcome = Outcome.MEMORY if isinstance(exc, MemoryError) else Outcome.UNEXPECTED
        return {"outcome": outcome.value, "detail": f"{type(exc).__name__}: {exc}"[:300], "trace": traceback.format_exc()}
    what = f"{upload.content_type} {len(upload.content)} bytes {upload.width}x{upload.height} {upload.converted or 'as it is'}"
    what += f" ({upload.stripped} removed)" if upload.stripped else ""
    if len(upload.content) > limits.max_bytes or upload.content_type not in _SHOWN_TYPES or not upload.content:
        return {"outcome": Outcome.UNEXPECTED.value, "detail": f"upload breaks the contract: {what}"}
    return {"outcome": Outcome.ACCEPTED.value, "detail": what}
