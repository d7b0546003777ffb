"""The whole corpus dropped into a running stack: every picture shows and decodes on the board, a
bad one gets one ``file.rejected`` line, and the worker converting 50 MP stays within its memory."""

from __future__ import annotations

import io
import os
import shutil

import psutil
from PIL import Image

from tests.fixtures.procs import wait_for
from tests.imagetype.corpus import BIG_HEIGHT, BIG_WIDTH
from tests.imagetype.test_corpus import SHOWN_TYPES, bluish, reddish, shown

REST_MB = 80
CONVERTING_MB = 300


def _workers(stack) -> list[psutil.Process]:
    procs = psutil.Process(stack.proc.pid).children(recursive=True)
    return [p for p in procs if "worker" in p.cmdline()]


def _status_mb(proc: psutil.Process, field: str) -> float:
    for line in open(f"/proc/{proc.pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field}")


def _drop(src, folder, name: str | None = None) -> None:
    tmp = folder / f".{name or src.name}.tmp"
    shutil.copyfile(src, tmp)
    os.replace(tmp, folder / (name or src.name))


def test_whole_corpus_shows_and_decodes_on_the_board(local_stack, corpus, big_jpeg, tmp_path):
    local_stack.env["UPLOAD_MODE"] = "file"  # no tunnel route: the 50 MP photo must be converted
    local_stack.start()
    workers = _workers(local_stack)
    assert workers
    for worker in workers:
        assert _status_mb(worker, "VmRSS") <= REST_MB, (worker.pid, _status_mb(worker, "VmRSS"))

    for path in corpus.values():
        _drop(path, local_stack.folder)
    _drop(big_jpeg, local_stack.folder)
    cut = tmp_path / "cut.webp"
    [webp] = [p for p in corpus.values() if p.name == "lossy.webp"]
    cut.write_bytes(webp.read_bytes()[: webp.stat().st_size // 2])
    _drop(cut, local_stack.folder)

    items = {i["data"]["title"]: i for i in local_stack.wait_items(len(corpus) + 1, timeout=120)}
    assert set(items) == {p.name for p in corpus} | {big_jpeg.name}
    for picture in corpus:
        item = items[picture.name]
        assert item["decodes"] is True and item["content_type"] in SHOWN_TYPES, item
        im, frames = shown(local_stack.picture(item))
        assert reddish(im.getpixel((6, 4))) and bluish(im.getpixel((88, 8))), picture.name
        assert frames == picture.frames, picture.name
        assert (im.getpixel((6, 58))[3] == 0) == picture.alpha, picture.name

    big = items[big_jpeg.name]
    assert big["decodes"] is True and big["bytes_len"] <= 6 * 1024 * 1024
    with Image.open(io.BytesIO(local_stack.picture(big))) as im:
        assert im.width / im.height == BIG_WIDTH / BIG_HEIGHT or abs(im.width / im.height - BIG_WIDTH / BIG_HEIGHT) < 0.01

    def rejections() -> list[str]:
        return [line for line in local_stack.log().splitlines() if "file.rejected" in line]

    wait_for(rejections, 30, what=lambda: "a file.rejected line\n" + local_stack.log()[-3000:])
    rejected = rejections()
    assert len(rejected) == 1 and "cut.webp" in rejected[0] and "webp" in rejected[0].split("reason=", 1)[1], rejected
    for worker in workers:
        assert _status_mb(worker, "VmHWM") <= CONVERTING_MB, (worker.pid, _status_mb(worker, "VmHWM"))
