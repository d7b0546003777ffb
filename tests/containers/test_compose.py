"""The Docker Compose stack, built and run for real (podman), checked as a user would: see scripts/compose-e2e.

What the harness checks, with the sandbox override and three workers: before anything is built, that
containers find each other by name (test_container_dns.py: what happens when they cannot);
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

import pytest

from tests.fixtures.procs import ROOT

pytestmark = [pytest.mark.containers, pytest.mark.timeout(1200)]

SCRIPT = ROOT / "scripts" / "compose-e2e"


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
