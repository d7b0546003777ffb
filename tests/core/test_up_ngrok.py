"""`miro-sync up --ngrok`: the no-Docker tunnel through pyngrok fails with one clear line, never a traceback."""

from __future__ import annotations

import subprocess

from tests.fixtures.procs import MIRO_SYNC, free_port

TOKEN = "ngrok-authtoken-1234567890abcdef"


def run_up(tmp_path, env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    (tmp_path / "in").mkdir(exist_ok=True)
    env = {
        "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MIRO_SYNC_ENV_FILE": "/nonexistent", "LOG_FORMAT": "text",
        "MIRO_ACCESS_TOKEN": "tok-123456", "MIRO_BOARD_ID": "board=", "WATCH_FOLDER": str(tmp_path / "in"),
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "MIRO_API_URL": f"http://127.0.0.1:{free_port()}",
        **env_extra,
    }
    args = MIRO_SYNC + ["up", "--ngrok", "--workers", "1", "--state-dir", str(tmp_path / "state"), "--image-port", str(free_port())]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)


def test_ngrok_needs_its_authtoken(tmp_path):
    proc = run_up(tmp_path, {})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("miro-sync up: configuration error: NGROK_AUTHTOKEN is not set")


def test_an_ngrok_agent_that_fails_gives_one_line_and_stops_the_stack(tmp_path):
    # A stand-in for the ngrok binary that refuses the authtoken, as the real agent does offline.
    fake = tmp_path / "ngrok"
    fake.write_text("#!/bin/sh\necho 't=2026 lvl=eror msg=\"failed to auth\" err=\"ERR_NGROK_4018 authentication failed\" args=\"$*\"'\nexit 1\n")
    fake.chmod(0o755)
    proc = run_up(tmp_path, {"NGROK_AUTHTOKEN": TOKEN, "PYNGROK_NGROK_PATH": str(fake)})
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("miro-sync up: ngrok did not start") and "NGROK_AUTHTOKEN" in last, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert TOKEN not in proc.stderr + proc.stdout
