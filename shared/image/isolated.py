"""The picture stack in a process of its own: a decoder's crash, memory blow-up or hang costs one picture.

libvips, Pillow and libheif are native code fed hostile bytes. Run in the worker, a segfault, an
out-of-memory kill or a hang in any of them would take the worker, its queue and its heartbeat
with it. So every call that hands a picture's bytes to a native decoder (:func:`inspect`: header
reads, a GIF's full decode; the conversion inside :func:`prepare_upload`) runs in a *converter*
child, one per process that converts (a worker, the fuzzer, the bench), and what goes wrong there
becomes :class:`~shared.image.validate.BadImage` with the reason, which the worker records as the
rejection of that file version and logs once (``file.rejected``), then takes the next job:

* the child dies of a signal: "the AVIF decoder crashed on this file (SIGSEGV)";
* it runs out of memory: its data segment is capped (``RLIMIT_DATA``: private writable memory,
  which is what malloc and mmap'd buffers take; not ``RLIMIT_AS``, which also counts the address
  space glibc reserves for each thread's arena and libvips' threads, and fails at rest), so an
  allocation past the cap fails inside the decoder: "converting this file needed more than N MB";
* it takes longer than :data:`SECONDS`: it is killed, "converting this file took longer than N s".

After a crash, a kill or a memory failure the child is replaced (lazily, by the next call). A
child that died between two calls costs nothing: it is replaced before the next request is sent,
so only a death *during* a request is blamed on that request's picture.

Design. A plain subprocess (``python -m shared.image.isolated``), not a fork: forking a process
whose libvips threads have run can hang the child, and multiprocessing's ``spawn`` would run the
worker's ``__main__`` again. It imports only the picture stack and loads the decoders once
(``preload()``): it rests at 36 MB against the worker's 60 MB, which is what lets
:data:`shared.image.memory.BUDGET` be larger than it was in the worker. Requests and answers are
pickles over two pipes of their own (``multiprocessing.connection``: length-prefixed frames), so a
library writing to stdout cannot corrupt them; the request names the function the child calls
(pickled by reference), which is how a test injects a decoder that crashes. The child ignores
SIGINT and SIGTERM (a Ctrl-C or a stop sent to the worker's process group must not look like a
crash of the picture in hand: the worker decides when it stops), exits when its request pipe
closes, and is killed by the kernel when the thread that started it ends (``PR_SET_PDEATHSIG``),
so a worker killed with SIGKILL leaves no converter behind. :meth:`Converter.stop` (at exit) kills
it outright: a stop never waits for a conversion. Calls from several threads (a worker's jobs and
its verifier's repairs) take turns.

What runs in the calling process is pure Python on bytes: a file sent as it is (read, GPS cut out:
:mod:`shared.image.gps`), :func:`~shared.image.convert.carries_gps`, and the structure walks of
:func:`inspect` for PNG and JPEG (:mod:`shared.image.png`, :mod:`shared.image.jpeg`; zlib aside, no
imaging library). A PNG sent as it is never meets the child; a JPEG's one native call, its EXIF
orientation as libvips reads it (:func:`~shared.image.validate.jpeg_orientation`), is its only round
trip. Walked in the child, a 1 MB PNG cost 0.7-1.0 ms more CPU than in the worker and a JPEG 0.9-1.8
ms (the check moved, and the worker then hashes and sends bytes that another core read); split so, the
PNG costs nothing more and the JPEG 0.5-1.0 ms: bench/RESULTS.md ("Conversion in a child process").
The walks are Python: a bad file makes them raise, never crash; one that never ended would be cut by
the job's timeout, not this module's (the fuzzer, ``python -m bench fuzz``, runs them under its limits).

The one entry point for "this file: the bytes to upload, or BadImage with the reason, never a
crash of the caller" is :func:`prepare`; the worker calls its two halves, :func:`inspect` early
(before hashing and locking) and :func:`prepare_upload` when it uploads.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import re
import resource
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from shared.image import allocator, validate
from shared.image import convert as _convert
from shared.image.convert import Upload
from shared.image.memory import MB
from shared.image.sniff import SNIFF_BYTES, sniff
from shared.image.validate import BadImage, ImageInfo

SECONDS = 60.0
"""The most one call may take in the child. The slowest picture the budget lets in (an animated
GIF of 30 full-HD frames) takes about 22 s of CPU; the job timeout (``JOB_TIMEOUT``, 180 s) is longer."""

MEMORY = 600 * MB
"""How much the child's data segment may grow during a call (``RLIMIT_DATA``, set again before each):
the backstop for a picture whose header lies about what decoding it takes. The data segment counts
address space, not memory used: a 24 MP WebP took it from 139 to 515 MB (RSS: 254 MB at the peak),
libwebp's and libvips' threads reserving more than they touch; every picture the budget lets in
stays under 400 MB of growth."""

IN_PROCESS_KINDS = frozenset({"", "png"})
"""What :meth:`Converter.inspect` checks in the calling process: a PNG (its structure, in Python and
zlib: no imaging library), and a file that is no picture we know or cannot be read (refused, or its
``OSError`` raised, before any decoder is called)."""

START_SECONDS = 30.0
"""The most a new child may take to import and load the decoders (0.4 s on a quiet machine)."""

_PR_SET_PDEATHSIG = 1


class ConverterUnavailable(RuntimeError):
    """The child could not be started or answered nonsense: not the picture's fault, the job fails and is retried."""


