"""Drill: no secret ever shows: not in any process's output, not in Redis, not on the dashboard.

The stack runs with distinctive secrets (Miro token, URL signing secret, a Redis password via
``requirepass``, the dashboard password) and goes through its error paths: Miro 500s, the tunnel's
warning page and the repair that follows, a bad file; processes started with a wrong token or a
wrong Redis password report it. Then every log, every stored value (job arguments, results,
exception texts), every dashboard page, and what the sandbox and the tunnel recorded, are searched
for each secret.
"""

from __future__ import annotations

import shutil

import pytest
import redis as redis_lib
import requests

from services.sandbox.tunnel import TunnelConfig, start_tunnel
from tests.fixtures.procs import free_port, wait_for, wait_port
from tests.fixtures.stack import LocalStack

from .harness import Rig, drop_file, picture, read
from .redis_dump import decodings, raw_values

TOKEN = "drill-miro-token-7f3a9c2e51"
SIGNING = "drill-signing-secret-4b8e0d6a93c1"
REDIS_PASSWORD = "drill-redis-password-c0ffee42"
DASHBOARD_PASSWORD = "drill-dashboard-password-9d1e"
WRONG_TOKEN = "drill-wrong-token-5a5a5a5a"
WRONG_REDIS_PASSWORD = "drill-wrong-redis-pw-e7e7e7"
SECRETS = [TOKEN, SIGNING, REDIS_PASSWORD, DASHBOARD_PASSWORD, WRONG_TOKEN, WRONG_REDIS_PASSWORD]


def _redis_with_password(spawn) -> tuple[str, int]:
    port = free_port()
    spawn([shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
           "--requirepass", REDIS_PASSWORD], "redis")
    url = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{port}/0"
    wait_for(lambda: redis_lib.Redis.from_url(url).ping(), 10, what="redis-server")
    return url, port


def _leaks(texts: dict[str, str], secrets: list[str]) -> set[tuple[str, str]]:
    return {(secret, where) for where, text in texts.items() for secret in secrets if secret in text}


