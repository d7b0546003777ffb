"""The container harness (scripts/compose-e2e), run for real under podman: its DNS check, then the stack.

One module, so that one pytest process runs its tests one after the other: the DNS tests mount a
missing or broken aardvark-dns in front of podman, and podman keeps one aardvark-dns daemon for all
its networks, so a stack running beside them would lend them a working one (and they it a broken one).

**The DNS check.** Without container DNS (podman's netavark backend needs aardvark-dns) every service of
the stack would retry "Name or service not known" for a minute. The harness checks it before it builds
anything and, if the check fails, stops within seconds with one line that names the package. Here
aardvark-dns is hidden, or replaced by one that does not work, in a mount namespace of the harness's
own: the machine's packages stay as they are.

**The stack**, checked as a user would, with the sandbox override and three workers:
`docker-compose config -q` on both files; 30 pictures copied into the mounted folder reach the board
once each, in distinct cells, byte for byte and decodable, within 60 s; the dashboard is published on
127.0.0.1 only, answers 401 without the login and lists the queue and the workers; the healthchecks of
the image server, watcher, workers, dashboard and metrics exporter pass; the image server, dashboard
and exporter hold no Miro token; the exporter (127.0.0.1 only) counts every upload; a worker SIGKILLed
in the middle of a job loses and doubles nothing; `down` (volumes kept) and `up` keep every item and
upload what arrived meanwhile; with `UPLOAD_MODE=url` through the sandbox's ngrok stand-in, pictures
arrive verified, and with the warning page they are repaired or go by file. The stack is removed
afterwards, also on failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.fixtures.procs import ROOT, wait_for

pytestmark = [pytest.mark.containers, pytest.mark.timeout(600)]

SCRIPT = ROOT / "scripts" / "compose-e2e"
HELPER_DIRS = ("/usr/local/libexec/podman", "/usr/local/lib/podman", "/usr/libexec/podman", "/usr/lib/podman")
"""Where podman looks for netavark and aardvark-dns (as in scripts/compose-e2e)."""


@pytest.fixture(scope="module")
def harness_ready() -> None:
    """Tools and base image in place (the harness's --setup, seconds once the container test has run)."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("the check runs rootful podman in a mount namespace: Linux, as root")
    if not shutil.which("unshare"):
        pytest.skip("needs unshare (util-linux)")
    done = subprocess.run([str(SCRIPT), "--setup"], cwd=ROOT, capture_output=True, text=True, timeout=540)
    assert done.returncode == 0, f"scripts/compose-e2e --setup failed:\n{(done.stdout + done.stderr)[-4000:]}"
    assert "ok: containers reach each other by name" in done.stderr, done.stderr[-2000:]


def no_aardvark_running() -> None:
    """Wait until no aardvark-dns daemon runs: netavark hands a new network to a running one instead of
    starting the (hidden or broken) binary, so one left from the harness's last network would answer.
    It leaves by itself a moment after its last network goes; one that stays serves other networks."""
    def gone() -> bool:
        return not any(proc.info["name"] == "aardvark-dns" for proc in psutil.process_iter(["name"]))
    try:
        wait_for(gone, 20, what="the aardvark-dns daemon of the last network to exit")
    except AssertionError:
        pytest.skip("an aardvark-dns daemon serves other podman networks on this machine: it cannot be hidden from the check")


def run_with_aardvark(tmp_path: Path, replacement: str | None) -> tuple[int, list[str], float]:
    """The whole harness, installing nothing, where podman's aardvark-dns is ``replacement`` (None: absent)."""
    no_aardvark_running()
    mounts = []
    for number, helper_dir in enumerate(d for d in HELPER_DIRS if os.path.exists(f"{d}/aardvark-dns")):
        copy = tmp_path / f"helpers-{number}"
        shutil.copytree(helper_dir, copy, symlinks=False)
        (copy / "aardvark-dns").unlink()
        if replacement is not None:
            (copy / "aardvark-dns").write_text(replacement)
            (copy / "aardvark-dns").chmod(0o755)
        mounts.append(f"mount --bind {copy} {helper_dir}")
    assert mounts, "aardvark-dns is not installed, although the harness's --setup just ran"
    script = " && ".join(["mount --make-rprivate /", *mounts, f"exec {SCRIPT}"])
    env = {**os.environ, "MIRO_SYNC_E2E_NO_INSTALL": "1"}
    log_path = tmp_path / "compose-e2e.log"
    started = time.monotonic()
    with open(log_path, "w") as log:
        # unshare and sh exec into the harness, so a SIGTERM reaches it and it tears its stack down.
        proc = subprocess.Popen(["unshare", "--mount", "sh", "-c", script], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
    seconds = time.monotonic() - started
    return proc.returncode, log_path.read_text(errors="replace").splitlines(), seconds


def assert_one_line_cause(code: int, lines: list[str], seconds: float) -> str:
    output = "\n".join(lines)
    assert code != 0, f"the harness passed without container DNS:\n{output[-3000:]}"
    assert seconds < 10, f"the harness took {seconds:.1f} s to give up:\n{output[-3000:]}"
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1 and errors[0] == lines[-1], f"not one closing error line:\n{output[-3000:]}"
    assert "config -q" not in output and "built in" not in output, f"the harness went on:\n{output[-3000:]}"
    assert "reach each other by service name" in errors[0] and "package aardvark-dns" in errors[0], errors[0]
    return errors[0]


def test_without_aardvark_dns_the_harness_stops_at_once_naming_the_package(harness_ready, tmp_path):
    line = assert_one_line_cause(*run_with_aardvark(tmp_path, None))
    assert "aardvark-dns is missing" in line


def test_with_a_broken_aardvark_dns_the_harness_stops_at_once_naming_the_package(harness_ready, tmp_path):
    line = assert_one_line_cause(*run_with_aardvark(tmp_path, "#!/bin/sh\nexit 1\n"))
    assert "although aardvark-dns is installed" in line


@pytest.mark.timeout(1200)
def test_compose_stack_end_to_end(tmp_path):
    if not sys.platform.startswith("linux"):
        pytest.skip("the container harness runs podman on Linux")
    if os.geteuid() != 0 and not shutil.which("sudo"):
        pytest.skip("the container harness needs root (rootful podman)")
    log_path = tmp_path / "compose-e2e.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(SCRIPT)], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            code = proc.wait(timeout=1080)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)  # the harness tears the stack down on SIGTERM
            proc.wait(timeout=100)
            code = None
    output = log_path.read_text(errors="replace")
    assert code == 0, f"scripts/compose-e2e {'timed out' if code is None else f'exited {code}'}:\n{output[-6000:]}"
    for point in ("containers reach each other by name", "config -q", "refused by name", "pictures on the board once each",
                  "dashboard on 127.0.0.1 only", "healthchecks healthy", "no Miro token in the environment", "uploads counted across",
                  "nothing lost, nothing doubled", "earlier items kept", "each verified", "tunnel showing the warning page",
                  "a HEIC photo converted"):
        assert point in output, f"the harness did not report {point!r}:\n{output[-3000:]}"
