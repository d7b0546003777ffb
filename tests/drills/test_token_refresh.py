"""Drills: an app with expiring tokens (OAuth refresh with rotation) keeps uploading.

The sandbox mints access tokens of 4 s (Miro: an hour) and kills the old pair on every refresh.

* 8 workers, a stream of pictures over many lifetimes: every picture once, no failed job, and the
  sandbox counts about one refresh per lifetime, not one per worker;
* the worker holding the refresh lock is SIGKILLed: the others wait out the lock (seconds), one
  of them refreshes, nothing is lost;
* the stack is stopped after a rotation and started again after the access token expired: the
  stored pair is used, the dead refresh token in the environment is never sent;
* the refresh token is revoked: one hold line, jobs wait, `doctor` names the fix, and uploads
  resume by themselves after `miro-sync login` (driven here through the sandbox's authorize page).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
import requests

from shared.tokens import LOCK_TTL, TokenStore
from tests.fixtures.procs import MIRO_SYNC, wait_for

from .harness import read

CLIENT = ("3458764500000000009", "drill-client-secret-4f2a9c")
TTL = 4.0
PICTURES, SPREAD_SECONDS, BATCH = 70, 21.0, 5


def oauth_rig(rig_factory, **sandbox_fields):
    rig = rig_factory(oauth_client=CLIENT, access_token_ttl=TTL, **sandbox_fields)
    first = rig.sandbox.oauth_initial()
    # As a user would copy them from the sandbox's start-up lines (or the app's settings) into .env.
    rig.env.update({"MIRO_CLIENT_ID": CLIENT[0], "MIRO_CLIENT_SECRET": CLIENT[1], "MIRO_REFRESH_TOKEN": first["refresh_token"],
                    "MIRO_ACCESS_TOKEN": first["access_token"], "MIRO_AUTHORIZE_URL": rig.sandbox.url + "/oauth/authorize"})
    return rig


def refreshes(rig) -> int:
    return rig.sandbox.stats()["refreshes"]


@pytest.mark.slow
def test_eight_workers_share_one_refresh_per_token_lifetime(rig_factory):
    """Scaled from 200 pictures in 60 s to 70 in 21 s for the suite's time: still 13 pictures per
    token lifetime, over 5 lifetimes. (Full size, run once by hand: 19 refreshes in 60 s.)"""
    rig = oauth_rig(rig_factory)
    rig.start_watcher()
    rig.start_workers(8)
    started = time.monotonic()
    expected: dict[str, bytes] = {}
    batches = PICTURES // BATCH
    for batch in range(batches):
        expected |= rig.drop(BATCH, start=batch * BATCH)
        time.sleep(max(0.0, started + SPREAD_SECONDS / batches * (batch + 1) - time.monotonic()))
    rig.wait_items(len(expected), timeout=60)
    rig.wait_idle()
    elapsed = time.monotonic() - started
    rig.assert_each_once(expected)
    assert rig.failed_jobs() == 0
    count = refreshes(rig)
    print(f"\n{len(expected)} pictures over {SPREAD_SECONDS:g} s, 8 workers, {elapsed:.1f} s, {count} refreshes, token lifetime {TTL:g} s")
    # A pair is refreshed when a quarter of its life is left: one refresh per 3 s of traffic at most.
    assert elapsed / TTL - 1 <= count <= elapsed / (0.75 * TTL) + 2, (count, elapsed)
    assert rig.sandbox.oauth.refused == 0, "a refresh token was presented twice"
    assert len(rig.events("oauth.refreshed")) == count
    rig.stop_all_cleanly()


def test_a_worker_killed_while_it_holds_the_refresh_lock_delays_the_others_by_seconds(rig_factory):
    rig = oauth_rig(rig_factory)
    rig.start_watcher()
    workers = rig.start_workers(3)
    store = TokenStore(rig.redis)
    # Token requests hang in the network; the stored access token expires meanwhile (on a slow
    # machine the workers may have refreshed the first one already while starting).
    rig.sandbox.stall_oauth(120)
    wait_for(lambda: rig.sandbox.oauth.access_error(store.read().pair.access_token), 10, what="the stored token to expire")
    before = refreshes(rig)
    expected = rig.drop(20)
    wait_for(lambda: rig.sandbox.oauth.stalled == 1, 20, what=lambda: "a refresh to be under way\n" + rig.tail())
    holder = store.lock_holder()
    assert holder, "a token request without the lock"
    pid = int(holder.split(":")[1])
    [victim] = [w for w in workers if w.pid == pid]
    os.killpg(victim.pid, signal.SIGKILL)
    victim.popen.wait(5)
    killed_at = time.monotonic()
    # Its request never reached the token service (the client left while it hung): the refresh
    # token stays the live one. The lock stays behind until its TTL.
    wait_for(lambda: rig.sandbox.oauth.dropped == 1, 10, what="the dead worker's request to be dropped")
    rig.sandbox.stall_oauth(0)
    assert refreshes(rig) == before and store.lock_holder() == holder

    wait_for(lambda: refreshes(rig) == before + 1, LOCK_TTL + 10, what=lambda: "a live worker to refresh\n" + rig.tail())
    delay = time.monotonic() - killed_at
    print(f"\nrefresh {delay:.1f} s after the lock holder was killed")
    assert delay < LOCK_TTL + 5
    rig.start_worker("respawn")
    rig.wait_items(len(expected), timeout=60)
    rig.wait_idle(timeout=30)
    rig.assert_each_once(expected)
    assert rig.failed_jobs() == 0 and rig.sandbox.oauth.refused == 0
    rig.stop_all_cleanly()


def test_a_restart_after_a_rotation_uses_the_stored_pair_not_the_dead_env_token(rig_factory):
    rig = oauth_rig(rig_factory)
    rig.start_watcher()
    rig.start_workers(2)
    expected = rig.drop(5)
    rig.wait_items(5)
    wait_for(lambda: rig.sandbox.oauth.access_error(rig.sandbox.oauth_initial()["access_token"]), 10, what="the first token to expire")
    expected |= rig.drop(5, start=50, prefix="rotated")
    rig.wait_items(10)
    assert refreshes(rig) >= 1, "no rotation: the drill proves nothing"
    rig.stop_all_cleanly()
    store = TokenStore(rig.redis)
    stored = store.read()
    # Down for longer than the access token lives: it has expired when the stack comes back.
    wait_for(lambda: time.time() > stored.pair.expires_at, TTL + 2, what="the stored access token to expire")

    rig.start_watcher()
    rig.start_workers(2)  # same environment: MIRO_REFRESH_TOKEN is the dead first one
    expected |= rig.drop(5, start=100, prefix="after")
    rig.wait_items(15)
    rig.wait_idle()
    rig.assert_each_once(expected)
    assert rig.failed_jobs() == 0
    assert rig.sandbox.oauth.refused == 0, "the dead refresh token from the environment was sent"
    assert store.read().generation > stored.generation
    rig.stop_all_cleanly()


def test_a_revoked_refresh_token_holds_the_jobs_until_login(rig_factory, spawn):
    rig = oauth_rig(rig_factory)
    rig.start_watcher()
    rig.start_workers(2)
    rig.sandbox.set_faults(latency_ms=100)
    expected = rig.drop(30)
    wait_for(lambda: len(rig.items()) >= 3, 20, what="uploads to start")
    rig.sandbox.revoke_oauth()  # the user removed the app from the team, or the refresh token aged out
    wait_for(lambda: rig.events("miro.token_refused"), 20, what=lambda: "the refusal to be reported\n" + rig.tail())
    on_board = len(rig.items())
    assert on_board < len(expected), "every upload finished before the revocation; the drill proves nothing"
    rig.sandbox.set_faults(latency_ms=0)
    expected |= rig.drop(5, start=100, prefix="while-held")
    wait_for(lambda: len(rig.events("file.queued")) == len(expected), 20, what="the watcher to queue the late files")
    time.sleep(2)  # held: nothing more arrives, nothing fails
    assert len(rig.items()) == on_board and rig.failed_jobs() == 0
    refused = rig.events("miro.token_refused")
    assert len(refused) == 1, refused
    assert "invalid_grant" in refused[0]["reason"] and "miro-sync login" in refused[0]["reason"]
    assert rig.sandbox.oauth.refused == 1, "the dead refresh token was presented more than once"

    doctor = subprocess.run(MIRO_SYNC + ["doctor", "--skip-tunnel"], env={**os.environ, **rig.process_env()},
                            capture_output=True, text=True, timeout=60)
    failed = [ln for ln in doctor.stdout.splitlines() if ln.startswith("✘")]
    assert [ln.split(":")[0] for ln in failed] == ["✘ miro token pair", "✘ miro token and board"], doctor.stdout
    assert all("invalid_grant" in ln and "miro-sync login" in ln for ln in failed) and doctor.returncode == 1

    login = spawn(MIRO_SYNC + ["login", "--port", "0"], "login", env=rig.process_env(LOG_FORMAT="json"))
    url = wait_for(lambda: next((ln.strip() for ln in read(login).splitlines() if "/oauth/authorize?" in ln), None), 20,
                   what="the authorize address")
    page = requests.get(url, timeout=10)  # the person approves; the browser follows the redirect to login's listener
    assert page.status_code == 200 and "authorized" in page.text
    assert login.popen.wait(20) == 0, read(login)
    assert "held jobs resume now" in read(login)

    rig.wait_items(len(expected), timeout=60)
    rig.wait_idle()
    rig.assert_each_once(expected)
    assert rig.failed_jobs() == 0
    rig.stop_all_cleanly()


def test_a_worker_started_before_login_holds_and_resumes_after_it(rig_factory, spawn):
    rig = oauth_rig(rig_factory)
    rig.env.update({"MIRO_REFRESH_TOKEN": "", "MIRO_ACCESS_TOKEN": ""})  # a fresh install: nothing but the client
    rig.start_watcher()
    [worker] = rig.start_workers(1)
    [held] = rig.events("miro.token_refused")
    assert "miro-sync login" in held["reason"] and worker.alive()
    expected = rig.drop(3)
    wait_for(lambda: len(rig.events("file.queued")) == 3, 20, what="the files to be queued")
    login = spawn(MIRO_SYNC + ["login", "--port", "0"], "login-first", env=rig.process_env())
    url = wait_for(lambda: next((ln.strip() for ln in read(login).splitlines() if "/oauth/authorize?" in ln), None), 20,
                   what="the authorize address")
    assert requests.get(url, timeout=10).status_code == 200
    assert login.popen.wait(20) == 0, read(login)
    rig.wait_items(3, timeout=30)
    rig.wait_idle()
    rig.assert_each_once(expected)
    assert rig.failed_jobs() == 0
    rig.stop_all_cleanly()
