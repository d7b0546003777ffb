"""A WATCH_FOLDER that does not exist (a typo, a drive not mounted) is an error, never created.

Created, it would be an empty folder: the watcher would see every synced picture gone and hold
them all as deletions, one `check --fix` away from being applied.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.fixtures.procs import MIRO_SYNC, free_port, wait_for
from tests.fixtures.stack import LocalStack


@pytest.mark.parametrize("command", [["watch"], ["worker"], ["serve"], ["check"], ["check", "--fix"], ["sync", "--dry-run"],
                                     ["forget", "a.png"], ["up", "--workers", "1"]])
def test_a_typo_in_watch_folder_stops_the_command_in_one_line_and_creates_nothing(tmp_path, command):
    (tmp_path / "inbox").mkdir()  # the folder the user meant
    typo = tmp_path / "inbx"
    env = {
        "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MIRO_SYNC_ENV_FILE": "/nonexistent", "LOG_FORMAT": "text",
        "WATCH_FOLDER": str(typo), "MIRO_ACCESS_TOKEN": "token-123456", "MIRO_BOARD_ID": "uXjVOabc=", "URL_SIGNING_SECRET": "s" * 32,
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "MIRO_API_URL": f"http://127.0.0.1:{free_port()}",
    }
    done = subprocess.run(MIRO_SYNC + command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "WATCH_FOLDER" in lines[0] and f"({typo}) does not exist" in lines[0], lines[0]
    assert not typo.exists()


def test_make_demo_creates_its_folder_and_prints_one_readable_board_address(tmp_path, spawn):
    """`make demo` is `miro-sync up --sandbox --folder ./inbox`: on a fresh checkout that folder is not there yet."""
    stack = LocalStack(root=tmp_path, spawn=spawn, workers=0)  # no worker needed to see the stack come up
    stack.folder.rmdir()
    stack.start(wait=False)
    wait_for(lambda: "watch them arrive at" in stack.log(), 60, what=lambda: "the stack's last line\n" + stack.log()[-3000:])
    assert stack.folder.is_dir()
    # The sandbox's banner and up's last line give the same address, as a person would type it.
    page = f"{stack.api}/boards/sandbox-board="
    log = stack.log()
    assert f"page: {page}\n" in log and f"watch them arrive at {page}\n" in log, log
    stack.stop()
