"""`miro-sync login` against the sandbox's authorize page: by local redirect, by paste, refusals."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import redis as redis_lib
import requests

from shared import keys
from shared.tokenpair import PairCodec, PairSource
from shared.tokens import TokenStore
from tests.fixtures.procs import MIRO_SYNC

CLIENT = ("3458764500000000003", "login-client-secret-31")


@pytest.fixture
def sb(sandbox_factory):
    return sandbox_factory(oauth_client=CLIENT)


def login_env(sb, redis_url, **extra):
    return {**os.environ, "MIRO_SYNC_ENV_FILE": "/nonexistent", "MIRO_CLIENT_ID": CLIENT[0], "MIRO_CLIENT_SECRET": CLIENT[1],
            "MIRO_API_URL": sb.url, "MIRO_AUTHORIZE_URL": sb.url + "/oauth/authorize", "REDIS_URL": redis_url,
            "LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1", **extra}


def start_login(sb, redis_url, *args, **extra):
    proc = subprocess.Popen(MIRO_SYNC + ["login", *args], env=login_env(sb, redis_url, **extra), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "/oauth/authorize?" in line:
            return proc, line.strip(), seen
    raise AssertionError("".join(seen))


def test_login_by_local_redirect_stores_the_pair_and_lifts_a_hold(sb, redis_url):
    r = redis_lib.Redis.from_url(redis_url)
    r.set(keys.AUTH_BLOCKED, json.dumps({"status": 401, "code": "invalid_grant", "message": "x", "at": 0}))
    proc, url, _ = start_login(sb, redis_url, "--port", "0")
    page = requests.get(url, timeout=10)  # the browser: authorize page, then the redirect to login's listener
    assert page.status_code == 200 and "authorized" in page.text
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    stored = TokenStore(r).read()
    assert stored.pair.source is PairSource.LOGIN and stored.pair.lifetime == 3599
    assert requests.get(f"{sb.url}/v2/boards/sandbox-board=", headers={"Authorization": f"Bearer {stored.pair.access_token}"},
                        timeout=5).status_code == 200
    assert not r.exists(keys.AUTH_BLOCKED) and "held jobs resume now" in out
    assert stored.pair.access_token not in out and stored.pair.refresh_token not in out


def test_login_by_paste_works_without_a_listener_and_encrypts_with_a_key(sb, redis_url):
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    proc, url, _ = start_login(sb, redis_url, "--no-listen", MIRO_TOKEN_KEY=key)
    # Headless: the browser (elsewhere) ends on a page that does not load; the person pastes its address.
    landed = requests.get(url, allow_redirects=False, timeout=10).headers["Location"]
    out, _ = proc.communicate(landed + "\n", timeout=30)
    assert proc.returncode == 0, out
    r = redis_lib.Redis.from_url(redis_url)
    assert TokenStore(r, PairCodec(key)).read().pair.source is PairSource.LOGIN
    assert b"sbx-" not in r.hget(keys.OAUTH_PAIR, "pair")


def test_a_pasted_address_of_another_login_is_refused(sb, redis_url):
    proc, url, _ = start_login(sb, redis_url, "--no-listen")
    landed = requests.get(url.replace("state=", "state=other"), allow_redirects=False, timeout=10).headers["Location"]
    out, _ = proc.communicate(landed + "\n", timeout=30)
    assert proc.returncode == 1 and "state differs" in out
    assert not redis_lib.Redis.from_url(redis_url).exists(keys.OAUTH_PAIR)


def test_a_used_code_is_refused_with_one_line(sb, redis_url):
    proc, url, _ = start_login(sb, redis_url, "--no-listen")
    landed = requests.get(url, allow_redirects=False, timeout=10).headers["Location"]
    code = landed.split("code=")[1].split("&")[0]
    assert requests.post(sb.url + "/v1/oauth/token", params={"grant_type": "authorization_code", "code": code, "client_id": CLIENT[0],
                         "client_secret": CLIENT[1], "redirect_uri": landed.split("?")[0]}, timeout=5).status_code == 200
    out, _ = proc.communicate(code + "\n", timeout=30)  # a bare code works too, but this one is used up
    assert proc.returncode == 1 and "refused the code" in out


def test_login_without_a_client_names_the_variable(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "MIRO_SYNC_ENV_FILE": "/nonexistent", "HOME": str(tmp_path)}
    proc = subprocess.run(MIRO_SYNC + ["login"], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "MIRO_CLIENT_ID is not set" in lines[0], proc.stderr
