"""`python -m bench fuzz`, the picture stack's long fuzz run: a short run reports its executions, and
a finding is kept as a file with its recipe (at most KEEP_PER_SIGNATURE of each signature)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from bench.fuzz.campaign import KEEP_PER_SIGNATURE, Tally, _count, signature
from bench.fuzz.isolated import Outcome, Verdict
from bench.fuzz.mutate import Mutation, Op
from bench.fuzz.seeds import Seed
from tests.fixtures.procs import ROOT

TRACE = 'Fatal Python error: Segmentation fault\n\nCurrent thread 0x1 (most recent call first):\n  File "/x/shared/image/convert.py", line 250 in _fit\n'


def test_short_run_reports_executions_rate_and_outcomes(tmp_path):
    run = subprocess.run([sys.executable, "-m", "bench", "fuzz", "--seconds", "2", "--no-large", "--max-size", "65536",
                          "--timeout", "20", "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    executions = re.search(r"executions: (\d+) in \d+ s \(([\d.]+) per second\)", run.stdout)
    assert executions and int(executions[1]) > 0 and float(executions[2]) > 0, run.stdout
    assert "outcomes: " in run.stdout and "## Findings: " in run.stdout
    assert (tmp_path / "report.md").read_text() == run.stdout[: len((tmp_path / "report.md").read_text())]


def test_findings_are_saved_with_their_recipe_grouped_by_signature(tmp_path):
    tally, mutations = Tally(), [Mutation(Op.LIE, 3, 7, 1)]
    crash = Verdict(Outcome.CRASH, "killed by SIGSEGV", 0.1, 90.0, TRACE)
    for n in range(KEEP_PER_SIGNATURE + 2):
        _count(tally, Seed("png", b""), "rgb8.png", mutations, b"\x89PNG crash %d" % n, crash, tmp_path)
    _count(tally, Seed("png", b""), "rgb8.png", mutations, b"\x89PNG fine", Verdict(Outcome.REFUSED, "corrupt png (no IHDR)", 0.1, 30.0), tmp_path)
    assert tally.executions == KEEP_PER_SIGNATURE + 3 and tally.outcomes == {"crash": KEEP_PER_SIGNATURE + 2, "refused": 1}
    [finding] = tally.findings.values()
    assert finding.signature == signature("png", crash) == "crash png: killed by SIGSEGV at shared/image/convert.py:_fit"
    assert finding.count == KEEP_PER_SIGNATURE + 2 and len(finding.files) == KEEP_PER_SIGNATURE
    assert finding.files[0].read_bytes() == b"\x89PNG crash 0" and finding.files[0].suffix == ".png"
    about = json.loads(finding.files[0].with_suffix(".json").read_text())
    assert about["seed"] == "rgb8.png" and about["mutations"] == [{"op": "lie", "a": 3, "b": 7, "c": 1}]
    assert about["verdict"].startswith("crash: killed by SIGSEGV") and "convert.py" in about["trace"]
