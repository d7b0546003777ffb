"""The image server as it runs: `miro-sync serve` (gunicorn) behind the ngrok stand-in."""

from __future__ import annotations

import json

import pytest
import requests

from services.sandbox.tunnel import TunnelConfig, start_tunnel
from shared import keys
from shared.tunnel import PROBE_NAME, PROBE_PNG, TunnelState, discover_public_url, probe, probe_path
from tests.fixtures.procs import MIRO_SYNC, free_port, wait_for

from .support import SECRET, image_bytes, make_settings
from .test_app import sig_of, signed

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
PHOTO = image_bytes("JPEG", size=(900, 700))


@pytest.fixture
def served_folder(tmp_path):
    folder = tmp_path / "watch"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes(PHOTO)
    return folder


def start_image_server(spawn, folder, redis_url, secret: str):
    """`miro-sync serve` on a free port, once /healthz answers 200; ``secret`` "" leaves URL_SIGNING_SECRET unset."""
    port = free_port()
    env = {"WATCH_FOLDER": str(folder), "URL_SIGNING_SECRET": secret, "REDIS_URL": redis_url,
           "MIRO_SYNC_ENV_FILE": "", "MIRO_ACCESS_TOKEN": "", "MIRO_BOARD_ID": "", "LOG_FORMAT": "json"}
    proc = spawn(MIRO_SYNC + ["serve", "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "2"], "image-server", env=env)
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: requests.get(url + "/healthz", timeout=1).status_code == 200, 20, what=lambda: f"image server ({proc.output()})")
    proc.url = url
    return proc


@pytest.fixture
def image_server(spawn, served_folder, redis_url):
    return start_image_server(spawn, served_folder, redis_url, SECRET)


@pytest.fixture
def tunnel(image_server):
    with start_tunnel(TunnelConfig(upstream=image_server.url)) as handle:
        yield handle


def events(proc, event: str) -> list[dict]:
    lines = [json.loads(line) for line in proc.output().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == event]


def served_lines(proc, file: str) -> list[dict]:
    return [line for line in events(proc, "image.served") if line.get("file") == file]


def test_serves_through_the_tunnel_and_records_it(tunnel, image_server, redis_client):
    path = signed("photo.jpg")
    response = requests.get(tunnel.public_url + path, headers={"User-Agent": "MiroFetcher/1.0"})
    assert response.status_code == 200
    assert response.content == PHOTO
    assert response.headers["Content-Type"] == "image/jpeg"
    assert response.headers.get("Server", "").lower() in ("", "gunicorn")  # no version
    record = wait_for(lambda: redis_client.get(keys.served(sig_of(path))), 5, what="served record")
    assert json.loads(record)["bytes"] == len(PHOTO)
    assert json.loads(record)["user_agent"] == "MiroFetcher/1.0"
    wait_for(lambda: served_lines(image_server, "photo.jpg"), 5, what="the served log line")
    assert sig_of(path) not in image_server.output()


def test_without_a_secret_it_starts_says_so_once_and_serves_nothing(spawn, served_folder, redis_url, redis_client):
    """The compose stack starts the image server whatever the route: with no URL_SIGNING_SECRET (the file
    route needs none) it must run, healthy, rather than restart in a loop, and serve no picture."""
    server = start_image_server(spawn, served_folder, redis_url, secret="")
    health = requests.get(server.url + "/healthz", timeout=5)
    assert (health.status_code, health.json()["signing"]) == (200, False)
    for path in (signed("photo.jpg"), probe_path(SECRET), "/i/photo.jpg"):
        answer = requests.get(server.url + path, timeout=5)
        assert answer.status_code == 403 and PHOTO not in answer.content and PROBE_PNG not in answer.content, path
    # What a worker that has a secret hears from it: the probe names the setting to fix.
    result = probe(server.url, probe_path(SECRET))
    assert (result.ok, result.reason) == (False, "http-403") and "URL_SIGNING_SECRET" in result.detail
    refused = wait_for(lambda: len(events(server, "image.refused")) == 4 and events(server, "image.refused"), 5,
                       what=lambda: server.output())  # the last request's line: every earlier line is written
    assert {line["reason"] for line in refused} == {"no URL_SIGNING_SECRET"}
    warned = events(server, "image_server.no_secret")
    assert len(warned) == 1 and "URL_SIGNING_SECRET" in warned[0]["detail"], server.output()
    assert "Traceback" not in server.output()
    assert redis_client.keys(keys.served("*")) == []


def test_refusals_through_gunicorn(image_server):
    assert requests.get(image_server.url + signed("../etc/passwd")).status_code == 404
    assert requests.get(image_server.url + signed("photo.jpg").replace("sig=", "sig=0")).status_code == 403
    traversal = requests.get(image_server.url + "/i/..%2f..%2fetc%2fpasswd")
    assert traversal.status_code in (403, 404) and b"root:" not in traversal.content


def test_warning_page_keeps_browsers_from_the_image_server(tunnel, image_server, redis_client):
    tunnel.set_mode("warning-page")
    path = signed("photo.jpg")
    blocked = requests.get(tunnel.public_url + path, headers={"User-Agent": CHROME})
    assert blocked.headers["ngrok-error-code"] == "ERR_NGROK_6024"
    assert blocked.headers["Content-Type"].startswith("text/html")
    assert redis_client.get(keys.served(sig_of(path))) is None

    passed = requests.get(tunnel.public_url + path, headers={"User-Agent": CHROME, "ngrok-skip-browser-warning": "1"})
    assert passed.content == PHOTO
    wait_for(lambda: redis_client.get(keys.served(sig_of(path))), 5, what="served record")
    wait_for(lambda: served_lines(image_server, "photo.jpg"), 5, what="the served log line")
    # The image server saw exactly one request for the file: the warning page never reached it.
    assert len(served_lines(image_server, "photo.jpg")) == 1


def test_probe_through_the_real_chain_in_every_mode(tunnel):
    outcomes = {}
    for mode in ("normal", "warning-page", "offline", "bandwidth", "requests"):
        tunnel.set_mode(mode)
        result = probe(tunnel.public_url, probe_path(SECRET))
        assert result.public_url == tunnel.public_url
        outcomes[mode] = (result.ok, result.reason)
    assert outcomes == {
        "normal": (True, "ok"),
        "warning-page": (False, "warning-page"),
        "offline": (False, "offline"),
        "bandwidth": (False, "quota"),
        "requests": (False, "quota"),
    }


def test_probe_says_when_the_image_server_refuses_the_signature(tunnel):
    result = probe(tunnel.public_url, probe_path("not-the-servers-secret-0123"))
    assert (result.ok, result.reason) == (False, "http-403")
    assert "URL_SIGNING_SECRET" in result.detail


def test_probe_when_the_image_server_is_down(tunnel, image_server):
    image_server.stop()
    result = probe(tunnel.public_url, probe_path(SECRET))
    assert (result.ok, result.reason) == (False, "http-502")


def test_tunnel_state_discovers_and_probes(tunnel, served_folder, redis_url, redis_client):
    settings = make_settings(served_folder, redis_url, NGROK_API_URL=tunnel.api_url)
    assert discover_public_url(settings) == tunnel.public_url
    result = TunnelState(redis_client, settings).usable()
    assert result.ok and result.public_url == tunnel.public_url
    # The probe went through the signed route of the image server, like Miro's fetch would.
    # The server writes its record once the last byte has gone out, which may be just after the
    # probe has read it: wait for the record rather than read it at once.
    def served_records():
        return [json.loads(redis_client.get(k)) for k in redis_client.keys(keys.served("*"))]

    records = wait_for(served_records, 5, what="the image server's record of the probe")
    assert [(r["path"], r["bytes"]) for r in records] == [(PROBE_NAME, len(PROBE_PNG))]
    assert list(served_folder.iterdir()) == [served_folder / "photo.jpg"]


def test_discovery_falls_back_to_tunnels_on_an_old_agent(image_server, served_folder, redis_url, redis_client):
    with start_tunnel(TunnelConfig(upstream=image_server.url, agent_version="3.29.0")) as handle:
        settings = make_settings(served_folder, redis_url, NGROK_API_URL=handle.api_url)
        assert requests.get(handle.api_url + "/api/endpoints").status_code == 404
        assert discover_public_url(settings) == handle.public_url
        assert TunnelState(redis_client, settings).usable().ok
