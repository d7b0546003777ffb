"""The image server's attack list: what tests/image_server already checks, and the variants added here.

Already covered there (tests/image_server/test_app.py, test_e2e.py): tampered, swapped, extended,
expired, negative, missing and other-secret signatures; climbing, absolute, drive, backslash,
percent- and double-percent-encoded and NUL-byte names; raw traversal URLs; symlinks to files and
folders outside, to hidden files inside; hidden files and folders; non-images (text, SVG, .env,
empty); a FIFO; no listing; short JSON errors; the signature never logged; refusals through
gunicorn. Added here: the variants below.

Accepted, not tested: a *hard* link in the folder to a file elsewhere is served. It is the same
file as far as the kernel knows, and making one needs write access to the folder, which already
allows putting any picture there.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from services.image_server.app import create_app
from shared.signing import encode_name, sign_path
from tests.image_server.support import SECRET, image_bytes, make_settings

PNG = image_bytes("PNG")


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "watch"
    path.mkdir()
    (path / "cat.png").write_bytes(PNG)
    (tmp_path / "outside.png").write_bytes(PNG)
    return path


@pytest.fixture
def client(folder, redis_url):
    return create_app(make_settings(folder, redis_url)).test_client()


def signed(relpath: str) -> str:
    return sign_path(relpath, SECRET, 600)


def _query(path: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(path).query).items()}


def _with_query(path: str, pairs: list[tuple[str, str]]) -> str:
    return urlsplit(path).path + "?" + urlencode(pairs)


@pytest.mark.parametrize("mangle", [
    pytest.param(lambda q: [("exp", q["exp"]), ("sig", q["sig"][:-1])], id="truncated-signature"),
    pytest.param(lambda q: [("exp", q["exp"]), ("sig", q["sig"] + "0")], id="signature-with-extra-digit"),
    pytest.param(lambda q: [("exp", q["exp"]), ("sig", "")], id="empty-signature"),
    pytest.param(lambda q: [("exp", q["exp"] + "0" * 8), ("sig", q["sig"])], id="expiry-too-long"),
    pytest.param(lambda q: [("exp", q["exp"] + ".5"), ("sig", q["sig"])], id="expiry-not-an-integer"),
    pytest.param(lambda q: [("exp", "x"), ("sig", q["sig"]), ("exp", q["exp"])], id="bad-expiry-first-good-second"),
    pytest.param(lambda q: [("exp", q["exp"]), ("sig", "0" * 64), ("sig", q["sig"])], id="bad-signature-first-good-second"),
])
def test_mangled_query_strings_are_forbidden(client, mangle):
    path = signed("cat.png")
    response = client.get(_with_query(path, mangle(_query(path))))
    assert response.status_code == 403
    assert PNG not in response.data


@pytest.mark.parametrize("relpath", [
    "\uff0e\uff0e/outside.png",  # fullwidth full stops: not dots to the file system
    "\u2024\u2024/outside.png",  # one-dot leaders
    "cat.png/",  # trailing slash
    "cat.png/x",  # a file used as a folder
    "cat.png/..",
    "sub/%00/../cat.png",
])
def test_more_traversal_variants_are_not_found(client, relpath):
    response = client.get(signed(relpath))
    assert response.status_code == 404
    assert PNG not in response.data


def test_a_symlink_loop_is_not_found_and_does_not_hang(client, folder):
    (folder / "loop.png").symlink_to(folder / "loop.png")
    (folder / "a").symlink_to(folder / "b", target_is_directory=True)
    (folder / "b").symlink_to(folder / "a", target_is_directory=True)
    assert client.get(signed("loop.png")).status_code == 404
    assert client.get(signed("a/cat.png")).status_code == 404


def test_a_link_to_the_folder_itself_gives_no_listing(client, folder):
    (folder / "self").symlink_to(folder, target_is_directory=True)
    response = client.get(signed("self"))
    assert response.status_code == 404 and b"cat.png" not in response.data


def test_a_file_swapped_for_a_link_after_signing_is_not_followed(client, folder, tmp_path):
    path = signed("swap.png")
    (folder / "swap.png").write_bytes(PNG)
    assert client.get(path).status_code == 200
    (folder / "swap.png").unlink()
    (folder / "swap.png").symlink_to(tmp_path / "outside.png")
    assert client.get(path).status_code == 404


def test_an_overlong_name_is_refused_cleanly(client):
    response = client.get(signed("a/" * 20_000 + "cat.png"))
    assert response.status_code in (404, 414)
    assert b"Traceback" not in response.data


@pytest.mark.parametrize("method", ["put", "delete", "patch", "post"])
def test_only_get_is_answered(client, method):
    response = getattr(client, method)(signed("cat.png"), data=PNG)
    assert response.status_code == 405
    assert PNG not in response.data


def test_a_served_image_cannot_be_reinterpreted_or_cached(client):
    response = client.get(signed("cat.png"))
    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in response.headers["Cache-Control"]


def test_a_signature_for_one_name_does_not_open_another_encoding_of_it(client, folder):
    # The signature covers the encoded name: padding added to the token is another token.
    path = signed("cat.png")
    token = urlsplit(path).path.removeprefix("/i/")
    assert token == encode_name("cat.png")
    padded = path.replace(token, token + "=", 1)
    assert client.get(padded).status_code == 403


def test_an_expired_url_stays_expired_when_the_file_changes(client, folder):
    old = sign_path("cat.png", SECRET, 30, now=time.time() - 60)
    (folder / "cat.png").write_bytes(image_bytes("PNG", color=(1, 2, 3)))
    assert client.get(old).status_code == 403
