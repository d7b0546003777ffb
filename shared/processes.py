"""Child processes and waiting, one copy for `miro-sync up`, the tests, the bench and the scripts.

Standard library only: ``scripts/compose_e2e.py`` imports it before any virtualenv exists.

- :func:`free_port`: a port on 127.0.0.1 nobody listens on right now (the kernel picks it).
- :func:`wait_for`: poll a predicate until it is truthy, then return its value; on timeout raise
  the caller's error type naming what was awaited (``what`` may be a callable, evaluated only then).
- :class:`LoggedProcess`: a child in its own session, output to a log file; :meth:`~LoggedProcess.stop`
  TERMs the whole process group, then KILLs what is left, even when the leader is already gone.
- :func:`stop_all`: TERM a set of children at once (each one's whole process group when it leads
  one), then wait for each, KILLing the ones that hang.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    predicate: Callable[[], T],
    timeout: float,
    what: str | Callable[[], str] = "condition",
    interval: float = 0.05,
    error: type[Exception] = TimeoutError,
    tolerate: tuple[type[BaseException], ...] = (Exception,),
) -> T:
    """``predicate()``'s first truthy value; exceptions in ``tolerate`` count as "not yet" (the
    thing may not be up), and the last one is named in the timeout message."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except tolerate as exc:
            last_exc = exc
        if time.monotonic() >= deadline:
            text = what() if callable(what) else what
            raise error(f"timed out after {timeout:g}s waiting for {text}" + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(interval)


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class LoggedProcess:
    """A child process in its own session (so its whole tree can be signalled), output to ``log_path``."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.args = args
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.popen = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def on_kill(self, timeout: float) -> None:
        """Called when the group outlived SIGTERM by ``timeout`` seconds (before the KILL)."""

    def stop(self, timeout: float = 10.0) -> int | None:
        """TERM the whole process group, then KILL what is left, even when the leader is already gone."""
        signal_group(self.popen.pid, 15)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.on_kill(timeout)
        signal_group(self.popen.pid, 9)  # children a dead leader left behind, or a leader that hung
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()
        return self.popen.returncode


NamedChild = tuple[str, "subprocess.Popen[bytes]"]


def stop_all(children: Iterable[NamedChild], timeout: float,
             on_kill: Callable[[str, subprocess.Popen[bytes]], None] = lambda name, proc: None) -> None:
    """SIGTERM every child at once (last started first), then wait for each; KILL those that hang.

    A child that leads its own process group (``start_new_session``) is signalled with its group, so
    what it started itself is stopped with it.
    """
    ordered = list(reversed(list(children)))
    for _, proc in ordered:
        if proc.poll() is None:
            _signal(proc, 15)
    for name, proc in ordered:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            on_kill(name, proc)
            _signal(proc, 9)
            proc.wait()


def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        leads_group = os.getpgid(proc.pid) == proc.pid
    except ProcessLookupError:
        return
    if leads_group:
        signal_group(proc.pid, sig)
    else:
        proc.send_signal(sig)
