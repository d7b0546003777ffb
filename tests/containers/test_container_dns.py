"""The container harness's first check: can one container reach another by service name?

Without container DNS (podman's netavark backend needs aardvark-dns) every service of the stack would
retry "Name or service not known" for a minute. The harness checks it before it builds anything and,
if the check fails, stops within seconds with one line that names the package. Here aardvark-dns is
hidden, or replaced by one that does not work, in a mount namespace of the harness's own: the
machine's packages stay as they are.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.procs import ROOT

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


def run_with_aardvark(tmp_path: Path, replacement: str | None) -> tuple[int, list[str], float]:
    """The whole harness, installing nothing, where podman's aardvark-dns is ``replacement`` (None: absent)."""
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
