"""The board page shows what arrived: each picture really renders, at its place, in a real browser."""

from __future__ import annotations

import json

import pytest

from tests.fixtures.procs import wait_for

from .browser import Browser, chromium_binary
from .helpers import board_path, file_parts, jpeg, png

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(chromium_binary() is None, reason="chromium is not installed (scripts/ensure-system-deps)"),
]

IMAGES_JS = """JSON.stringify(Array.from(document.querySelectorAll('img.item')).map(i => ({
  id: i.dataset.itemId, title: i.title, complete: i.complete, naturalWidth: i.naturalWidth,
  broken: i.classList.contains('broken'), rect: i.getBoundingClientRect().toJSON()})))"""

CAPTIONS_JS = """JSON.stringify(Array.from(document.querySelectorAll('.caption')).map(c => ({
  id: c.dataset.itemId, text: c.textContent, visible: c.offsetHeight > 0, rect: c.getBoundingClientRect().toJSON()})))"""


@pytest.fixture
def browser(spawn, tmp_path):
    b = Browser(spawn, tmp_path / "chromium-profile")
    yield b
    b.close()


def test_board_page_renders_each_picture_at_its_place(sandbox, miro, browser, image_origin):
    frame = miro.post(board_path(sandbox.board_id, "/frames"),
                      json={"data": {"title": "Sync"}, "position": {"x": 0, "y": 0}, "geometry": {"width": 1200, "height": 600}}).json()
    red = miro.post(board_path(sandbox.board_id, "/images"), files=file_parts(png(400, 200, "red"), {
        "title": "red.png", "position": {"x": 220, "y": 220}, "geometry": {"width": 400}, "parent": {"id": frame["id"]}})).json()
    url = image_origin.put("/blue.jpg", jpeg(300, 300, "blue"), "image/jpeg")
    blue = miro.post(board_path(sandbox.board_id, "/images"), json={
        "data": {"url": url, "title": "blue.jpg"}, "position": {"x": 900, "y": 300}, "geometry": {"height": 300}}).json()
    browser.navigate(sandbox.board_page(sandbox.board_id))

    def rendered():
        shown = json.loads(browser.evaluate(IMAGES_JS))
        return shown if len(shown) == 2 and all(i["complete"] and i["naturalWidth"] > 0 for i in shown) else None

    shown = {i["id"]: i for i in wait_for(rendered, 20, what="both pictures rendered on the board page")}
    assert set(shown) == {red["id"], blue["id"]}
    assert shown[red["id"]]["naturalWidth"] == 400 and shown[blue["id"]]["naturalWidth"] == 300
    assert shown[red["id"]]["title"] == "red.png" and shown[blue["id"]]["title"] == "blue.jpg"
    r, b = shown[red["id"]]["rect"], shown[blue["id"]]["rect"]
    assert (r["x"], r["y"]) != (b["x"], b["y"])
    assert r["x"] + r["width"] <= b["x"]  # red spans board x -580..-180 (inside the frame), blue 750..1050
    assert browser.evaluate("document.querySelectorAll('div.frame').length") == 1
    # Each title is shown, small, under its picture (not only as a tooltip).
    captions = {c["id"]: c for c in json.loads(browser.evaluate(CAPTIONS_JS))}
    for item, title in ((red, "red.png"), (blue, "blue.jpg")):
        picture, caption = shown[item["id"]]["rect"], captions[item["id"]]
        assert caption["text"] == title and caption["visible"], caption
        assert abs(caption["rect"]["top"] - (picture["y"] + picture["height"])) <= 3 and caption["rect"]["x"] == picture["x"], (caption, picture)


def test_board_page_shows_a_non_image_as_broken_and_follows_new_items(sandbox, miro, browser, image_origin):
    browser.navigate(sandbox.board_page(sandbox.board_id))
    wait_for(lambda: "0 images" in browser.evaluate("document.getElementById('summary').textContent"), 10,
             what="the empty board drawn")
    url = image_origin.put("/warning", b"<html>ngrok warning</html>", "text/html")
    assert miro.post(board_path(sandbox.board_id, "/images"), json={"data": {"url": url}}).status_code == 201

    def broken():
        shown = json.loads(browser.evaluate(IMAGES_JS))
        return shown if len(shown) == 1 and shown[0]["broken"] else None

    [item] = wait_for(broken, 20, what="the new item drawn as a broken picture")
    assert item["naturalWidth"] == 0
    assert browser.evaluate("document.getElementById('summary').textContent").startswith("1 image, 0 frames")