class Converter:
    """One converter child, started on first use (or by :meth:`start`), replaced after it dies."""

    def __init__(self, seconds: float = SECONDS, memory: int = MEMORY) -> None:
        self.seconds = seconds
        self.memory = memory
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._requests: Connection | None = None
        self._answers: Connection | None = None
        self._ready = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def start(self) -> None:
        """Start the child now if none runs (it loads the decoders while the caller goes on)."""
        with self._lock:
            self._spawn_if_gone()

    def stop(self) -> None:
        """Kill the child now (at exit; a stop never waits for a conversion)."""
        with self._lock:
            self._kill()

    def call(self, fn: Callable[..., Any], *args: Any, kind: str, doing: str = "converting") -> Any:
        """``fn(*args)`` in the child: its result, or BadImage when it raised one or died, ran out
        of memory or time on it. ``kind`` names the decoder in the reason, ``doing`` the step."""
        with self._lock:
            self._spawn_if_gone()
            self._wait_ready()
            assert self._requests is not None and self._answers is not None
            try:
                self._requests.send((fn, args))
                if not self._answers.poll(self.seconds):
                    self._kill()
                    raise BadImage(f"{doing} this file took longer than {self.seconds:g} s")
                status, value = self._answers.recv()
            except (EOFError, OSError):
                raise BadImage(self._death(kind)) from None
            except BadImage:
                raise
            except BaseException:  # the job's timeout or a stop mid-call: the answer would come to the next caller
                self._kill()
                raise
            if status == "memory":
                self._kill()  # a library that failed an allocation may be left in any state
                raise BadImage(f"{doing} this file needed more than {self.memory // MB} MB")
            if status == "bad":
                raise BadImage(value)
            if status == "error":
                raise ConverterUnavailable(f"the converter failed: {value}")
            return value

    def inspect(self, path: str | os.PathLike[str]) -> ImageInfo:
        """:func:`shared.image.validate.inspect`: a PNG's and a JPEG's structure walked here (Python
        alone), a JPEG's orientation and every other kind's header read in the child."""
        kind = _kind(path)
        if kind in IN_PROCESS_KINDS:
            return validate.inspect(path)
        if kind == "jpeg":
            return validate.inspect(path, jpeg_turn=self._jpeg_orientation)
        info: ImageInfo = self.call(validate.inspect, str(path), kind=kind, doing="reading")
        return info

    def _jpeg_orientation(self, path: Path) -> int:
        turn: int = self.call(validate.jpeg_orientation, Path(path), kind="jpeg", doing="reading")
        return turn

    def convert(self, path: Path, info: ImageInfo, max_bytes: int) -> Upload:
        """:func:`shared.image.convert.convert`, in the child."""
        upload: Upload = self.call(_convert.convert, Path(path), info, max_bytes, kind=info.kind)
        return upload

    def prepare_upload(self, path: str | os.PathLike[str], info: ImageInfo, max_bytes: int, keep_gps: bool = False) -> Upload:
        """:func:`shared.image.convert.prepare_upload`: a file sent as it is here, a conversion in the child."""
        return _convert.prepare_upload(path, info, max_bytes, keep_gps, converter=self.convert)

    def prepare(self, path: str | os.PathLike[str], max_bytes: int, keep_gps: bool = False) -> Upload:
        """The file's bytes to upload, or BadImage with the reason."""
        return self.prepare_upload(path, self.inspect(path), max_bytes, keep_gps)

    # --- the child's life ---------------------------------------------------------------------

    def _spawn_if_gone(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        self._kill()  # a child that died between calls: its pipes go, nobody is blamed
        request_r, request_w = os.pipe()
        answer_r, answer_w = os.pipe()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))  # the caller's code, tests included
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "shared.image.isolated", str(request_r), str(answer_w), str(os.getpid()), str(self.memory)],
                pass_fds=(request_r, answer_w), stdin=subprocess.DEVNULL, env=env)
        finally:
            os.close(request_r)
            os.close(answer_w)
        self._requests = Connection(request_w, readable=False)
        self._answers = Connection(answer_r, writable=False)
        self._ready = False

    def _wait_ready(self) -> None:
        if self._ready:
            return
        assert self._answers is not None
        try:
            if self._answers.poll(START_SECONDS) and self._answers.recv() == "ready":
                self._ready = True
                return
        except (EOFError, OSError):
            pass
        code = self._proc.poll() if self._proc is not None else None
        self._kill()
        raise ConverterUnavailable(f"the converter did not start (exit status {code})")

    def _death(self, kind: str) -> str:
        """Why the child stopped answering, for a person; it is reaped and replaced by the next call."""
        assert self._proc is not None
        try:
            code = self._proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:  # closed its pipe and lives on: treat as dead
            code = None
        self._kill()
        decoder = f"the {kind.upper()} decoder" if kind else "the converter"
        if code is None or code >= 0:
            return f"{decoder} stopped on this file (exit status {code})"
        name = signal.Signals(-code).name
        if -code == signal.SIGKILL:
            return f"{decoder} was killed on this file ({name}; out of memory?)"
        return f"{decoder} crashed on this file ({name})"

    def _kill(self) -> None:
        for conn in (self._requests, self._answers):
            if conn is not None:
                conn.close()
        self._requests = self._answers = None
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            self._proc = None
        self._ready = False


