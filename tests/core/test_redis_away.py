"""Redis away: every command and service says so in one line that names REDIS_URL, never a traceback.

Each runs as a person runs it, against a REDIS_URL where nothing listens (with a password in it,
which must not be shown).
"""

from __future__ import annotations

import logging
import os
import subprocess

import pytest
import redis
import requests

from shared import redis_down
from tests.fixtures.procs import MIRO_SYNC, free_port, wait_for

PASSWORD = "pw-never-shown-123"


@pytest.fixture
def away(tmp_path):
    """The environment of a user whose Redis is not running; and the address as it must be shown."""
    port = free_port()
    folder = tmp_path / "inbox"
    folder.mkdir()
    env = {
        "PATH": os.environ["PATH"], "HOME": str(tmp_path), "MIRO_SYNC_ENV_FILE": "/nonexistent", "LOG_FORMAT": "text",
        "REDIS_URL": f"redis://:{PASSWORD}@127.0.0.1:{port}/0", "MIRO_ACCESS_TOKEN": "token-123456", "MIRO_BOARD_ID": "uXjVOabc=",
        "WATCH_FOLDER": str(folder), "MIRO_API_URL": f"http://127.0.0.1:{free_port()}", "URL_SIGNING_SECRET": "s" * 32,
        "DASHBOARD_USERNAME": "ops", "DASHBOARD_PASSWORD": "dash-password-1",
    }
    return env, f"REDIS_URL=redis://:***@127.0.0.1:{port}/0"


def _one_line(text: str, shown: str) -> str:
    assert "Traceback" not in text and PASSWORD not in text, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert shown in lines[0] and "no answer from Redis" in lines[0], text
    return lines[0]


@pytest.mark.parametrize("command,code", [
    (["status"], 2), (["status", "--json"], 2), (["check"], 2), (["sync", "--dry-run"], 2), (["retry", "--all"], 2),
    (["retry", "a.png"], 2), (["forget", "a.png"], 2), (["health", "worker"], 1), (["login", "--no-listen"], 2),
])
def test_a_command_says_it_in_one_line(away, tmp_path, command, code):
    env, shown = away
    if command[0] == "login":  # an app with expiring tokens; the check comes before the authorize address
        env |= {"MIRO_CLIENT_ID": "3458764517517852417", "MIRO_CLIENT_SECRET": "client-secret-9876"}
    done = subprocess.run(MIRO_SYNC + command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == code, done.stderr
    _one_line(done.stdout + done.stderr, shown)


def test_doctor_says_it_on_its_redis_line(away, tmp_path):
    env, shown = away
    done = subprocess.run(MIRO_SYNC + ["doctor", "--skip-tunnel"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr and PASSWORD not in done.stdout
    assert shown in next(line for line in done.stdout.splitlines() if line.startswith("✘ redis:")), done.stdout


@pytest.mark.parametrize("command,event,page", [
    ("worker", "redis.waiting", None), ("watch", "redis.waiting", None), ("serve", "redis.unavailable", "IMAGE_SERVER_BIND"),
    ("dashboard", "redis.unavailable", "DASHBOARD_BIND"), ("metrics", "redis.unavailable", "METRICS_BIND"),
])
def test_a_service_says_it_in_one_line(away, spawn, command, event, page):
    env, shown = away
    port = free_port()
    if page:
        env[page] = f"127.0.0.1:{port}"
    proc = spawn(MIRO_SYNC + [command], command, env=env)
    wait_for(lambda: event in proc.output(), 30, what=lambda: f"the {event} line\n{proc.output()}")
    line = next(line for line in proc.output().splitlines() if event in line)
    assert shown.split("=", 1)[1] in line and "REDIS_URL" in line
    if command in ("dashboard", "metrics"):  # a page that needs Redis: the same line, as a 503
        path = "/0/data/queues.json" if command == "dashboard" else "/metrics"
        answer = wait_for(lambda: _get(f"http://127.0.0.1:{port}{path}"), 30, what="the server to answer")[0]
        assert answer.status_code == 503 and shown in answer.text, answer.text
    proc.stop(timeout=30)
    log = proc.log_path.read_text()
    assert "Traceback" not in log and PASSWORD not in log, log


def _get(url: str) -> tuple[requests.Response] | None:
    try:
        return (requests.get(url, auth=("ops", "dash-password-1"), timeout=5),)  # a 503 Response is falsy
    except requests.ConnectionError:
        return None


def test_a_waiting_service_repeats_its_line_every_30_seconds(caplog):
    """Two minutes of waiting, on a clock that moves only when the service pauses: a line at 0, 30, 60 and 90 s."""
    now = [0.0]

    def pause(seconds: float) -> bool:
        now[0] += seconds
        return now[0] > 100  # then asked to stop

    dead = redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    caplog.set_level(logging.INFO, logger="miro_sync")
    log = redis_down.EventLogger(logging.getLogger("miro_sync.test"), {})
    assert redis_down.wait_until_answers(dead, "redis://127.0.0.1:1/0", log, pause=pause, clock=lambda: now[0]) is False
    waiting = [r for r in caplog.records if r.getMessage() == "redis.waiting"]
    assert len(waiting) == 4 and all(r.fields["redis_url"] == "redis://127.0.0.1:1/0" for r in waiting)  # type: ignore[attr-defined]


def test_the_address_is_shown_without_its_password():
    assert redis_down.shown("redis://:secret@host:6379/0") == "redis://:***@host:6379/0"
    assert redis_down.shown("rediss://user:secret@host:6380/1") == "rediss://user:***@host:6380/1"
    assert redis_down.shown("redis://host:6379/0") == "redis://host:6379/0"
    assert "secret" not in redis_down.shown("unix:///run/redis.sock?db=0&password=secret")
