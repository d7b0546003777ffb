"""Operating the stack, against real processes (`miro-sync up --sandbox` and the metrics exporter):
`status --json` counts a run with uploads, a rejected file and a failed job; `retry` brings the
failed job back; the metrics show the upload counters rising and are not served by the image
server (nor through the tunnel); `health` answers for the workers and the watcher."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import requests

from tests.fixtures.procs import MIRO_SYNC, Proc, free_port, wait_for
from tests.fixtures.stack import LocalStack, make_image

pytestmark = pytest.mark.timeout(240)


class Spawner:
    def __init__(self, folder) -> None:
        self.folder = folder
        self.started: list[Proc] = []

    def __call__(self, args, name, env=None, cwd=None) -> Proc:
        import os

        full_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        proc = Proc(args, self.folder / f"{name}.log", env=full_env, cwd=cwd)
        self.started.append(proc)
        return proc


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    root = tmp_path_factory.mktemp("ops")
    spawn = Spawner(root)
    stack = LocalStack(root=root, spawn=spawn, workers=2)
    stack.env["UPLOAD_MODE"] = "file"
    stack.start()
    stack.metrics_port = free_port()
    stack.metrics = spawn(MIRO_SYNC + ["metrics", "--bind", f"127.0.0.1:{stack.metrics_port}"], "metrics", env=stack.service_env())
    wait_for(lambda: scrape(stack) is not None, 30, what=lambda: "the metrics endpoint\n" + stack.metrics.output()[-2000:])
    yield stack
    for proc in reversed(spawn.started):
        proc.stop(timeout=40)


def scrape(stack) -> str | None:
    try:
        r = requests.get(f"http://127.0.0.1:{stack.metrics_port}/metrics", timeout=5)
    except requests.ConnectionError:
        return None
    return r.text if r.status_code == 200 else None


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if found == labels:
            return float(match.group(3))
    return 0.0


def cli(stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(MIRO_SYNC + list(args), env={"PATH": "/usr/bin:/bin", **stack.service_env()},
                          capture_output=True, text=True, timeout=60)


def status(stack) -> tuple[dict, int]:
    done = cli(stack, "status", "--json")
    assert done.returncode in (0, 1), done.stdout + done.stderr
    return json.loads(done.stdout), done.returncode


def faults(stack, **spec) -> None:
    if spec:
        requests.post(f"{stack.api}/_sandbox/faults", json=spec, timeout=5).raise_for_status()
    else:
        requests.delete(f"{stack.api}/_sandbox/faults", timeout=5).raise_for_status()


@pytest.fixture(scope="module")
def run_with_trouble(rig):
    """Four uploads (two in a subfolder), one rejected file, one job failed by Miro (400)."""
    before = scrape(rig)
    (rig.folder / "trip" / "day1").mkdir(parents=True)
    for i, name in enumerate(["top 1.png", "top 2.png", "trip/day1/a.png", "trip/day1/b.png"]):
        make_image(rig.folder / name, seed=i)
    rig.wait_items(4)
    (rig.folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a picture at all")
    wait_for(lambda: status(rig)[0]["rejected"] == 1, 30, what=lambda: rig.log()[-3000:])
    faults(rig, error_status=400)
    try:
        make_image(rig.folder / "refused.png", seed=9)
        wait_for(lambda: status(rig)[0]["failed"] == 1, 30, what=lambda: rig.log()[-3000:])
    finally:
        faults(rig)
    return before


def test_status_json_counts_the_run(rig, run_with_trouble):
    data, code = status(rig)
    assert code == 1, "a failed job is waiting: not healthy"
    totals = {k: data[k] for k in ("synced", "queued", "in_flight", "retrying", "failed", "rejected", "held")}
    assert totals == {"synced": 4, "queued": 0, "in_flight": 0, "retrying": 0, "failed": 1, "rejected": 1, "held": 0}
    assert data["awaiting_verification"] == 0
    assert data["folders"] == {".": {"synced": 2, "rejected": 1}, "trip/day1": {"synced": 2, "rejected": 0}}
    (failure,) = data["recent_failures"]
    assert failure["path"] == "refused.png" and "400" in failure["reason"], failure
    (rejection,) = data["recent_rejections"]
    assert rejection["path"] == "broken.png" and rejection["reason"], rejection
    assert data["workers_alive"] == 2 and data["watchers_alive"] == 1
    assert data["credits_left"] is not None and data["credits_left"] > 0
    assert data["paused_until"] is None and data["hold"] is None
    assert data["circuit"] == {"state": "closed", "reason": None}
    assert data["last_upload_at"] is not None


def test_status_text_lists_failures_and_rejections(rig, run_with_trouble):
    done = cli(rig, "status")
    assert done.returncode == 1
    assert "synced 4" in done.stdout and "failed 1" in done.stdout
    assert re.search(r"✘ refused\.png: .*400", done.stdout), done.stdout
    assert "✘ broken.png: " in done.stdout
    assert "trip/day1" in done.stdout and "workers alive 2" in done.stdout


def test_health_finds_the_workers_and_the_watcher(rig, run_with_trouble):
    assert cli(rig, "health", "worker").returncode == 0
    assert cli(rig, "health", "watcher").returncode == 0
    assert cli(rig, "health", "worker", "--host", "no-such-host").returncode == 1
    assert cli(rig, "health", "http", f"http://127.0.0.1:{rig.ports['image']}/healthz").returncode == 0
    assert cli(rig, "health", "http", f"http://127.0.0.1:{free_port()}/").returncode == 1


def test_metrics_count_uploads_and_miro_errors(rig, run_with_trouble):
    before, now = run_with_trouble, scrape(rig)
    assert sample(before, "miro_sync_uploads_total", route="file", outcome="uploaded") == 0
    assert sample(now, "miro_sync_uploads_total", route="file", outcome="uploaded") == 4
    assert sample(now, "miro_sync_uploads_total", route="none", outcome="failed") == 1
    errors = re.findall(r'^miro_sync_miro_errors_total\{code="([^"]*)",status="400"\} (\S+)$', now, re.M)
    assert errors and all(code != "none" for code, _ in errors) and sum(float(v) for _, v in errors) >= 1, now
    assert sample(now, "miro_sync_upload_latency_seconds_count") == 4
    assert sample(now, "miro_sync_queue_depth", state="failed") == 1
    assert sample(now, "miro_sync_workers_alive") == 2
    assert sample(now, "miro_sync_synced_files") == 4
    assert sample(now, "miro_sync_credits_left") > 0


def test_retry_brings_the_failed_job_back(rig, run_with_trouble):
    # No failed job, for three reasons a person needs told apart.
    done = cli(rig, "retry", "nothing-here.png", "broken.png", "top 1.png")
    said = dict(line.split(": ", 1) for line in done.stdout.splitlines())
    assert done.returncode == 1 and set(said) == {"✘ nothing-here.png", "✘ broken.png", "✘ top 1.png"}, done.stdout
    assert said["✘ nothing-here.png"].startswith("not in the watch folder"), done.stdout
    assert said["✘ broken.png"].startswith("rejected as a bad file (") and "replace it with a good copy" in said["✘ broken.png"], done.stdout
    assert said["✘ top 1.png"] == "nothing to retry: it is on the board", done.stdout
    done = cli(rig, "retry", str(rig.folder / "refused.png"))  # a path to the file works too
    assert done.returncode == 0 and "requeued refused.png" in done.stdout, done.stdout + done.stderr
    rig.wait_items(5)
    data = wait_for(lambda: (lambda d: d if d[0]["synced"] == 5 else None)(status(rig)), 30)
    assert data[1] == 0 and data[0]["failed"] == 0 and data[0]["recent_failures"] == []
    assert sample(scrape(rig), "miro_sync_uploads_total", route="file", outcome="uploaded") == 5


def test_metrics_are_not_served_by_the_image_server_nor_through_the_tunnel(rig, run_with_trouble):
    assert "miro_sync_uploads_total" in scrape(rig)
    for port in (rig.ports["image"], rig.ports["tunnel"]):
        for path in ("/metrics", "/metrics/", "/_metrics"):
            r = requests.get(f"http://127.0.0.1:{port}{path}", timeout=5)
            assert r.status_code in (403, 404), (port, path, r.status_code)
            assert "miro_sync_" not in r.text


def test_health_fails_once_a_process_stops_refreshing_its_liveness(rig, run_with_trouble):
    """Last in this module: it freezes the watcher and the workers (SIGSTOP), then lets them go on."""
    import os
    import signal

    import psutil

    children = psutil.Process(rig.proc.pid).children(recursive=True)
    frozen = [p for p in children if any(arg in ("watch", "worker") for arg in p.cmdline())]
    assert len(frozen) == 3, [p.cmdline() for p in children]
    for p in frozen:
        os.kill(p.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: cli(rig, "health", "worker").returncode == 1, 20, interval=0.5)
        wait_for(lambda: cli(rig, "health", "watcher").returncode == 1, 30, interval=0.5)
    finally:
        for p in frozen:
            os.kill(p.pid, signal.SIGCONT)
    wait_for(lambda: cli(rig, "health", "worker").returncode == 0 and cli(rig, "health", "watcher").returncode == 0, 20, interval=0.5)
