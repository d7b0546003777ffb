"""`python -m bench [--quick | --smoke] [--only NAMES]`: run the drills, print the table, write the results.

`python -m bench fuzz [--seconds N]` fuzzes the picture stack instead (:mod:`bench.fuzz.campaign`;
no stack needed).

Every run writes ``bench/out/results-<profile>.md`` and keeps its processes' logs in
``bench/out/<profile>/logs``; a complete full run also replaces the generated block of
``bench/RESULTS.md``. Exit code 0 when every drill ran (missed targets are reported, not fatal),
1 when one could not run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from . import cpu, latency, memory, mirror, restart, throughput, urlroute
from .harness import Bench, BenchError
from .profiles import PROFILES
from .report import LoadSampler, Report, machine, write_results

HERE = Path(__file__).resolve().parent
DRILLS = {"latency": latency, "throughput": throughput, "restart": restart, "memory": memory, "cpu": cpu, "urlroute": urlroute,
          "mirror": mirror}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description="miro-sync benchmarks against the local sandbox")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="smaller drills, under two minutes (make bench)")
    mode.add_argument("--smoke", action="store_true", help="the smallest drills, seconds (the bench's own test)")
    parser.add_argument("--only", help=f"comma-separated drills to run (default all: {','.join(DRILLS)})")
    parser.add_argument("--out", type=Path, default=HERE / "out", help="where results and logs go (default bench/out)")
    parser.add_argument("--no-results-md", action="store_true", help="do not update bench/RESULTS.md after a full run")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["fuzz"]:
        from .fuzz.campaign import main as fuzz

        return fuzz(argv[1:])
    args = parse(argv)
    profile = PROFILES["quick" if args.quick else "smoke" if args.smoke else "full"]
    names = [n.strip() for n in args.only.split(",")] if args.only else list(DRILLS)
    unknown = set(names) - set(DRILLS)
    if unknown:
        print(f"python -m bench: unknown drill(s) {', '.join(sorted(unknown))}; choose from {', '.join(DRILLS)}", file=sys.stderr)
        return 2
    command = "python -m bench" + ("" if profile.name == "full" else f" --{profile.name}") + (f" --only {args.only}" if args.only else "")
    report = Report(profile.name, command)
    load_before = os.getloadavg()
    sampler = LoadSampler()
    sampler.start()
    workdir = args.out / profile.name
    shutil.rmtree(workdir, ignore_errors=True)
    started = time.monotonic()
    bench = None
    try:
        bench = Bench(workdir, pause=profile.pause)
        for name in names:
            t0 = time.monotonic()
            print(f"bench: {name}...", file=sys.stderr, flush=True)
            report.take(DRILLS[name].run(bench, profile))
            print(f"bench: {name} done in {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
    except BenchError as exc:
        print(f"python -m bench: {exc}\n(logs in {workdir / 'logs'})", file=sys.stderr)
        return 1
    finally:
        if bench is not None:
            bench.close()
    report.notes.extend(profile.notes)
    report.machine = machine(load_before)
    report.machine["load average (1 min) during the run"] = sampler.stop()
    report.machine["run time"] = f"{time.monotonic() - started:.0f} s"
    date = time.strftime("%Y-%m-%d %H:%M %Z")
    print(report.table())
    print("\n".join(f"- {n}" for n in report.notes))
    for title, table in report.tables:
        print(f"\n{title}:\n{table}")
    for row in report.missed():
        print(f"bench: target missed: {row.measure} = {row.cells()[2]} (target {row.target} {row.unit})", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    write_results(args.out / f"results-{profile.name}.md", report, date)
    if profile.name == "full" and not args.only and not args.no_results_md:
        write_results(HERE / "RESULTS.md", report, date)
        print(f"bench: wrote {HERE / 'RESULTS.md'}", file=sys.stderr)
    return 0
