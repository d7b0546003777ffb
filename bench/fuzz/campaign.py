"""``python -m bench fuzz``: the long run. Mutated pictures through :func:`~bench.fuzz.isolated.run_one`
until the time is up; executions, executions per second, outcomes and findings, each finding saved.

A finding is kept as ``<out>/findings/<outcome>-<kind>-<n>.<ext>`` (the input: ``--replay`` runs it
again) beside a ``.json`` with its recipe (seed and mutations) and what happened. Findings are grouped
by signature (outcome, kind, the reason with its numbers taken out, the innermost frame of the picture
stack) and at most :data:`KEEP_PER_SIGNATURE` inputs are kept of each. Cases are drawn from a seeded
``random.Random``: the same seed, time and machine draw the same cases.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .isolated import Limits, Outcome, Verdict, run_one
from .mutate import Mutation, apply, draw, recipe
from .seeds import Seed, seeds

KEEP_PER_SIGNATURE = 3
EXTENSIONS = {"jpeg": "jpg", "tiff": "tif"}
_FRAME = re.compile(r'File "[^"]*/((?:shared|PIL|pyvips|pillow_heif)/[^"]+)", line \d+ in (\w+)')


@dataclass
class Finding:
    signature: str
    verdict: Verdict
    count: int = 0
    files: list[Path] = field(default_factory=list)


@dataclass
class Tally:
    executions: int = 0
    seconds: float = 0.0
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    reasons: collections.Counter[str] = field(default_factory=collections.Counter)
    findings: dict[str, Finding] = field(default_factory=dict)
    slowest: tuple[float, str] = (0.0, "")


def signature(kind: str, verdict: Verdict) -> str:
    frames = _FRAME.findall(verdict.trace)
    if verdict.trace.startswith("Traceback"):
        frames.reverse()  # a traceback lists the innermost call last; faulthandler first
    where = f" at {frames[0][0]}:{frames[0][1]}" if frames else ""
    return f"{verdict.outcome.value} {kind}: {re.sub(r'[0-9]+', '#', verdict.detail)[:90]}{where}"


def run(out: Path, seconds: float, seed: int, limits: Limits, max_size: int, large: bool) -> Tally:
    corpus = seeds(large=large)
    names = sorted(corpus)
    rnd = random.Random(seed)
    findings_dir = out / "findings"
    findings_dir.mkdir(parents=True, exist_ok=True)
    tally = Tally()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fuzz-") as work:
        while time.monotonic() - started < seconds:
            name = rnd.choice(names)
            mutations = draw(rnd)
            case = Path(work) / f"case.{name.rsplit('.', 1)[1]}"
            data = apply(corpus[name].data, corpus[name].kind, mutations, max_size)
            case.write_bytes(data)
            verdict = run_one(case, limits)
            _count(tally, corpus[name], name, mutations, data, verdict, findings_dir)
            if tally.executions % 500 == 0:
                print(f"fuzz: {tally.executions} executions, {len(tally.findings)} kinds of finding", file=sys.stderr, flush=True)
    tally.seconds = time.monotonic() - started
    return tally


def _count(tally: Tally, seed: Seed, name: str, mutations: list[Mutation], data: bytes, verdict: Verdict, folder: Path) -> None:
    tally.executions += 1
    tally.outcomes[verdict.outcome.value] += 1
    if verdict.outcome is Outcome.REFUSED:
        tally.reasons[re.sub(r"[0-9]+", "#", verdict.detail)[:80]] += 1
    if verdict.seconds > tally.slowest[0]:
        tally.slowest = (verdict.seconds, f"{verdict.describe()} ({recipe(name, mutations)})")
    if not verdict.is_finding:
        return
    key = signature(seed.kind, verdict)
    finding = tally.findings.setdefault(key, Finding(key, verdict))
    finding.count += 1
    if len(finding.files) < KEEP_PER_SIGNATURE:
        stem = folder / f"{verdict.outcome.value}-{seed.kind}-{len(tally.findings)}-{finding.count}"
        path = stem.with_suffix("." + EXTENSIONS.get(seed.kind, seed.kind))
        path.write_bytes(data)
        about = {**json.loads(recipe(name, mutations)), "verdict": verdict.describe(), "signature": key, "trace": verdict.trace}
        stem.with_suffix(".json").write_text(json.dumps(about, indent=1))
        finding.files.append(path)


def report(tally: Tally, args: argparse.Namespace) -> str:
    rate = tally.executions / tally.seconds if tally.seconds else 0.0
    command = f"python -m bench fuzz --seconds {args.seconds:g} --seed {args.seed}" + ("" if args.large else " --no-large")
    lines = [f"# Fuzz run: `{command}`", "",
             f"- executions: {tally.executions} in {tally.seconds:.0f} s ({rate:.1f} per second)",
             f"- limits: {args.timeout:g} s, {args.memory_mb} MB, cases up to {args.max_size >> 20} MB",
             "- outcomes: " + ", ".join(f"{k} {v}" for k, v in tally.outcomes.most_common()),
             f"- slowest case: {tally.slowest[1]}", "", f"## Findings: {len(tally.findings)} signatures", ""]
    for finding in sorted(tally.findings.values(), key=lambda f: -f.count):
        lines.append(f"- **{finding.signature}** × {finding.count}: {', '.join(p.name for p in finding.files)}")
    lines += ["", "## Most common refusals", ""] + [f"- {count} × {reason}" for reason, count in tally.reasons.most_common(12)]
    return "\n".join(lines) + "\n"


def replay(path: Path, limits: Limits) -> int:
    verdict = run_one(path, limits)
    print(verdict.describe())
    if verdict.trace:
        print(verdict.trace)
    return 1 if verdict.is_finding else 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0, help="how long to run (default 180)")
    parser.add_argument("--seed", type=int, default=0, help="the cases drawn (default 0)")
    parser.add_argument("--large", action=argparse.BooleanOptionalAction, default=True,
                        help="also mutate pictures of 9 MP, decoded whole by Pillow (default on)")
    parser.add_argument("--timeout", type=float, default=Limits.seconds, help="seconds before a case is a hang")
    parser.add_argument("--memory-mb", type=int, default=Limits.memory_mb, help="peak RSS that is a finding")
    parser.add_argument("--max-size", type=int, default=32 << 20, help="bytes a mutated case may grow to")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "out" / "fuzz")
    parser.add_argument("--replay", type=Path, help="run one saved input again and print its verdict")
    args = parser.parse_args(argv)
    limits = Limits(seconds=args.timeout, memory_mb=args.memory_mb)
    if args.replay:
        return replay(args.replay, limits)
    tally = run(args.out, args.seconds, args.seed, limits, args.max_size, args.large)
    text = report(tally, args)
    (args.out / "report.md").write_text(text)
    print(text)
    return 0
