"""The ngrok agent stand-in: forwarding, the free plan's warning page, error modes, agent API."""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

import pytest
import requests

from services.sandbox.tunnel import MODES, TunnelConfig, is_browser, start_tunnel
from tests.fixtures.procs import free_port

CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
SAFARI = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15"
HEADLESS = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36"
GOOGLEBOT = "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Googlebot/2.1; +http://www.google.com/bot.html) Chrome/131.0.0.0 Safari/537.36"
BROWSERS = [CHROME, FIREFOX, SAFARI, HEADLESS]
NOT_BROWSERS = ["curl/8.5.0", "python-requests/2.32.3", "MyApp/0.0.1", GOOGLEBOT, "Mozilla/5.0", "Mozilla/5.0 (compatible; MSIE)", None]


@pytest.mark.parametrize("ua", BROWSERS)
def test_browser_user_agents_are_browsers(ua):
    assert is_browser(ua)


@pytest.mark.parametrize("ua", NOT_BROWSERS)
def test_other_user_agents_are_not(ua):
    assert not is_browser(ua)


# -- forwarding ---------------------------------------------------------------------------------


def test_forwards_method_raw_path_query_headers_and_body(tunnel, upstream):
    body = bytes(range(256)) * 1200  # 300 kB
    response = requests.post(tunnel.public_url + "/a/b%2Fc?x=1&y=%20z", data=body,
                             headers={"X-Custom": "kept", "User-Agent": "tester/1"})
    assert response.status_code == 200
    assert response.json() == {"method": "POST", "path": "/a/b/c", "body_len": len(body)}
    assert response.headers["X-Upstream"] == "yes"
    [seen] = upstream.seen
    assert seen["raw_uri"] == "/a/b%2Fc?x=1&y=%20z"
    assert seen["body"] == body
    assert seen["headers"]["X-Custom"] == "kept"
    assert seen["headers"]["User-Agent"] == "tester/1"
    assert seen["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert seen["headers"]["X-Forwarded-Proto"] == "http"
    assert seen["headers"]["X-Forwarded-Host"] == urlsplit(tunnel.public_url).netloc


def test_forwards_the_raw_request_target_unnormalised(tunnel, upstream):
    # http.client, because requests would decode %2e before sending
    conn = http.client.HTTPConnection(urlsplit(tunnel.public_url).netloc, timeout=10)
    conn.request("GET", "/i/%2e%2e%2F..\\x/./y?q=%2e")
    assert conn.getresponse().status == 200
    conn.close()
    assert upstream.seen[0]["raw_uri"] == "/i/%2e%2e%2F..\\x/./y?q=%2e"


def test_drops_hop_by_hop_headers_both_ways(tunnel, upstream):
    netloc = urlsplit(tunnel.public_url).netloc
    conn = http.client.HTTPConnection(netloc, timeout=10)
    conn.putrequest("GET", "/echo", skip_accept_encoding=True)
    for name, value in [("Connection", "keep-alive, X-Private"), ("X-Private", "one-hop"), ("Keep-Alive", "300"),
                        ("TE", "trailers"), ("Proxy-Authorization", "Basic eDp5"), ("X-Kept", "yes")]:
        conn.putheader(name, value)
    conn.endheaders()
    response = conn.getresponse()
    response.read()
    conn.close()
    headers = {k.lower() for k in upstream.seen[0]["headers"]}
    assert "x-kept" in headers
    assert not headers & {"x-private", "keep-alive", "te", "proxy-authorization"}
    assert response.getheader("X-Upstream") == "yes"
    assert response.getheader("Keep-Alive") is None  # the upstream's hop-by-hop header stays behind


def test_forwards_a_chunked_request_body(tunnel, upstream):
    parts = [b"a" * 70_000, b"b" * 10, b"c" * 5000]
    response = requests.put(tunnel.public_url + "/upload", data=iter(parts))
    assert response.json()["body_len"] == sum(map(len, parts))
    assert upstream.seen[0]["body"] == b"".join(parts)


def test_streams_a_response_without_length(tunnel):
    response = requests.get(tunnel.public_url + "/stream")
    assert response.content == b"part-0;part-1;part-2;"
    assert response.headers["X-Upstream"] == "yes"


def test_upstream_down_is_ngrok_8012(upstream):
    with start_tunnel(TunnelConfig(upstream=f"http://127.0.0.1:{free_port()}")) as handle:
        response = requests.get(handle.public_url + "/x.png")
    assert response.status_code == 502
    assert response.headers["ngrok-error-code"] == "ERR_NGROK_8012"


# -- the free plan's warning page ---------------------------------------------------------------


@pytest.mark.parametrize("ua", BROWSERS)
def test_warning_page_answers_browsers_and_never_reaches_the_upstream(tunnel, upstream, ua):
    tunnel.set_mode("warning-page")
    response = requests.get(tunnel.public_url + "/i/cat.png?exp=1&sig=2", headers={"User-Agent": ua})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.headers["ngrok-error-code"] == "ERR_NGROK_6024"
    assert "You are about to visit" in response.text
    assert "This website is served for free through ngrok.com" in response.text
    assert upstream.seen == []


@pytest.mark.parametrize("ua", NOT_BROWSERS)
def test_warning_page_lets_non_browsers_through(tunnel, upstream, ua):
    tunnel.set_mode("warning-page")
    response = requests.get(tunnel.public_url + "/echo", headers={"User-Agent": ua})
    assert response.status_code == 200 and "ngrok-error-code" not in response.headers
    assert len(upstream.seen) == 1


@pytest.mark.parametrize("value", ["true", "1", "anything"])
def test_skip_header_on_the_request_passes(tunnel, upstream, value):
    tunnel.set_mode("warning-page")
    response = requests.get(tunnel.public_url + "/echo", headers={"User-Agent": CHROME, "ngrok-skip-browser-warning": value})
    assert response.json()["path"] == "/echo"
    assert len(upstream.seen) == 1


def test_skip_header_on_the_response_changes_nothing(tunnel, upstream):
    tunnel.set_mode("normal")
    assert requests.get(tunnel.public_url + "/skip").headers["ngrok-skip-browser-warning"] == "true"
    tunnel.set_mode("warning-page")
    response = requests.get(tunnel.public_url + "/skip", headers={"User-Agent": CHROME})
    assert response.headers["ngrok-error-code"] == "ERR_NGROK_6024"
    assert response.headers["Content-Type"].startswith("text/html")
    assert len(upstream.seen) == 1  # only the request made in normal mode


def test_visit_cookie_lets_a_browser_through(tunnel, upstream):
    tunnel.set_mode("warning-page")
    host = urlsplit(tunnel.public_url).netloc
    response = requests.get(tunnel.public_url + "/echo", headers={"User-Agent": CHROME, "Cookie": f"abuse_interstitial={host}"})
    assert response.json()["path"] == "/echo"


# -- offline and over quota ---------------------------------------------------------------------


@pytest.mark.parametrize("mode, code, status", [
    ("offline", "ERR_NGROK_3200", 404),
    ("starting", "ERR_NGROK_3200", 404),
    ("bandwidth", "ERR_NGROK_725", 429),
    ("requests", "ERR_NGROK_727", 429),
])
def test_error_modes_answer_for_ngrok_and_forward_nothing(tunnel, upstream, mode, code, status):
    tunnel.set_mode(mode)
    for ua, kind in ((CHROME, "text/html"), ("curl/8.5.0", "text/plain"), (None, "text/plain")):
        response = requests.get(tunnel.public_url + "/x.png", headers={"User-Agent": ua, "ngrok-skip-browser-warning": "1"})
        assert response.status_code == status
        assert response.headers["ngrok-error-code"] == code
        assert response.headers["Content-Type"].startswith(kind)
        assert code in response.text
    assert upstream.seen == []


# -- agent API ----------------------------------------------------------------------------------


def test_endpoints_api_shape(tunnel, upstream):
    assert requests.get(tunnel.api_url + "/api/endpoints").json() == {"endpoints": [{
        "name": "command_line",
        "uri": "/api/endpoints/command_line",
        "url": tunnel.public_url,
        "upstream": {"url": upstream.url, "protocol": "http"},
        "inspect": True,
        "traffic_policy": "",
        "pooling_enabled": False,
    }]}
    one = requests.get(tunnel.api_url + "/api/endpoints/command_line")
    assert one.status_code == 200 and one.json()["url"] == tunnel.public_url
    missing = requests.get(tunnel.api_url + "/api/endpoints/other")
    assert missing.status_code == 404 and missing.json()["status_code"] == 404


def test_tunnels_api_shape(tunnel, upstream):
    data = requests.get(tunnel.api_url + "/api/tunnels").json()
    assert data["uri"] == "/api/tunnels"
    [t] = data["tunnels"]
    assert {k: t[k] for k in ("name", "uri", "public_url", "proto", "config")} == {
        "name": "command_line",
        "uri": "/api/tunnels/command_line",
        "public_url": tunnel.public_url,
        "proto": "http",
        "config": {"addr": upstream.url, "inspect": True},
    }
    assert set(t["metrics"]) == {"conns", "http"}
    assert requests.get(tunnel.api_url + "/api/tunnels/command_line").json()["public_url"] == tunnel.public_url
    assert requests.get(tunnel.api_url + "/api/tunnels/other").status_code == 404


def test_advertises_the_configured_public_url(upstream):
    with start_tunnel(TunnelConfig(upstream=upstream.url, public_url="https://demo.ngrok-free.app/")) as handle:
        [endpoint] = requests.get(handle.api_url + "/api/endpoints").json()["endpoints"]
        [tunnel] = requests.get(handle.api_url + "/api/tunnels").json()["tunnels"]
        # still reachable where it listens
        assert requests.get(handle.local_url + "/echo").json()["path"] == "/echo"
    assert endpoint["url"] == tunnel["public_url"] == "https://demo.ngrok-free.app"
    assert tunnel["proto"] == endpoint["upstream"]["protocol"] == "https"
    assert upstream.seen[0]["headers"]["X-Forwarded-Proto"] == "https"


def test_an_agent_older_than_3_30_has_no_endpoints_api(upstream):
    with start_tunnel(TunnelConfig(upstream=upstream.url, agent_version="3.29.0")) as handle:
        assert requests.get(handle.api_url + "/api/endpoints").status_code == 404
        assert requests.get(handle.api_url + "/api/endpoints/command_line").status_code == 404
        assert requests.get(handle.api_url + "/api/tunnels").json()["tunnels"][0]["public_url"] == handle.public_url


def test_starting_agent_lists_nothing(tunnel):
    tunnel.set_mode("starting")
    assert requests.get(tunnel.api_url + "/api/endpoints").json() == {"endpoints": []}
    assert requests.get(tunnel.api_url + "/api/tunnels").json() == {"tunnels": [], "uri": "/api/tunnels"}


def test_mode_is_switchable_over_http(tunnel, upstream):
    url = tunnel.api_url + "/_sandbox/tunnel/mode"
    assert requests.get(url).json()["mode"] == "normal"
    assert requests.put(url, json={"mode": "warning-page"}).json()["mode"] == "warning-page"
    assert requests.get(url).json()["mode"] == "warning-page"
    assert requests.get(tunnel.public_url + "/x", headers={"User-Agent": CHROME}).headers["ngrok-error-code"] == "ERR_NGROK_6024"

    refused = requests.put(url, json={"mode": "broken"})
    assert refused.status_code == 400 and refused.json()["modes"] == list(MODES)
    assert requests.get(url).json()["mode"] == "warning-page"

    assert requests.put(url, json={"agent_version": "3.20.1"}).json() == {"mode": "warning-page", "agent_version": "3.20.1", "modes": list(MODES)}
    assert requests.get(tunnel.api_url + "/api/endpoints").status_code == 404


def test_request_log_says_what_was_forwarded(tunnel):
    tunnel.set_mode("warning-page")
    requests.get(tunnel.public_url + "/a", headers={"User-Agent": CHROME})
    requests.get(tunnel.public_url + "/b", headers={"User-Agent": "curl/8"})
    log = requests.get(tunnel.api_url + "/_sandbox/tunnel/requests").json()["requests"]
    assert [(r["path"], r["outcome"]) for r in log] == [("/a", "ERR_NGROK_6024"), ("/b", "forwarded")]


def test_config_refuses_an_unknown_mode():
    with pytest.raises(ValueError, match="unknown tunnel mode"):
        TunnelConfig(mode="paid")