def test_no_secret_in_logs_redis_or_dashboard(tmp_path, spawn, sandbox_factory, used_secret):
    for secret in SECRETS:
        used_secret(secret)  # and the end-of-run scan looks for them in every log of the session
    redis_url, redis_port = _redis_with_password(spawn)
    sandbox = sandbox_factory(tokens={TOKEN: {"boards:read", "boards:write"}})
    image_port = free_port()
    tunnel = start_tunnel(TunnelConfig(upstream=f"http://127.0.0.1:{image_port}"))
    try:
        rig = Rig(root=tmp_path, spawn=spawn, sandbox=sandbox, redis_url=redis_url)
        rig.env.update({"UPLOAD_MODE": "url", "URL_SIGNING_SECRET": SIGNING, "NGROK_API_URL": tunnel.api_url,
                        "VERIFY_GRACE": "2", "DASHBOARD_PASSWORD": DASHBOARD_PASSWORD})
        rig.start("serve", IMAGE_SERVER_BIND=f"127.0.0.1:{image_port}")
        wait_port(image_port, 20)
        rig.start_watcher()
        rig.start_workers(2)

        expected = rig.drop(4)
        rig.wait_items(4)
        tunnel.set_mode("warning-page")  # Miro gets ngrok's page instead of the picture: repaired by file
        expected |= rig.drop(1, start=10, prefix="behind-warning-page")
        wait_for(lambda: rig.events("upload.repaired"), 30, what="the repair after the warning page")
        tunnel.set_mode("normal")
        # 500s until a job has met one (a time window could close before the job reaches Miro).
        sandbox.set_faults(error_status=500)
        expected |= rig.drop(1, start=11, prefix="during-500s")
        wait_for(lambda: rig.events("upload.retry"), 30, what="a job to meet the 500s")
        sandbox.clear_faults()
        (rig.folder / "notes.png").write_text("not a picture\n")
        rig.wait_items(len(expected), timeout=60)
        rig.wait_idle()
        wait_for(lambda: rig.events("file.rejected"), 10, what="the bad file's line")

        # Processes that meet a wrong secret say so without repeating it.
        wrong_token = rig.start("worker", name="worker-wrong-token", MIRO_ACCESS_TOKEN=WRONG_TOKEN)
        assert wrong_token.popen.wait(30) == 2
        assert "MIRO_ACCESS_TOKEN" in read(wrong_token)
        wrong_token_text = rig.start("worker", name="worker-wrong-token-text", MIRO_ACCESS_TOKEN=WRONG_TOKEN, LOG_FORMAT="text")
        assert wrong_token_text.popen.wait(30) == 2
        assert "MIRO_ACCESS_TOKEN" in read(wrong_token_text)
        wrong_redis = rig.start("watch", name="watch-wrong-redis-password",
                                REDIS_URL=f"redis://:{WRONG_REDIS_PASSWORD}@127.0.0.1:{redis_port}/0")
        wait_for(lambda: "redis.waiting" in read(wrong_redis), 20, what="the watcher to report the refused password")

        # The dashboard, and every page it shows about these jobs.
        port = free_port()
        rig.start("dashboard", DASHBOARD_USERNAME="ops", DASHBOARD_BIND=f"127.0.0.1:{port}")
        base, auth = f"http://127.0.0.1:{port}", ("ops", DASHBOARD_PASSWORD)
        wait_for(lambda: requests.get(base, timeout=1).status_code == 401, 20, what="the dashboard")
        paths = ["/", "/0/view/jobs", "/0/view/workers", "/0/data/queues.json", "/0/data/workers.json"]
        paths += [f"/0/data/jobs/miro-sync/{registry}/100/asc/1.json" for registry in ("queued", "finished", "failed", "scheduled")]
        paths += [f"/0/data/job/{key.decode()[len('rq:job:'):]}.json" for key in rig.redis.scan_iter("rq:job:*")
                  if rig.redis.type(key) == b"hash"]
        pages = {path: requests.get(base + path, auth=auth, timeout=10) for path in paths}
        assert {path: page.status_code for path, page in pages.items() if page.status_code != 200} == {}

        texts = {path: page.text for path, page in pages.items()}
        texts["sandbox requests"] = str(sandbox.requests())
        texts["tunnel requests"] = str(tunnel.requests())
        rig.stop_all_cleanly()
        texts |= {path.name: path.read_text(errors="replace") for path in tmp_path.glob("*.log")}
        assert _leaks(texts, SECRETS) == set()
        stored = {(secret, key) for key, value in raw_values(rig.redis) for d in decodings(value)
                  for secret in SECRETS if secret.encode() in d}
        assert stored == set()
        log = "\n".join(texts.values())
        for event in ("upload.done", "upload.retry", "upload.repaired", "file.rejected", "redis.waiting", "dashboard.start"):
            assert f'"{event}"' in log, f"the scan did not cover {event}"
    finally:
        tunnel.stop()


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_up_sandbox_keeps_a_configured_miro_token_to_itself(tmp_path, spawn, used_secret, log_format):
    """`miro-sync up --sandbox` with a real token in the environment (.env) never passes it on, in either log format."""
    used_secret(TOKEN)
    stack = LocalStack(root=tmp_path, spawn=spawn, workers=1)
    oauth = {"MIRO_CLIENT_ID": "3458764500000000077", "MIRO_CLIENT_SECRET": "real-client-secret-in-env-0451",
             "MIRO_REFRESH_TOKEN": "real-refresh-token-in-env-7731"}  # an app with expiring tokens: not used either
    for value in oauth.values():
        used_secret(value)
    stack.env.update({"MIRO_ACCESS_TOKEN": TOKEN, "LOG_FORMAT": log_format, **oauth})
    stack.start()
    drop_file(stack.folder / "one.png", picture(1))
    stack.wait_items(1)
    assert stack.stop() == 0
    assert ('"sandbox.token"' if log_format == "json" else " sandbox.token ") in stack.log(), stack.log()[-2000:]
    assert _leaks({"up": stack.log()}, [TOKEN, oauth["MIRO_CLIENT_SECRET"], oauth["MIRO_REFRESH_TOKEN"]]) == set()
