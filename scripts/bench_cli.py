"""Wall time of the CLI as a user meets it: `zoo --help` (goal < 1 s), `zoo summary resnet152` (goal < 3 s).

Each command runs as a fresh subprocess: one warm-up run (file cache), then --runs timed runs; the
median is reported with the min and max. Floors are timed too: an empty interpreter, and `import torch`
alone, under any command that needs torch. Then the summary's time inside one process, by phase: what
is left of the wall time is interpreter start and exit (Python's finalization and libtorch's static
destructors, about 0.5 s after importing torch). The code benchmarked is this checkout's (its root
goes first on PYTHONPATH).

    python scripts/bench_cli.py [--runs 5]

Timings move with whatever else runs on the machine: read them on an idle one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (label, arguments after the interpreter, goal in seconds or None)
COMMANDS: list[tuple[str, list[str], float | None]] = [
    ("zoo --help", ["-m", "zoo", "--help"], 1.0),
    ("zoo summary resnet152", ["-m", "zoo", "summary", "resnet152"], 3.0),
    ("python -c pass (floor)", ["-c", "pass"], None),
    ("python -c 'import torch' (floor)", ["-c", "import torch"], None),
]

# The summary command's phases, timed inside one process (the CLI's own imports first).
PHASES = """
import json, sys, time
t = [time.perf_counter()]
import zoo.cli; t.append(time.perf_counter())
import torch; t.append(time.perf_counter())
from zoo.present.text import render_summary; from zoo.summary import summarize
import zoo.models; t.append(time.perf_counter())
summary = summarize("resnet152"); t.append(time.perf_counter())
render_summary(summary); t.append(time.perf_counter())
names = ["zoo.cli and typer", "import torch", "zoo.summary and models", "summarize resnet152", "render"]
print(json.dumps(dict(zip(names, (b - a for a, b in zip(t, t[1:]))))))
"""


def wall_time(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def phases(env: dict[str, str], runs: int) -> dict[str, float]:
    results = [json.loads(subprocess.run([sys.executable, "-c", PHASES], env=env, check=True, capture_output=True,
                                         text=True).stdout) for _ in range(runs)]
    return {name: statistics.median(r[name] for r in results) for name in results[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per command (default 5)")
    runs = parser.parse_args().runs
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    print(f"{runs} runs each after one warm-up, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(f"{'command':34}  {'median':>7}  {'min':>6}  {'max':>6}  goal")
    for label, args, goal in COMMANDS:
        wall_time(args, env)
        times = [wall_time(args, env) for _ in range(runs)]
        median = statistics.median(times)
        verdict = "" if goal is None else f"< {goal:.0f} s: {'met' if median < goal else 'MISSED'}"
        print(f"{label:34}  {median:6.2f}s  {min(times):5.2f}s  {max(times):5.2f}s  {verdict}")
    print("\nzoo summary resnet152 inside one process (medians):")
    for name, seconds in phases(env, runs).items():
        print(f"  {name:32}  {seconds:6.2f}s")


if __name__ == "__main__":
    main()
