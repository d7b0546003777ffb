"""What the converter child costs a picture sent as it is: ``python -m bench.isolation``.

A 1 MB JPEG and a 1 MB PNG (photo-like, under Miro's 6 MB: the worker sends them as they are) go
through ``inspect`` then ``prepare_upload``, as the worker calls them, 200 times each: in this process
(:mod:`shared.imagetype`, before isolation) and through the converter (:mod:`shared.image.isolated`,
what the worker does now: a PNG checked here, a JPEG's orientation read in the child). Printed per
picture: wall time, this process's CPU and the child's CPU (user + system), as a Markdown table.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import psutil

from shared import imagetype
from shared.image import isolated

from .images import photo_near

REPEAT = 200


def _per_picture(inspect, prepare_upload, path: Path, child: psutil.Process) -> tuple[float, float, float]:
    def once() -> None:
        prepare_upload(path, inspect(path), 6 << 20)

    once()
    c0, p0, t0 = child.cpu_times(), time.process_time(), time.perf_counter()
    for _ in range(REPEAT):
        once()
    wall, cpu, c1 = time.perf_counter() - t0, time.process_time() - p0, child.cpu_times()
    child_cpu = c1.user + c1.system - c0.user - c0.system
    return wall * 1000 / REPEAT, cpu * 1000 / REPEAT, child_cpu * 1000 / REPEAT


def main() -> None:
    imagetype.preload()
    converter = isolated.converter()
    converter.call(int, kind="")  # started and ready, as in a worker
    child = psutil.Process(converter.pid)
    print("| 1 MB picture, sent as it is | where | wall | worker CPU | child CPU |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for kind, suffix in (("JPEG", ".jpg"), ("PNG", ".png")):
            path = Path(tmp) / f"one{suffix}"
            path.write_bytes(photo_near(1_000_000, kind))
            for where, inspect, prepare in (("in the worker (before)", imagetype.inspect, imagetype.prepare_upload),
                                            ("through the converter (after)", isolated.inspect, isolated.prepare_upload)):
                wall, cpu, child_cpu = _per_picture(inspect, prepare, path, child)
                print(f"| {kind} | {where} | {wall:.2f} ms | {cpu:.2f} ms | {child_cpu:.2f} ms |")


if __name__ == "__main__":
    main()
