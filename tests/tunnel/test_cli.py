"""The stand-in from the command line: `miro-sync sandbox --tunnel-*` and the tunnel alone."""

from __future__ import annotations

import sys

import requests

from tests.fixtures.procs import MIRO_SYNC, free_port, wait_for

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"


def test_sandbox_flags_start_the_tunnel_and_print_its_addresses(spawn, upstream):
    public, api = free_port(), free_port()
    proc = spawn(MIRO_SYNC + ["sandbox", "--port", str(free_port()), "--tunnel-port", str(public), "--tunnel-api-port", str(api),
                              "--tunnel-upstream", upstream.url, "--warning-page", "--tunnel-public-url", "http://ngrok:8080"],
                 "sandbox")
    wait_for(lambda: "ngrok agent API" in proc.output(), 20, what="the tunnel's addresses")
    assert f"http://ngrok:8080 (listening on :{public}) -> {upstream.url}, mode warning-page" in proc.output()

    endpoints = requests.get(f"http://127.0.0.1:{api}/api/endpoints").json()["endpoints"]
    assert [e["url"] for e in endpoints] == ["http://ngrok:8080"]
    assert requests.get(f"http://127.0.0.1:{api}/_sandbox/tunnel/mode").json()["mode"] == "warning-page"
    page = requests.get(f"http://127.0.0.1:{public}/x", headers={"User-Agent": CHROME})
    assert page.headers["ngrok-error-code"] == "ERR_NGROK_6024"
    assert upstream.seen == []
    assert requests.get(f"http://127.0.0.1:{public}/x", headers={"User-Agent": "curl/8"}).json()["path"] == "/x"


def test_tunnel_alone_with_mode_and_old_agent(spawn, upstream):
    public, api = free_port(), free_port()
    proc = spawn([sys.executable, "-m", "services.sandbox.tunnel", "--tunnel-port", str(public), "--tunnel-api-port", str(api),
                  "--tunnel-upstream", upstream.url, "--tunnel-mode", "offline", "--tunnel-agent-version", "3.29.0"], "tunnel")
    wait_for(lambda: "ngrok agent API" in proc.output(), 20, what="the tunnel's addresses")
    assert requests.get(f"http://127.0.0.1:{api}/api/endpoints").status_code == 404
    assert requests.get(f"http://127.0.0.1:{api}/api/tunnels").json()["tunnels"][0]["public_url"] == f"http://127.0.0.1:{public}"
    offline = requests.get(f"http://127.0.0.1:{public}/x")
    assert (offline.status_code, offline.headers["ngrok-error-code"]) == (404, "ERR_NGROK_3200")
    proc.stop()
    assert proc.popen.returncode == 0
