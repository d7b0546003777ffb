"""The image server's Flask app: what it serves, what it refuses, what it records and logs."""

from __future__ import annotations

import io
import json
import os
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import redis as redis_lib

from services.image_server.app import create_app, send_file
from shared import keys
from shared.signing import encode_name, sign_path
from shared.tunnel import PROBE_NAME, PROBE_PNG

from .support import SECRET, image_bytes, make_settings

PNG = image_bytes("PNG")
JPEG = image_bytes("JPEG")


def signed(relpath: str, secret: str = SECRET, ttl: int = 600, now: float | None = None) -> str:
    return sign_path(relpath, secret, ttl, now=now)


def sig_of(path: str) -> str:
    return parse_qs(urlsplit(path).query)["sig"][0]


def test_serves_a_signed_image_with_its_type_and_length(client, folder):
    (folder / "cat.png").write_bytes(PNG)
    response = client.get(signed("cat.png"))
    assert response.status_code == 200
    assert response.data == PNG
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["Content-Length"] == str(len(PNG))


def test_content_type_comes_from_the_bytes_not_the_name(client, folder):
    (folder / "really-a-jpeg.png").write_bytes(JPEG)
    response = client.get(signed("really-a-jpeg.png"))
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/jpeg"


def test_serves_files_in_subfolders_and_names_with_spaces(client, folder):
    (folder / "trip 2024" / "day 1").mkdir(parents=True)
    (folder / "trip 2024" / "day 1" / "été #1.png").write_bytes(PNG)
    response = client.get(signed("trip 2024/day 1/été #1.png"))
    assert response.status_code == 200 and response.data == PNG


def test_records_the_url_as_served_after_the_last_byte(client, folder, redis_client):
    (folder / "cat.png").write_bytes(PNG)
    path = signed("cat.png")
    before = time.time()
    response = client.get(path, headers={"User-Agent": "MiroFetcher/1.0"})
    assert response.data == PNG
    record = json.loads(redis_client.get(keys.served(sig_of(path))))
    assert record["path"] == "cat.png"
    assert record["bytes"] == len(PNG)
    assert record["user_agent"] == "MiroFetcher/1.0"
    assert before <= record["at"] <= time.time()
    assert 0 < redis_client.ttl(keys.served(sig_of(path))) <= 3600


def test_head_request_is_not_recorded_as_served(client, folder, redis_client):
    (folder / "cat.png").write_bytes(PNG)
    path = signed("cat.png")
    response = client.head(path)
    assert response.status_code == 200
    assert redis_client.get(keys.served(sig_of(path))) is None


def test_send_file_reports_completion_only_when_every_byte_went_out():
    done, short = [], []
    data = os.urandom(600 * 1024)  # several chunks
    body = send_file(io.BytesIO(data), len(data), lambda: done.append(1), short.append)
    next(body)
    body.close()  # what the WSGI server does when the client hangs up
    assert done == [] and short == []

    body = send_file(io.BytesIO(data), len(data), lambda: done.append(1), short.append)
    assert b"".join(body) == data
    assert done == [1]

    shrunk = send_file(io.BytesIO(data[:1000]), len(data), lambda: done.append(2), short.append)
    assert b"".join(shrunk) == data[:1000]
    assert done == [1] and short == [1000]


def test_serves_the_built_in_probe_image_without_touching_the_folder(client, folder):
    response = client.get(signed(PROBE_NAME))
    assert response.status_code == 200
    assert response.data == PROBE_PNG
    assert response.headers["Content-Type"] == "image/png"
    assert list(folder.iterdir()) == []


# -- signatures: 403 ----------------------------------------------------------------------------


def _tamper_sig(path: str) -> str:
    sig = sig_of(path)
    flipped = ("0" if sig[0] != "0" else "1") + sig[1:]
    return path.replace(sig, flipped)


def _swap_token(path: str, relpath: str) -> str:
    token = urlsplit(path).path.removeprefix("/i/")
    return path.replace(token, encode_name(relpath))


def _push_exp(path: str) -> str:
    exp = parse_qs(urlsplit(path).query)["exp"][0]
    return path.replace(f"exp={exp}", f"exp={int(exp) + 3600}")


