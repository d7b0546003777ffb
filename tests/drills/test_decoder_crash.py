"""Drill: a decoder crashing on a picture costs that picture only (shared.image.isolated).

A worker converts a big BMP in its converter child; the test sends that child SIGSEGV mid-conversion,
as a decoder fault would. The picture is rejected with the reason (``status --json``, one
``file.rejected`` line), the worker runs on, and the pictures around it arrive once each.
"""

from __future__ import annotations

import json
import signal
import subprocess

import psutil
from PIL import Image

from tests.fixtures.procs import MIRO_SYNC, wait_for

from .harness import drop_file, read


def _converting(worker: psutil.Process, busy: float) -> psutil.Process | None:
    """The worker's converter child once it has spent ``busy`` s of CPU on the picture in hand."""
    for child in worker.children(recursive=True):
        try:
            times = child.cpu_times()
            if "shared.image.isolated" in " ".join(child.cmdline()) and times.user + times.system > busy:
                return child
        except psutil.NoSuchProcess:
            pass
    return None


def test_a_decoder_crash_rejects_that_picture_and_the_worker_goes_on(rig, tmp_path):
    rig.start_watcher()
    worker = rig.start_worker()
    before = rig.drop(2, prefix="before")
    rig.wait_items(2)
    converter = _converting(psutil.Process(worker.pid), 0.0)
    assert converter is not None, "the worker runs no converter child"
    idle_cpu = sum(converter.cpu_times()[:2])

    # Noise compresses badly: the 6 MB JPEG takes several encodings, seconds of CPU.
    big = tmp_path / "big.bmp"
    Image.merge("RGB", [Image.effect_noise((4000, 3000), 60) for _ in range(3)]).save(big)
    drop_file(rig.folder / "crash.bmp", big.read_bytes())
    child = wait_for(lambda: _converting(psutil.Process(worker.pid), idle_cpu + 0.3), 60, what="the conversion to start")
    child.send_signal(signal.SIGSEGV)

    after = rig.drop(2, start=2, prefix="after")
    rig.wait_items(4)
    rig.wait_idle()
    rig.assert_each_once({**before, **after})
    assert worker.alive()
    reason = "the BMP decoder crashed on this file (SIGSEGV)"
    assert [e["reason"] for e in rig.events("file.rejected")] == [reason], read(worker)[-3000:]
    done = subprocess.run(MIRO_SYNC + ["status", "--json"], env=rig.process_env(), capture_output=True, text=True, timeout=60)
    shown = json.loads(done.stdout)
    assert shown["rejected"] == 1
    assert [(r["path"], r["reason"]) for r in shown["recent_rejections"]] == [("crash.bmp", reason)]
    rig.stop_all_cleanly()