_converter = Converter()
atexit.register(_converter.stop)


def converter() -> Converter:
    """This process's converter (the worker starts it at start-up, so the first picture does not wait)."""
    return _converter


def inspect(path: str | os.PathLike[str]) -> ImageInfo:
    """:func:`shared.image.validate.inspect` in the converter child."""
    return _converter.inspect(path)


def prepare_upload(path: str | os.PathLike[str], info: ImageInfo, max_bytes: int, keep_gps: bool = False) -> Upload:
    """:func:`shared.image.convert.prepare_upload`: a file sent as it is here, a conversion in the child."""
    return _converter.prepare_upload(path, info, max_bytes, keep_gps)


def prepare(path: str | os.PathLike[str], max_bytes: int, keep_gps: bool = False) -> Upload:
    """This file: the bytes to upload, or BadImage with the reason. Never a crash of the caller."""
    return _converter.prepare(path, max_bytes, keep_gps)


def _kind(path: str | os.PathLike[str]) -> str:
    """The kind the first bytes say (to name the decoder if it dies), '' when unknown or unreadable."""
    try:
        with open(path, "rb") as fh:
            return sniff(fh.read(SNIFF_BYTES)) or ""
    except OSError:
        return ""


# --- the child --------------------------------------------------------------------------------


def _data_bytes() -> int:
    """This process's data segment (VmData), what RLIMIT_DATA holds."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    return 0


def _serve(requests: Connection, answers: Connection, parent: int, memory: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above took effect
        return
    _convert.preload()
    hard = resource.getrlimit(resource.RLIMIT_DATA)[1]
    answers.send("ready")
    while True:
        try:
            fn, args = requests.recv()
        except EOFError:  # the parent closed the pipe or died
            return
        # From what the child holds now: libvips' threads and their arenas, made on first use, stay.
        resource.setrlimit(resource.RLIMIT_DATA, (_data_bytes() + memory, hard))
        try:
            answer: tuple[str, Any] = ("ok", fn(*args))
        except MemoryError:
            answer = ("memory", "")
        except Exception as exc:  # libvips and libheif report a failed allocation in their error's text
            if _out_of_memory(exc):
                answer = ("memory", "")
            elif isinstance(exc, BadImage):
                answer = ("bad", str(exc))
            else:  # a bug of ours: the job fails (and is retried), as it would have in the worker
                answer = ("error", f"{type(exc).__name__}: {validate.short(exc)}")
        try:
            answers.send(answer)
        except MemoryError:  # the answer itself did not fit
            answers.send(("memory", ""))
        allocator.trim()


_OUT_OF_MEMORY = re.compile(r"out of memory|memory allocation|cannot allocate|insufficient memory|error creating thread", re.IGNORECASE)
"""How libraries say an allocation failed: libvips ``out of memory``, libheif ``Memory allocation error``,
libjpeg ``Insufficient memory`` and glib ``Error creating thread`` (a thread's stack is data too).
libavif says ``Decoding of color planes failed``, which could be any broken file: counted as one."""


def _out_of_memory(exc: BaseException | None) -> bool:
    """Whether a failed allocation is behind ``exc``: its message says so, or a MemoryError that our
    own wrapping (``BadImage(...) from None``, Pillow's AVIF and BMP) keeps as its context."""
    for _ in range(5):
        if exc is None:
            return False
        if isinstance(exc, MemoryError) or _OUT_OF_MEMORY.search(str(exc)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False), int(sys.argv[3]), int(sys.argv[4]))