@pytest.mark.parametrize("make_url", [
    pytest.param(lambda: _tamper_sig(signed("cat.png")), id="tampered-signature"),
    pytest.param(lambda: _swap_token(signed("cat.png"), "dog.png"), id="other-file-same-signature"),
    pytest.param(lambda: _push_exp(signed("cat.png")), id="extended-expiry"),
    pytest.param(lambda: signed("cat.png", now=time.time() - 3600), id="expired"),
    pytest.param(lambda: signed("cat.png", secret="another-secret-0123456789"), id="other-secret"),
    pytest.param(lambda: signed("cat.png").split("&sig=")[0], id="no-signature"),
    pytest.param(lambda: "/i/" + encode_name("cat.png"), id="no-query"),
    pytest.param(lambda: signed("cat.png").replace("exp=", "exp=-"), id="negative-expiry"),
])
def test_bad_or_expired_signatures_are_forbidden(client, folder, redis_client, events, make_url):
    (folder / "cat.png").write_bytes(PNG)
    (folder / "dog.png").write_bytes(PNG)
    url = make_url()
    response = client.get(url)
    assert response.status_code == 403
    assert PNG not in response.data
    assert response.get_json() == {"error": "forbidden"}
    assert redis_client.keys(keys.served("*")) == []
    [(_, fields)] = events("image.refused")
    assert fields["status"] == 403


# -- names that lead out of the folder or to something not servable: 404 -------------------------


@pytest.fixture
def outside(tmp_path):
    """An image next to the watch folder, and the folder's parent."""
    (tmp_path / "outside.png").write_bytes(PNG)
    return tmp_path / "outside.png"


@pytest.mark.parametrize("relpath", [
    "../outside.png",
    "sub/../../outside.png",
    "sub/../cat.png",  # stays inside, but no climbing at all
    "./cat.png",
    "sub//cat.png",
    "sub\\..\\..\\outside.png",
    "..\\outside.png",
    "%2e%2e/outside.png",
    "..%2foutside.png",
    "%2e%2e%2foutside.png",
    "C:/outside.png",
    "cat.png\x00.txt",
    "",
    "sub",  # a directory
    "missing.png",
])
def test_signed_names_that_climb_or_are_malformed_are_not_found(client, folder, outside, relpath):
    (folder / "cat.png").write_bytes(PNG)
    (folder / "sub").mkdir()
    (folder / "sub" / "cat.png").write_bytes(PNG)
    response = client.get(signed(relpath))
    assert response.status_code == 404
    assert PNG not in response.data


def test_absolute_paths_are_refused_even_to_a_file_inside(client, folder, outside):
    (folder / "cat.png").write_bytes(PNG)
    for relpath in (str(outside), str(folder / "cat.png"), "/etc/passwd"):
        response = client.get(signed(relpath))
        assert response.status_code == 404, relpath
        assert PNG not in response.data


@pytest.mark.parametrize("raw", [
    "/i/../outside.png",
    "/i/..%2foutside.png",
    "/i/%2e%2e/%2e%2e/etc/passwd",
    "/i/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/i/..%5c..%5coutside.png",
    "/i/..\\..\\outside.png",
    "/i/%252e%252e%252foutside.png",
    "/../outside.png",
    "/outside.png",
    "/static/../outside.png",
])
def test_raw_traversal_urls_are_refused(client, folder, outside, raw):
    response = client.get(raw)
    assert response.status_code in (403, 404)
    assert PNG not in response.data
    assert b"Traceback" not in response.data


def test_symlink_to_a_file_outside_is_not_followed(client, folder, outside):
    (folder / "link.png").symlink_to(outside)
    assert client.get(signed("link.png")).status_code == 404


def test_symlinked_directory_leading_outside_is_not_followed(client, folder, outside):
    (folder / "linked-dir").symlink_to(outside.parent, target_is_directory=True)
    response = client.get(signed("linked-dir/outside.png"))
    assert response.status_code == 404
    assert PNG not in response.data


def test_symlink_to_a_hidden_file_inside_is_refused(client, folder):
    (folder / ".secret.png").write_bytes(PNG)
    (folder / "innocent.png").symlink_to(folder / ".secret.png")
    assert client.get(signed("innocent.png")).status_code == 404


def test_symlink_that_stays_inside_the_folder_is_served(client, folder):
    (folder / "real.png").write_bytes(PNG)
    (folder / "alias.png").symlink_to(folder / "real.png")
    response = client.get(signed("alias.png"))
    assert response.status_code == 200 and response.data == PNG


