"""Drill: bad input is reported in one log line each and skipped; good pictures keep arriving.

Decisions (docs/reliability.md):

* a 40-megapixel PNG or JPEG that fits Miro's 6 MB goes as it is (the worker validates it at low
  memory: JPEG and PNG checked by walking their structure to the end, never decoded whole);
* a file over 6 MB goes by file route in auto mode without a tunnel: converted, and scaled down
  until it fits (a JPEG is decoded at a reduced scale first), said in its ``upload.done`` line;
* a folder named ``x.png`` is a folder: its pictures are synced, the folder itself is not reported;
* names with control characters (a newline, a tab...) or bytes that are not UTF-8 are refused, as
  they cannot travel safely into a JSON job, a Miro title and a log line; 255-byte names are fine.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil

import pytest
from PIL import Image

from tests.fixtures.procs import wait_for

from .harness import drop_file, picture, read

REPORT_EVENTS = {"file.rejected", "file.skipped", "upload.failed"}
WORKER_BUDGET_MB = 300  # peak RSS while converting, see shared/image/convert.py


def _image(fmt: str, size: tuple[int, int], noise: bool = False, **options) -> bytes:
    if noise:
        im = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    else:
        im = Image.linear_gradient("L").resize(size).convert("RGB")
    buf = io.BytesIO()
    im.save(buf, fmt, **options)
    return buf.getvalue()


def _reports(rig, name: str) -> list[dict]:
    return [e for e in rig.events() if e.get("event") in REPORT_EVENTS and e.get("file") == name]


def test_bad_input_is_reported_once_each_and_skipped(rig, tmp_path):
    rig.env["UPLOAD_MODE"] = "auto"  # no tunnel configured: everything goes by file
    rig.start_watcher()
    rig.start_workers(2)
    folder = rig.folder
    good_png = picture(1, (64, 48))
    good_jpeg = _image("JPEG", (80, 60), quality=90)

    bad = {  # name -> what the report must say
        "notes.png": "not an image",
        "empty.png": "empty",
        "cut.png": "png",
        "cut.jpg": "jpeg",
        "page.jpg": "html",
        "link.png": "symbolic link",
        "new\nline.png": "control characters",
        "tab\there.png": "control characters",
        "bell\x07.png": "control characters",
        "del\x7f.png": "control characters",
        "bad\\xff.png": "UTF-8",  # as logged: the undecodable byte written out
        "gone.png": "deleted",
    }
    (folder / "notes.png").write_text("this is not a picture\n" * 20)
    (folder / "empty.png").write_bytes(b"")
    drop_file(folder / "cut.png", good_png[: len(good_png) // 2])
    drop_file(folder / "cut.jpg", good_jpeg[: len(good_jpeg) // 2])
    (folder / "page.jpg").write_text("<!DOCTYPE html><html><body>ERR_NGROK_6024</body></html>")
    outside = tmp_path / "outside.png"
    outside.write_bytes(good_png)
    (folder / "link.png").symlink_to(outside)
    for seed, name in enumerate(("new\nline.png", "tab\there.png", "bell\x07.png", "del\x7f.png"), start=20):
        drop_file(folder / name, picture(seed))
    with open(os.path.join(os.fsencode(folder), b"bad\xff.png"), "wb") as fh:
        fh.write(picture(7))
    with open(folder / "gone.png", "wb") as fh:
        fh.write(good_png)
    os.unlink(folder / "gone.png")

    # What must arrive, whatever the bad files around it.
    long_ascii = "a" * 251 + ".png"
    long_utf8 = "é" * 125 + "b.png"
    assert len(long_ascii.encode()) == len(long_utf8.encode()) == 255
    expected = {
        "fine.png": good_png,
        "fine.jpg": good_jpeg,
        long_ascii: picture(2),
        long_utf8: picture(3),
        "huge-40mp.png": _image("PNG", (7800, 5200)),
        "huge-40mp.jpg": _image("JPEG", (7800, 5200), quality=90),
        "inside.png": picture(4),
    }
    (folder / "x.png").mkdir()
    for name, data in expected.items():
        drop_file(folder / ("x.png/" + name if name == "inside.png" else name), data)
    big = _image("JPEG", (5000, 4000), noise=True, quality=95)
    assert len(big) > 6 * 1024 * 1024
    drop_file(folder / "big.jpg", big)

    rig.wait_items(len(expected) + 1, timeout=60)
    rig.wait_idle()
    for name in bad:
        rig_wait_report(rig, name)

    items = {i["data"]["title"]: i for i in rig.items()}
    assert set(items) == set(expected) | {"big.jpg"}
    for name, data in expected.items():
        assert items[name]["bytes_sha256"] == hashlib.sha256(data).hexdigest(), name

    for name, says in bad.items():
        [line] = _reports(rig, name)
        assert says.lower() in line["reason"].lower(), (name, line)
    [big_line] = [e for e in rig.events("upload.done") if e["file"] == "big.jpg"]
    assert "5000x4000->" in big_line["converted"] and big_line["bytes"] <= 6 * 1024 * 1024
    assert items["big.jpg"]["bytes_len"] == big_line["bytes"]
    # The folder named like a picture is not reported, and nothing of it was uploaded as a file.
    assert not [e for e in rig.events() if e.get("file") == "x.png" and e["level"] != "debug"]
    assert rig.failed_jobs() == 0
    assert not [e for e in rig.events() if e["level"] == "error"]
    for proc in rig.procs.values():
        assert proc.alive(), read(proc)[-3000:]
    # Validating and converting big pictures stays within the worker's memory budget (imagetype).
    for name, proc in rig.procs.items():
        if name.startswith("worker"):
            assert _peak_rss_mb(proc.pid) < WORKER_BUDGET_MB, name
    rig.stop_all_cleanly()


def _peak_rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def rig_wait_report(rig, name: str) -> None:
    wait_for(lambda: _reports(rig, name), 10, what=lambda: f"a report line for {name!r}\n" + rig.tail())


def _without_file_permission_bypass() -> list[str] | None:
    """A command prefix under which permissions apply (root reads a chmod 000 file otherwise)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if not setpriv:
        return None
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]


def test_unreadable_file_is_reported_once_and_skipped(rig):
    prefix = _without_file_permission_bypass()
    if prefix is None:
        pytest.skip("running as root without setpriv: permissions cannot be enforced on this machine")
    rig.command_prefix = prefix
    rig.start_watcher()
    rig.start_workers(1)
    secret = rig.folder / "secret.png"
    secret.write_bytes(picture(5))
    secret.chmod(0)
    expected = rig.drop(3)
    rig.wait_items(3)
    rig_wait_report(rig, "secret.png")
    rig.wait_idle()
    [line] = _reports(rig, "secret.png")
    assert "permission denied" in line["reason"]
    assert set(i["data"]["title"] for i in rig.items()) == set(expected)
    rig.stop_all_cleanly()
