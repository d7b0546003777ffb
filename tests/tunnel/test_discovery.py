"""Finding the public URL: PUBLIC_BASE_URL, then the agent's /api/endpoints, then /api/tunnels."""

from __future__ import annotations

import json

import pytest
from werkzeug.wrappers import Request, Response

from services.sandbox.tunnel import TunnelConfig, start_tunnel
from shared.tunnel import TunnelError, agent_api_base, discover_public_url, pick_url
from tests.fixtures.procs import free_port
from tests.image_server.support import serve_in_thread


def agent_answering(routes: dict[str, tuple[int, object]]):
    """An agent API of some other ngrok version: fixed answers per path (404 elsewhere)."""

    def app(environ, start_response):
        status, body = routes.get(Request(environ).path, (404, {"status_code": 404}))
        payload = body if isinstance(body, str) else json.dumps(body)
        return Response(payload, status=status, content_type="application/json")(environ, start_response)

    return serve_in_thread(app)


def test_public_base_url_wins_without_asking_the_agent(settings_for):
    settings = settings_for(PUBLIC_BASE_URL="https://images.example.com/", NGROK_API_URL=f"http://127.0.0.1:{free_port()}")
    assert discover_public_url(settings) == "https://images.example.com"


def test_no_tunnel_configured_is_none(settings_for):
    assert discover_public_url(settings_for()) is None


@pytest.mark.parametrize("suffix", ["", "/", "/api", "/api/tunnels", "/api/endpoints"])
def test_reads_the_endpoints_api_whatever_form_the_setting_takes(tunnel, settings_for, suffix):
    assert discover_public_url(settings_for(NGROK_API_URL=tunnel.api_url + suffix)) == tunnel.public_url


def test_falls_back_to_tunnels_when_endpoints_is_404(upstream, settings_for):
    with start_tunnel(TunnelConfig(upstream=upstream.url, agent_version="3.29.0", public_url="https://old.ngrok-free.app")) as handle:
        assert discover_public_url(settings_for(NGROK_API_URL=handle.api_url)) == "https://old.ngrok-free.app"


def test_falls_back_to_tunnels_when_endpoints_lacks_its_key(settings_for):
    routes = {"/api/endpoints": (200, {"something": []}),
              "/api/tunnels": (200, {"tunnels": [{"public_url": "https://t.ngrok.app", "proto": "https"}], "uri": "/api/tunnels"})}
    with agent_answering(routes) as url:
        assert discover_public_url(settings_for(NGROK_API_URL=url)) == "https://t.ngrok.app"


def test_prefers_https(settings_for):
    routes = {"/api/endpoints": (200, {"endpoints": [{"url": "http://a.ngrok.app"}, {"url": "https://a.ngrok.app"}]})}
    with agent_answering(routes) as url:
        assert discover_public_url(settings_for(NGROK_API_URL=url)) == "https://a.ngrok.app"


@pytest.mark.parametrize("urls, chosen", [
    (["http://a", "https://b", "https://c"], "https://b"),
    (["http://a", "http://b"], "http://a"),
    (["https://a/"], "https://a"),
    (["", "http://b"], "http://b"),
    ([], None),
])
def test_pick_url(urls, chosen):
    assert pick_url(urls) == chosen


def test_agent_up_without_endpoint_is_none(tunnel, settings_for):
    tunnel.set_mode("starting")
    assert discover_public_url(settings_for(NGROK_API_URL=tunnel.api_url)) is None


def test_unreachable_agent_is_a_clear_error(settings_for):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(TunnelError, match=r"cannot reach the ngrok agent API at .*NGROK_API_URL"):
        discover_public_url(settings_for(NGROK_API_URL=url))


@pytest.mark.parametrize("routes", [
    {"/api/endpoints": (500, {"msg": "boom"})},
    {"/api/endpoints": (200, "<html>not json</html>")},
    {"/api/endpoints": (404, {}), "/api/tunnels": (200, {"nothing": 1})},
])
def test_an_agent_answering_nonsense_is_an_error(settings_for, routes):
    with agent_answering(routes) as url, pytest.raises(TunnelError):
        discover_public_url(settings_for(NGROK_API_URL=url))


def test_agent_api_base():
    assert agent_api_base("http://ngrok:4040/api/tunnels/") == "http://ngrok:4040"
    assert agent_api_base("http://ngrok:4040") == "http://ngrok:4040"
