"""`miro-sync doctor`: one ✔/✘ line per check, the fix named, exit 0 only when all pass."""

from __future__ import annotations

import subprocess

import pytest

from shared import keys
from tests.fixtures.procs import MIRO_SYNC, free_port, wait_for
from tests.fixtures.stack import LocalStack, make_image


def deliveries(stack) -> dict[str, str]:
    return {path: entry.delivery for path, entry in stack.ledger().all_items().items()}


def doctor(env: dict[str, str], cwd) -> subprocess.CompletedProcess:
    return subprocess.run(MIRO_SYNC + ["doctor"], env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True, timeout=60, cwd=cwd)


@pytest.fixture(scope="module")
def shared_stack(module_spawn):
    """One stack for the module: doctor only reads it (each test names what it breaks in its own env)."""
    stack = LocalStack(root=module_spawn.folder, spawn=module_spawn)
    stack.env.update({"UPLOAD_MODE": "url"})
    stack.start()
    yield stack
    stack.stop()


@pytest.fixture
def healthy(shared_stack):
    shared_stack.set_tunnel_mode("normal")  # a test before may have changed it
    return shared_stack


def line_for(output: str, name: str) -> str:
    return next(line for line in output.splitlines() if line[2:].startswith(name))


def test_all_green_on_a_healthy_sandbox_stack(healthy, tmp_path):
    proc = doctor(healthy.service_env(), tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checks = [line for line in proc.stdout.splitlines() if line[:1] in "✔✘"]
    assert [c.split(":")[0][2:] for c in checks] == ["settings", "redis", "watch folder", "miro token and board", "tunnel",
                                                     "pictures awaiting verification", "tunnel circuit"]
    assert all(c.startswith("✔") for c in checks), proc.stdout


def test_names_the_warning_page(healthy, tmp_path):
    healthy.set_tunnel_mode("warning-page")
    proc = doctor(healthy.service_env(), tmp_path)
    assert proc.returncode != 0
    line = line_for(proc.stdout, "tunnel")
    assert line.startswith("✘") and "warning" in line and "UPLOAD_MODE=file" in line, line


def test_shows_pictures_awaiting_verification_and_an_open_circuit(local_stack, tmp_path):
    local_stack.env.update({"UPLOAD_MODE": "url", "VERIFY_GRACE": "120"})
    local_stack.start()
    make_image(local_stack.folder / "first.png", "png", seed=1)  # the probe passes, and is cached
    wait_for(lambda: deliveries(local_stack).get("first.png") == "verified", 30, what=lambda: local_stack.log()[-3000:])
    local_stack.set_tunnel_mode("warning-page")
    make_image(local_stack.folder / "second.png", "png", seed=2)  # by URL: Miro gets the warning page
    wait_for(lambda: deliveries(local_stack).get("second.png") == "unverified", 30, what=lambda: local_stack.log()[-3000:])
    line = line_for(doctor(local_stack.service_env(), tmp_path).stdout, "pictures awaiting verification")
    assert line.startswith("✔") and line.split(": ", 1)[1].startswith("1 (") and "next check in" in line, line

    local_stack.ledger().redis.delete(keys.TUNNEL_PROBE)  # the next upload probes again, and sees the page
    make_image(local_stack.folder / "third.png", "png", seed=3)
    wait_for(lambda: deliveries(local_stack).get("third.png") == "file", 30, what=lambda: local_stack.log()[-3000:])
    proc = doctor(local_stack.service_env(), tmp_path)
    line = line_for(proc.stdout, "tunnel circuit")
    assert proc.returncode != 0 and line.startswith("✘") and "open since" in line and "warning-page" in line and "by file" in line, line


def test_wrong_token(healthy, tmp_path):
    proc = doctor(healthy.service_env(MIRO_ACCESS_TOKEN="not-the-token"), tmp_path)
    line = line_for(proc.stdout, "miro token and board")
    assert proc.returncode != 0 and line.startswith("✘") and "401" in line and "MIRO_ACCESS_TOKEN" in line
    assert "not-the-token" not in proc.stdout + proc.stderr


def test_unknown_board(healthy, tmp_path):
    proc = doctor(healthy.service_env(MIRO_BOARD_ID="noSuchBoard="), tmp_path)
    line = line_for(proc.stdout, "miro token and board")
    assert proc.returncode != 0 and line.startswith("✘") and "404" in line and "MIRO_BOARD_ID" in line


def test_redis_down(healthy, tmp_path):
    proc = doctor(healthy.service_env(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"), tmp_path)
    line = line_for(proc.stdout, "redis")
    assert proc.returncode != 0 and line.startswith("✘") and "REDIS_URL" in line


def test_bad_settings_is_a_red_line_and_every_check_still_printed(tmp_path):
    proc = doctor({"MIRO_SYNC_ENV_FILE": "/nonexistent", "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}, tmp_path)
    assert proc.returncode != 0
    assert proc.stdout.strip().startswith("✘ settings: MIRO_ACCESS_TOKEN, MIRO_BOARD_ID and WATCH_FOLDER are not set")
    checks = [line for line in proc.stdout.splitlines() if line[:1] in "✔✘"]
    assert [c.split(":")[0][2:] for c in checks] == ["settings", "redis", "watch folder", "miro token and board", "tunnel",
                                                     "pictures awaiting verification", "tunnel circuit"], proc.stdout
    assert "not checked: MIRO_ACCESS_TOKEN and MIRO_BOARD_ID not set" in line_for(proc.stdout, "miro token and board")
    assert "not checked: WATCH_FOLDER not set" in line_for(proc.stdout, "watch folder")


def test_missing_folder_every_check_still_printed(healthy, tmp_path):
    missing = tmp_path / "not-yet" / "inbox"
    proc = doctor(healthy.service_env(WATCH_FOLDER=str(missing)), tmp_path)
    checks = [line for line in proc.stdout.splitlines() if line[:1] in "✔✘"]
    assert [c.split(":")[0][2:] for c in checks] == ["settings", "redis", "watch folder", "miro token and board", "tunnel",
                                                     "pictures awaiting verification", "tunnel circuit"], proc.stdout
    line = line_for(proc.stdout, "watch folder")
    # A typo in WATCH_FOLDER, or a drive not mounted: red, with the fix; nothing is created.
    assert line.startswith("✘") and f"{missing} does not exist" in line and "mkdir -p" in line and "WATCH_FOLDER" in line, line
    assert proc.returncode == 1, proc.stdout
    assert line_for(proc.stdout, "miro token and board").startswith("✔"), proc.stdout
    assert not missing.exists() and not missing.parent.exists()


def test_folder_that_cannot_be_made_is_red_and_the_rest_still_run(healthy, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    proc = doctor(healthy.service_env(WATCH_FOLDER=str(blocker / "inbox")), tmp_path)
    assert proc.returncode == 1
    assert line_for(proc.stdout, "watch folder").startswith("✘")
    assert line_for(proc.stdout, "miro token and board").startswith("✔"), proc.stdout
    assert line_for(proc.stdout, "tunnel").startswith("✔"), proc.stdout
