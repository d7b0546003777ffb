"""Client behaviour that needs no Miro: header parsing, transport failures, secrecy, sessions."""

from __future__ import annotations

import json
import multiprocessing
import re
import threading
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from shared import miro
from shared.miro import MiroBadRequest, MiroClient, MiroServerError, MiroTransportError, RateInfo, parse_retry_after
from tests.fixtures.procs import free_port

TOKEN = "tok-SECRET-0123456789"
NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    "headers, expected",
    [
        pytest.param({"X-RateLimit-Limit": "100000", "X-RateLimit-Remaining": "99900", "X-RateLimit-Reset": "1800000042"},
                     RateInfo(100_000, 99_900, 1_800_000_042.0), id="epoch-reset"),
        pytest.param({"X-RateLimit-Reset": "42"}, RateInfo(None, None, NOW + 42), id="seconds-from-now"),
        pytest.param({"x-ratelimit-remaining": " 0 "}, RateInfo(None, 0, None), id="lowercase-and-spaces"),
        pytest.param({"X-RateLimit-Limit": "lots", "X-RateLimit-Reset": ""}, RateInfo(None, None, None), id="garbage"),
        pytest.param({}, RateInfo(None, None, None), id="absent"),
    ],
)
def test_rate_info_from_headers(headers, expected):
    info = RateInfo.from_headers(requests.structures.CaseInsensitiveDict(headers), now=NOW)
    assert info == expected
    assert info.empty == (expected == RateInfo(None, None, None))


@pytest.mark.parametrize(
    "value, expected",
    [("30", 30.0), ("1.5", 1.5), (formatdate(NOW + 60, usegmt=True), 60.0), ("-5", 0.0), ("soon", None), (None, None)],
)
def test_retry_after(value, expected):
    assert parse_retry_after(value, now=NOW) == expected


def test_closed_port_is_a_transport_error_without_the_token():
    client = MiroClient(f"http://127.0.0.1:{free_port()}", TOKEN, timeout=2)
    with pytest.raises(MiroTransportError) as info:
        client.get_board("uXjVOD6LSME=")
    exc = info.value
    assert isinstance(exc.__cause__, requests.ConnectionError)
    assert exc.status is None and exc.rate is None
    assert exc.method == "GET" and exc.path == "/v2/boards/uXjVOD6LSME%3D"
    assert "connection failed" in str(exc)
    for text in (str(exc), repr(exc), exc.message):
        assert TOKEN not in text


def test_client_repr_hides_the_token():
    client = MiroClient("https://api.miro.com", TOKEN)
    assert TOKEN not in repr(client) and TOKEN not in repr(client.tokens)


def test_get_resource_never_sends_the_token_to_another_host():
    client = MiroClient(f"http://127.0.0.1:{free_port()}", TOKEN)
    with pytest.raises(ValueError, match="refusing to send the Miro token"):
        client.get_resource("http://evil.example/v2/boards/b/resources/images/1?format=preview")


def test_user_agent_names_the_project_and_version():
    assert re.fullmatch(r"miro-sync/\d+\.\d+\.\d+.*", miro.user_agent())


def _same_session(parent, queue) -> None:
    queue.put(miro.process_session() is parent)


def test_one_session_per_process_and_a_new_one_after_fork():
    parent = miro.process_session()
    assert miro.process_session() is parent
    assert MiroClient("https://api.miro.com", TOKEN).session is parent
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_same_session, args=(parent, queue))  # fork: args are not pickled
    child.start()
    shared_with_parent = queue.get(timeout=30)
    child.join(10)
    assert shared_with_parent is False  # a fresh pool, not the parent's sockets


class _Echo(BaseHTTPRequestHandler):
    """A misbehaving server that repeats the Authorization header back in its answers."""

    def do_GET(self) -> None:
        header = self.headers.get("Authorization", "")
        if self.path.endswith("/json-400"):
            status, kind = 400, "application/json"
            body = json.dumps({"type": "error", "status": 400, "code": "invalidParameters", "message": f"bad {header}",
                               "context": {"fields": [{"field": "x", "message": header}]}})
        elif self.path.endswith("/text-502"):
            status, kind, body = 502, "text/html", f"<html>proxy error for {header}</html>"
        else:
            status, kind, body = 200, "text/plain", f"hello {header}"
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Retry-After", "12")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def echo_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_token_echoed_by_a_server_is_masked_everywhere(echo_server):
    client = MiroClient(echo_server, TOKEN)
    with pytest.raises(MiroBadRequest) as bad:
        client.get_board("json-400")
    with pytest.raises(MiroServerError) as proxy:
        client.get_board("text-502")
    with pytest.raises(MiroTransportError) as broken:
        client.get_board("plain-200")
    assert bad.value.message == "bad Bearer ***" and bad.value.context["fields"][0]["message"] == "Bearer ***"
    assert proxy.value.code is None and "proxy error for Bearer ***" in proxy.value.message
    assert proxy.value.retry_after == 12.0
    assert "broken response" in str(broken.value) and broken.value.status == 200
    for exc in (bad.value, proxy.value, broken.value):
        for text in (str(exc), repr(exc), repr(exc.context)):
            assert TOKEN not in text
