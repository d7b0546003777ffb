"""`miro-sync watch` as a real process on a real folder, with a real Redis; the queue is read with rq."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image
from rq.job import Job
from rq.serializers import JSONSerializer

from shared.jobs import job_id, upload_queue
from shared.ledger import ItemEntry, Ledger
from tests.fixtures.procs import MIRO_SYNC, wait_for

BOARD = "uXjVtest="
QUEUE = "watch-test"
SETTLE = 0.5


def image_bytes(fmt: str = "PNG", size=(40, 30), color="red") -> bytes:
    import io

    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, fmt)
    return out.getvalue()


PNG = image_bytes("PNG")
JPEG = image_bytes("JPEG")


def write(path: Path, data: bytes, age: float | None = None) -> Path:
    """Write ``data`` in place; with ``age``, date the file that many seconds back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if age is not None:
        t = time.time() - age
        os.utime(path, (t, t))
    return path


def events(proc, name: str) -> list[dict]:
    out = []
    for line in proc.output().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == name:
            out.append(record)
    return out


def queued_jobs(redis_client) -> dict[str, tuple[int, int]]:
    """path -> (size, mtime_ns) for every job waiting in the queue."""
    out = {}
    for jid in upload_queue(redis_client, QUEUE).job_ids:
        path, size, mtime_ns = Job.fetch(jid, connection=redis_client, serializer=JSONSerializer).args
        assert jid == job_id(path, size, mtime_ns)
        assert path not in out, f"two jobs for {path}"
        out[path] = (size, mtime_ns)
    return out


