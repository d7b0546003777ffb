"""`miro-sync sandbox` as a process: flags, printed addresses, state file, clean exit on SIGTERM."""

from __future__ import annotations

import signal

import requests

from tests.fixtures.procs import MIRO_SYNC, free_port, wait_for

from .helpers import board_path, file_parts, png


def start(spawn, *flags: str, name: str = "sandbox"):
    port = free_port()
    proc = spawn([*MIRO_SYNC, "sandbox", "--port", str(port), *flags], name)
    wait_for(lambda: "board:" in proc.output(), 20, what="the sandbox's address lines")
    return proc, f"http://127.0.0.1:{port}"


def test_defaults_need_no_setup_and_are_printed(spawn):
    proc, url = start(spawn)
    out = proc.output()
    assert f"{url}/v2" in out and f"MIRO_API_URL={url}" in out
    assert "token: sandbox-token" in out
    assert f"board: sandbox-board=   page: {url}/boards/sandbox-board=" in out  # readable, as `up` prints it
    resp = requests.get(url + board_path("sandbox-board="), headers={"Authorization": "Bearer sandbox-token"}, timeout=5)
    assert resp.status_code == 200
    page = requests.get(f"{url}/boards/sandbox-board=", timeout=5)
    assert page.status_code == 200 and "<main id=\"canvas\"" in page.text
    proc.popen.send_signal(signal.SIGTERM)
    assert proc.popen.wait(10) == 0


def test_flags_tokens_boards_credits_latency(spawn):
    proc, url = start(spawn, "--token", "reader:boards:read", "--token", "writer", "--board", "b1=", "--board", "b2",
                      "--credits-per-minute", "1000", "--latency-ms", "50", "--fetch-user-agent", "UA/1")
    out = proc.output()
    assert "token: reader   (boards:read)" in out and "token: writer   (boards:read, boards:write)" in out
    assert f"{url}/boards/b1=" in out and f"{url}/boards/b2" in out
    writer = {"Authorization": "Bearer writer"}
    resp = requests.get(url + board_path("b2"), headers=writer, timeout=5)
    assert resp.status_code == 200 and resp.headers["X-RateLimit-Limit"] == "1000"
    assert requests.get(url + board_path("sandbox-board="), headers=writer, timeout=5).status_code == 404
    denied = requests.post(url + board_path("b1=", "/images"), headers={"Authorization": "Bearer reader"},
                           files=file_parts(png()), timeout=5)
    assert denied.status_code == 403
    faults = requests.get(url + "/_sandbox/faults", timeout=5).json()
    assert faults["latency_ms"] == 50 and faults["credits_per_minute"] == 1000
    proc.popen.send_signal(signal.SIGINT)
    assert proc.popen.wait(10) == 0


def test_bad_token_flag_is_a_usage_error(spawn):
    proc = spawn([*MIRO_SYNC, "sandbox", "--port", str(free_port()), "--token", "t:boards:admin"], "bad")
    assert proc.popen.wait(20) == 2
    assert "scopes must be among" in proc.output()


def test_state_file_keeps_boards_across_restarts(spawn, tmp_path):
    state = tmp_path / "sandbox.json"
    picture = png(33, 11)
    proc, url = start(spawn, "--state", str(state), name="first")
    auth = {"Authorization": "Bearer sandbox-token"}
    first = requests.post(url + board_path("sandbox-board=", "/images"), headers=auth,
                          files=file_parts(picture, {"title": "kept"}), timeout=5).json()
    proc.popen.send_signal(signal.SIGTERM)
    assert proc.popen.wait(10) == 0

    proc, url = start(spawn, "--state", str(state), name="second")
    got = requests.get(url + board_path("sandbox-board=", f"/images/{first['id']}"), headers=auth, timeout=5)
    assert got.status_code == 200 and got.json()["data"]["title"] == "kept"
    original = got.json()["data"]["imageUrl"].replace("format=preview", "format=original")
    signed = requests.get(original, headers=auth, timeout=5).json()["url"]
    assert requests.get(signed, timeout=5).content == picture
    second = requests.post(url + board_path("sandbox-board=", "/images"), headers=auth,
                           files=file_parts(png()), timeout=5).json()
    assert int(second["id"]) > int(first["id"])  # ids go on, never reused
