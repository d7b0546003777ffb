"""RQ's stock forking ``Worker`` with the job's imports done before the fork, as RQ's docs advise.

Only for the worker-class comparison in :mod:`bench.latency`: it is the fairest fork-per-job
design (the work horse inherits Pillow, requests and our modules instead of importing them).
"""

from rq import Worker

import services.worker.tasks  # noqa: F401  (imported here, in the parent, so every fork has it)
from shared.imagetype import preload

preload()


class PreloadedWorker(Worker):
    """A fork per job, but no import per job."""