@pytest.mark.parametrize("relpath", [".secret.png", ".git/cat.png", "sub/.hidden/cat.png", PROBE_NAME + "x"])
def test_hidden_files_and_folders_are_refused(client, folder, relpath):
    target = folder / relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(PNG)
    assert client.get(signed(relpath)).status_code == 404


@pytest.mark.parametrize("name, content", [
    ("notes.png", b"just some text, named like an image\n" * 4),
    ("page.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
    ("config.env", b"URL_SIGNING_SECRET=hunter2hunter2hunter2\n"),
    ("empty.png", b""),
])
def test_only_image_files_are_served(client, folder, name, content):
    (folder / name).write_bytes(content)
    response = client.get(signed(name))
    assert response.status_code == 404
    assert content not in response.data or content == b""


def test_a_fifo_in_the_folder_does_not_hang_the_server(client, folder):
    os.mkfifo(folder / "pipe.png")
    assert client.get(signed("pipe.png")).status_code == 404


@pytest.mark.parametrize("path", ["/", "/i", "/i/", "/i/?exp=1&sig=2", "/index.html", "/static/"])
def test_there_is_no_listing(client, folder, path):
    (folder / "cat.png").write_bytes(PNG)
    response = client.get(path)
    assert response.status_code in (403, 404)
    assert b"cat.png" not in response.data


def test_errors_are_short_json_without_server_details(client):
    response = client.post("/i/abc")
    assert response.status_code == 405
    assert response.is_json
    assert b"Traceback" not in response.data and b"werkzeug" not in response.data.lower()


# -- logs ---------------------------------------------------------------------------------------


def test_one_log_line_per_request_and_never_the_signature(client, folder, events):
    (folder / "cat.png").write_bytes(PNG)
    good = signed("cat.png")
    bad = _tamper_sig(signed("cat.png"))
    assert client.get(good, headers={"User-Agent": "MiroFetcher/1.0"}).data == PNG  # read: the line comes after the last byte
    client.get(bad)
    client.get(signed("../outside.png"))
    lines = events()
    assert [e for e, _ in lines] == ["image.served", "image.refused", "image.refused"]
    served = lines[0][1]
    assert served["file"] == "cat.png" and served["status"] == 200 and served["user_agent"] == "MiroFetcher/1.0"
    assert [f["status"] for _, f in lines[1:]] == [403, 404]
    text = repr(lines)
    for sig in (sig_of(good), sig_of(bad)):
        assert sig not in text


# -- health -------------------------------------------------------------------------------------


def test_healthz_reports_folder_and_redis(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "folder": True, "redis": True, "signing": True}


def test_healthz_fails_when_redis_does_not_answer(folder):
    from tests.fixtures.procs import free_port

    settings = make_settings(folder, f"redis://127.0.0.1:{free_port()}/0")
    response = create_app(settings).test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["redis"] is False


def test_healthz_fails_when_the_folder_is_gone(settings, folder):
    client = create_app(settings).test_client()
    folder.rmdir()
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unhealthy", "folder": False, "redis": True, "signing": True}


def test_records_are_not_lost_silently_when_redis_is_down(folder, events):
    from tests.fixtures.procs import free_port

    (folder / "cat.png").write_bytes(PNG)
    settings = make_settings(folder, f"redis://127.0.0.1:{free_port()}/0")
    response = create_app(settings).test_client().get(signed("cat.png"))
    assert response.status_code == 200 and response.data == PNG
    assert [e for e, _ in events()] == ["image.served_unrecorded", "image.served"]


def test_the_app_does_not_need_the_miro_token(folder, redis_url, monkeypatch):
    monkeypatch.delenv("MIRO_ACCESS_TOKEN", raising=False)
    monkeypatch.delenv("MIRO_BOARD_ID", raising=False)
    monkeypatch.setenv("WATCH_FOLDER", str(folder))
    monkeypatch.setenv("URL_SIGNING_SECRET", SECRET)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("MIRO_SYNC_ENV_FILE", "")
    app = create_app()
    assert app.test_client().get("/healthz").status_code == 200
    assert isinstance(app.extensions["redis"], redis_lib.Redis)
