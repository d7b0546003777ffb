"""Services refuse to start with a wrong token or board: one clear line, exit 2, no retry storm."""

from __future__ import annotations

import subprocess

import pytest

from tests.fixtures.procs import MIRO_SYNC


@pytest.mark.parametrize("command", ["worker", "watch"])
@pytest.mark.parametrize("token,board,expected", [("wrong-token", None, "401"), (None, "noSuchBoard=", "404")])
def test_wrong_token_or_board_stops_the_service(sandbox, redis_url, tmp_path, command, token, board, expected):
    (tmp_path / "in").mkdir()
    env = {
        "PATH": "/usr/bin:/bin", "MIRO_SYNC_ENV_FILE": "/nonexistent", "REDIS_URL": redis_url, "WATCH_FOLDER": str(tmp_path / "in"),
        "MIRO_API_URL": sandbox.url, "MIRO_ACCESS_TOKEN": token or sandbox.token, "MIRO_BOARD_ID": board or sandbox.board_id,
        "LOG_FORMAT": "text",
    }
    proc = subprocess.run(MIRO_SYNC + [command], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("miro-sync")]
    assert len(errors) == 1 and expected in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr and "wrong-token" not in proc.stderr
    # It asked Miro once, not in a loop.
    board_reads = [r for r in sandbox.requests() if r["method"] == "GET" and r["path"].startswith("/v2/boards/")]
    assert len(board_reads) == 1