def version(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


@pytest.fixture
def folder(tmp_path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path


@pytest.fixture
def start_watcher(spawn, redis_url, tmp_path):
    """Start `miro-sync watch` on a folder and wait for its first scan to finish."""

    def start(folder: Path, name: str = "watcher", prefix: tuple[str, ...] = (), **env: str):
        settings = {
            "MIRO_SYNC_ENV_FILE": "/nonexistent/miro-sync.env",
            "WATCH_FOLDER": str(folder),
            "MIRO_BOARD_ID": BOARD,
            "REDIS_URL": redis_url,
            "QUEUE_NAME": QUEUE,
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
            "SETTLE_SECONDS": str(SETTLE),
            "RESCAN_INTERVAL": "0",
            "WATCH_MODE": "auto",
        }
        settings.update(env)
        proc = spawn([*prefix, *MIRO_SYNC, "watch"], name, env=settings, cwd=tmp_path)
        wait_for(lambda: events(proc, "watch.scan") or not proc.alive(), 20, what="the start-up scan")
        assert proc.alive(), proc.output()
        return proc

    return start


def wait_queued(proc, redis_client, relpath: str, timeout: float = 10.0) -> tuple[int, int]:
    return wait_for(lambda: queued_jobs(redis_client).get(relpath), timeout, what=f"a job for {relpath}\n{proc.output()}")


def first_queued_line(proc) -> dict:
    """The first ``file.queued`` line; a job is in Redis a moment before its line is written, so wait for it."""
    return wait_for(lambda: events(proc, "file.queued"), 10, what=f"a file.queued line\n{proc.output()}")[0]


SENTINEL = "zz-sentinel.png"


def after_all(proc, redis_client, folder: Path) -> None:
    """Drop a sentinel picture and wait until it is queued.

    The watcher handles events in order and queues a file only after it settled, so once the
    sentinel is queued, everything seen before it has been handled and at least one settle time
    (and, polling, several polls) has passed: a second job for an earlier file would be there.
    """
    write(folder / SENTINEL, image_bytes("PNG", color="blue"))
    wait_queued(proc, redis_client, SENTINEL, timeout=20)


def test_startup_scan_queues_existing_images_only(folder, start_watcher, redis_client):
    a = write(folder / "a.png", PNG, age=60)
    b = write(folder / "sub" / "deeper" / "b photo.jpg", JPEG, age=60)
    write(folder / "c.png.part", PNG, age=60)
    write(folder / ".hidden.png", PNG, age=60)
    write(folder / ".cache" / "d.png", PNG, age=60)
    write(folder / "notes.txt", b"not a picture", age=60)
    (folder / "x.png").mkdir()  # a folder named like an image

    proc = start_watcher(folder)
    assert queued_jobs(redis_client) == {"a.png": version(a), "sub/deeper/b photo.jpg": version(b)}
    scan = events(proc, "watch.scan")[0]
    assert (scan["files"], scan["queued"], scan["rejected"], scan["synced"]) == (3, 2, 1, 0)
    assert sorted(e["file"] for e in events(proc, "file.queued")) == ["a.png", "sub/deeper/b photo.jpg"]
    started = events(proc, "watch.started")[0]
    assert started["folder"] == str(folder.resolve()) and started["mode"] == "auto" and started["observer"] == "InotifyObserver"


def test_fresh_file_found_at_startup_is_queued_once_settled(folder, start_watcher, redis_client):
    a = write(folder / "just-now.png", PNG)  # mtime now: maybe still being written
    proc = start_watcher(folder)
    assert wait_queued(proc, redis_client, "just-now.png") == version(a)


def test_close_after_write_queues_once(folder, start_watcher, redis_client):
    proc = start_watcher(folder)
    a = write(folder / "a.png", PNG)
    assert wait_queued(proc, redis_client, "a.png") == version(a)
    assert first_queued_line(proc)["trigger"] == "closed"
    # Well past the settle time, a later file is queued and a.png still has its one job.
    time.sleep(SETTLE * 2)
    write(folder / "later.png", PNG)
    wait_queued(proc, redis_client, "later.png")
    # A job is in Redis a moment before its line is written: wait for the second line, then compare.
    lines = wait_for(lambda: (lambda found: found if len(found) >= 2 else None)(events(proc, "file.queued")), 10, what=proc.output)
    assert [e["file"] for e in lines] == ["a.png", "later.png"]
    assert len(queued_jobs(redis_client)) == 2


def test_new_version_of_a_file_is_a_new_job(folder, start_watcher, redis_client):
    proc = start_watcher(folder)
    a = write(folder / "a.png", PNG)
    first = wait_queued(proc, redis_client, "a.png")
    a.write_bytes(image_bytes("PNG", color="blue"))
    second = version(a)
    assert second != first
    wait_for(lambda: len(upload_queue(redis_client, QUEUE).job_ids) == 2, 10, what="a second job")
    assert upload_queue(redis_client, QUEUE).job_ids[1] == job_id("a.png", *second)


def test_rename_from_crdownload_queues_the_final_name(folder, start_watcher, redis_client):
    proc = start_watcher(folder)
    partial = folder / "download.jpg.crdownload"
    with open(partial, "wb") as fh:
        for i in range(0, len(JPEG), 200):
            fh.write(JPEG[i : i + 200])
            fh.flush()
    time.sleep(SETTLE * 2)  # the temp file alone must never be queued, whatever the wait
    assert queued_jobs(redis_client) == {}
    final = folder / "download.jpg"
    partial.rename(final)
    assert wait_queued(proc, redis_client, "download.jpg") == version(final)
    assert list(queued_jobs(redis_client)) == ["download.jpg"]
    assert first_queued_line(proc)["trigger"] == "moved"


def test_file_moved_in_from_another_folder_is_queued_after_settling(folder, start_watcher, redis_client, tmp_path):
    proc = start_watcher(folder)
    outside = write(tmp_path / "elsewhere.png", PNG)
    target = folder / "moved-in.png"
    outside.rename(target)  # same file system: only a "created" event, no close
    assert wait_queued(proc, redis_client, "moved-in.png") == version(target)
    assert first_queued_line(proc)["trigger"] == "settled"


def test_folder_moved_in_has_its_files_queued(folder, start_watcher, redis_client, tmp_path):
    proc = start_watcher(folder)
    album = tmp_path / "album"
    one = write(album / "one.png", PNG, age=60)
    two = write(album / "inner" / "two.jpg", JPEG, age=60)
    album.rename(folder / "album")
    wait_for(lambda: len(queued_jobs(redis_client)) == 2, 10, what=f"two jobs\n{proc.output()}")
    assert set(queued_jobs(redis_client)) == {"album/one.png", "album/inner/two.jpg"}
    del one, two


def test_slow_writer_is_queued_once_only_after_close(folder, start_watcher, redis_client):
    proc = start_watcher(folder)
    data = image_bytes("PNG", size=(300, 300))
    path = folder / "slow.png"
    pieces = [data[i : i + len(data) // 5 + 1] for i in range(0, len(data), len(data) // 5 + 1)]
    with open(path, "wb") as fh:
        fh.write(b"")
        time.sleep(SETTLE * 2)  # opened, nothing written yet, longer than the settle time
        for piece in pieces:  # chunks over more than 2 s
            fh.write(piece)
            fh.flush()
            time.sleep(0.45)
            assert "slow.png" not in queued_jobs(redis_client), proc.output()
    assert wait_queued(proc, redis_client, "slow.png") == (len(data), path.stat().st_mtime_ns)
    after_all(proc, redis_client, folder)
    assert [e["file"] for e in events(proc, "file.queued")] == ["slow.png", SENTINEL]
    assert events(proc, "file.rejected") == []


def test_polling_mode_queues_once_when_stable(folder, start_watcher, redis_client):
    # Writes 0.3 s apart must never look settled: 2 s leaves a loaded machine a wide margin.
    proc = start_watcher(folder, WATCH_MODE="polling", POLL_INTERVAL="0.2", SETTLE_SECONDS="2.0")
    assert events(proc, "watch.started")[0]["observer"] == "PollingObserver"
    path = folder / "polled.png"
    data = image_bytes("PNG", size=(200, 200))
    with open(path, "wb") as fh:  # grows across several polls
        for i in range(0, len(data), len(data) // 4 + 1):
            fh.write(data[i : i + len(data) // 4 + 1])
            fh.flush()
            time.sleep(0.3)
            assert queued_jobs(redis_client) == {}, proc.output()
    assert wait_queued(proc, redis_client, "polled.png") == version(path)
    after_all(proc, redis_client, folder)  # polls and a settle time later: a second job would be there
    assert [e["file"] for e in events(proc, "file.queued")] == ["polled.png", SENTINEL]


def test_temp_and_hidden_files_are_ignored(folder, start_watcher, redis_client):
    proc = start_watcher(folder, LOG_LEVEL="DEBUG")
    for name in ["a.png.part", "b.jpg.crdownload", "c.png.download", "d.png.tmp", "e.png~", "~$f.png", ".g.png.swp", ".h.png", ".dir/i.png"]:
        write(folder / name, PNG)
    (folder / "j.png").mkdir()
    write(folder / "sentinel.png", PNG)  # events are handled in order: once this is queued, the rest was seen
    wait_queued(proc, redis_client, "sentinel.png")
    assert list(queued_jobs(redis_client)) == ["sentinel.png"]
    assert events(proc, "file.rejected") == []
    ignored = {e["file"] for e in events(proc, "file.ignored")}
    assert {"a.png.part", "b.jpg.crdownload", "~$f.png", ".h.png"} <= ignored


def _without_root_file_access() -> tuple[str, ...]:
    """Root reads any file: run the watcher without that power, so a chmod 000 file bites."""
    if os.geteuid() != 0:
        return ()
    if not shutil.which("setpriv"):
        pytest.fail("running as root needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE for this test")
    return ("setpriv", "--bounding-set=-dac_override,-dac_read_search")


def test_bad_inputs_get_one_line_each_and_no_job(folder, start_watcher, redis_client, tmp_path):
    proc = start_watcher(folder, prefix=_without_root_file_access(), RESCAN_INTERVAL="1")
    first_scans = len(events(proc, "watch.scan"))

    write(folder / "empty.jpg", b"")
    write(folder / "page.jpg", b"<!DOCTYPE html><html><body>Sign in to download</body></html>")
    write(folder / "notes.txt", b"just some text")
    write(folder / "locked.png", PNG).chmod(0)
    (folder / "link.png").symlink_to(write(tmp_path / "outside.png", PNG))
    write(folder / "line\nbreak.png", PNG)
    write(folder / "bell\x07.png", PNG)
    write(Path(os.fsdecode(os.fsencode(str(folder)) + b"/caf\xe9.png")), PNG)
    doomed = folder / "doomed.png"
    with open(doomed, "wb") as fh:
        fh.write(PNG)
        doomed.unlink()  # deleted while still being written
    moved_in = write(tmp_path / "gone.png", PNG)
    moved_in.rename(folder / "gone.png")
    (folder / "gone.png").unlink()  # deleted before it settled
    long_name = "L" * 251 + ".png"  # 255 bytes: odd but legal, and synced like any other
    write(folder / long_name, PNG)
    good = write(folder / "good.png", PNG)

    wait_queued(proc, redis_client, "good.png")
    wait_queued(proc, redis_client, long_name)
    expected = {
        "empty.jpg": "empty file (0 bytes)",
        "page.jpg": "not an image (HTML)",
        "notes.txt": "not an image",
        "locked.png": "unreadable (permission denied)",
        "link.png": "symbolic link (refused: it can point outside the folder)",
        "line\nbreak.png": "name contains control characters",
        "bell\x07.png": "name contains control characters",
        "caf\\xe9.png": "name is not valid UTF-8",
        "doomed.png": "deleted before it could be read",
        "gone.png": "deleted before it could be read",
    }
    wait_for(lambda: {e["file"] for e in events(proc, "file.rejected")} >= set(expected), 10, what=f"every rejection\n{proc.output()}")
    # Two more rescans (RESCAN_INTERVAL=1) go over every file again and report nothing new.
    wait_for(lambda: len(events(proc, "watch.scan")) >= first_scans + 2, 10, what="two rescans")
    rejected = [(e["file"], e["reason"]) for e in events(proc, "file.rejected")]
    for name, reason in expected.items():
        assert rejected.count((name, reason)) == 1, (name, rejected)
    assert set(queued_jobs(redis_client)) == {"good.png", long_name}
    assert queued_jobs(redis_client)["good.png"] == version(good)
    assert proc.alive()


def test_synced_files_are_not_queued_on_restart(folder, start_watcher, redis_client):
    done = write(folder / "done.png", PNG, age=60)
    changed = write(folder / "changed.png", PNG, age=60)
    write(folder / "new.png", PNG, age=60)
    ledger = Ledger(redis_client, BOARD)
    ledger.record("done.png", ItemEntry("1", "a" * 64, *version(done), slot=0, route="file", delivery="file", at=0.0))
    older = ItemEntry("2", "b" * 64, version(changed)[0], version(changed)[1] - 1, slot=1, route="file", delivery="file", at=0.0)
    ledger.record("changed.png", older)  # an older version
    proc = start_watcher(folder)
    assert set(queued_jobs(redis_client)) == {"changed.png", "new.png"}
    scan = events(proc, "watch.scan")[0]
    assert (scan["files"], scan["synced"], scan["queued"]) == (3, 1, 2)


def test_restart_does_not_queue_twice(folder, start_watcher, redis_client):
    write(folder / "a.png", PNG, age=60)
    first = start_watcher(folder, name="first")
    assert list(queued_jobs(redis_client)) == ["a.png"]
    first.stop()
    second = start_watcher(folder, name="second")
    assert events(second, "watch.scan")[0]["queued"] == 0  # the job exists already
    assert len(upload_queue(redis_client, QUEUE).job_ids) == 1


def test_missing_setting_is_one_line_and_exit_2(redis_url, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("MIRO_BOARD_ID", "WATCH_FOLDER")}
    env.update({"MIRO_SYNC_ENV_FILE": str(tmp_path / "no.env"), "WATCH_FOLDER": str(tmp_path), "REDIS_URL": redis_url})
    done = subprocess.run([*MIRO_SYNC, "watch"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "MIRO_BOARD_ID is not set" in lines[0], done.stderr


def test_sigterm_stops_cleanly(folder, start_watcher):
    proc = start_watcher(folder)
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.popen.wait(10) == 0
    assert events(proc, "watch.stopped")


def test_once_scans_queues_and_exits(folder, redis_url, redis_client, tmp_path):
    a = write(folder / "a.png", PNG, age=60)
    env = dict(os.environ, MIRO_SYNC_ENV_FILE="/nonexistent/miro-sync.env", WATCH_FOLDER=str(folder), MIRO_BOARD_ID=BOARD,
               REDIS_URL=redis_url, QUEUE_NAME=QUEUE, LOG_FORMAT="json")
    done = subprocess.run([*MIRO_SYNC, "watch", "--once"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert queued_jobs(redis_client) == {"a.png": version(a)}
    scan = [json.loads(line) for line in done.stderr.splitlines() if '"watch.scan"' in line]
    assert len(scan) == 1 and scan[0]["queued"] == 1


def test_once_takes_a_file_written_moments_before_it_once_it_is_still(folder, redis_url, redis_client, tmp_path):
    fresh = write(folder / "fresh.png", PNG)  # within SETTLE_SECONDS of the scan: the settle timer decides
    env = dict(os.environ, MIRO_SYNC_ENV_FILE="/nonexistent/miro-sync.env", WATCH_FOLDER=str(folder), MIRO_BOARD_ID=BOARD,
               REDIS_URL=redis_url, QUEUE_NAME=QUEUE, LOG_FORMAT="json", SETTLE_SECONDS="2")
    done = subprocess.run([*MIRO_SYNC, "watch", "--once"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert queued_jobs(redis_client) == {"fresh.png": version(fresh)}, done.stderr


def test_file_written_while_redis_is_down_is_queued_when_it_is_back(folder, start_watcher, redis_server, redis_client):
    proc = start_watcher(folder)
    redis_server.stop()
    try:
        a = write(folder / "during-outage.png", PNG)
        [outage] = wait_for(lambda: events(proc, "redis.unavailable"), 10, what=f"the outage line\n{proc.output()}")
        assert outage["redis_url"] == redis_server.url and "REDIS_URL" in outage["fix"], outage  # which Redis, and what to do
    finally:
        redis_server.start()
    assert wait_queued(proc, redis_client, "during-outage.png", timeout=15) == version(a)
    # The "back" line follows the job by a moment (the watcher asks Redis once more before it says so).
    wait_for(lambda: events(proc, "redis.available"), 10, what=f"the back-again line\n{proc.output()}")
    assert len(events(proc, "redis.unavailable")) == 1
