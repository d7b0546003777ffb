"""shared/processes.py: the one wait_for, free_port and process-group stop that tests, bench, scripts and `up` use."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from shared.processes import LoggedProcess, free_port, stop_all, wait_for


def test_wait_for_returns_the_first_truthy_value_and_tolerates_what_it_is_told():
    calls = iter([None, OSError("not up yet"), 0, "ready"])

    def probe():
        value = next(calls)
        if isinstance(value, Exception):
            raise value
        return value

    assert wait_for(probe, 5, "ready", interval=0.001) == "ready"


def test_wait_for_raises_the_callers_error_naming_what_and_the_last_error():
    def refused():
        raise ConnectionRefusedError("nobody there")

    with pytest.raises(LookupError, match=r"timed out after 0.1s waiting for the thing \(last error: ConnectionRefusedError"):
        wait_for(refused, 0.1, lambda: "the thing", interval=0.01, error=LookupError)
    with pytest.raises(ValueError):  # not tolerated: raised at once
        wait_for(lambda: int("x"), 5, "never", tolerate=(OSError,))


def test_free_port_is_free():
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_stop_kills_what_a_dead_leader_left_behind(tmp_path):
    # The leader exits at once; its child ignores SIGTERM and lives on in the process group.
    proc = LoggedProcess(["sh", "-c", "(trap '' TERM; sleep 30) & echo started"], tmp_path / "p.log")
    wait_for(lambda: "started" in proc.output(), 10)
    group = proc.pid
    proc.stop(timeout=0.5)

    def gone():
        try:
            os.killpg(group, 0)
            return False
        except ProcessLookupError:
            return True

    wait_for(gone, 10, "the group to be gone")


def test_stop_all_terms_then_kills_the_ones_that_hang():
    polite = subprocess.Popen(["sleep", "30"])
    stubborn = subprocess.Popen(["sh", "-c", "trap '' TERM; echo trapped; exec sleep 30"], stdout=subprocess.PIPE)
    assert stubborn.stdout.readline() == b"trapped\n"  # the trap is in place before the TERM
    killed = []
    stop_all([("polite", polite), ("stubborn", stubborn)], timeout=0.5, on_kill=lambda name, proc: killed.append(name))
    assert killed == ["stubborn"]
    assert polite.returncode == -15 and stubborn.returncode == -9
    stubborn.stdout.close()
