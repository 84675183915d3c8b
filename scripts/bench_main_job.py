"""The README's main job, `zoo train --config configs/lenet5_digits.yaml`, side by side with the same task written
by hand (scripts/main_job_by_hand.py), each run as a user runs it: a fresh process, start-up, imports and exit
included. Goal: zoo's wall time at most 1.05x the hand-written script's; test accuracy 97% or more.

    python scripts/bench_main_job.py [--rounds 5] [--threads N]

A round runs both, the one going first alternating, on seeds 0, 1, 2, 0, ... (the same seed for both in a
round); the figures are each side's medians and the median of the rounds' ratios of wall time, with the
machine's load as each round began (other processes runnable, zoo.runtime.busy_cpus). `--threads N` runs both
with OMP_NUM_THREADS=N; by default each takes torch's own choice (zoo: train.threads auto). Each zoo run writes
to a temporary output directory. Read the figures on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from zoo.runtime import busy_cpus  # noqa: E402


def zoo_run(seed: int, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, test accuracy) of the main job."""
    with tempfile.TemporaryDirectory() as output_dir:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "zoo", "train", "--config", "configs/lenet5_digits.yaml", "--quiet",
                        "--set", f"train.output_dir={output_dir}", "--set", f"train.seed={seed}"],
                       cwd=ROOT, check=True, capture_output=True, env=env)
        wall = time.perf_counter() - start
        metrics = json.loads(next(Path(output_dir).glob("*/*/metrics.json")).read_text())
    return wall, metrics["test"]["accuracy"]


def hand_run(seed: int, env: dict[str, str]) -> tuple[float, float]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "scripts/main_job_by_hand.py", "--seed", str(seed)], cwd=ROOT, check=True,
                          capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    return wall, float(re.search(r"test accuracy (\S+)", done.stdout).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    env = dict(os.environ)
    if args.threads is not None:
        env["OMP_NUM_THREADS"] = str(args.threads)
    else:
        env.pop("OMP_NUM_THREADS", None)
    zoo_runs, hand_runs, loads = [], [], []
    print(f"{os.cpu_count()} CPUs; threads: {args.threads or 'torch default'}")
    for index in range(args.rounds):
        seed = index % 3
        loads.append(busy_cpus())
        sides = [("zoo", zoo_run), ("hand", hand_run)]
        results = {name: run(seed, env) for name, run in (sides if index % 2 == 0 else sides[::-1])}
        zoo_runs.append(results["zoo"])
        hand_runs.append(results["hand"])
        print(f"round {index + 1} (seed {seed}, busy CPUs {loads[-1]:g}): zoo {results['zoo'][0]:.2f} s "
              f"{results['zoo'][1]:.2%}, by hand {results['hand'][0]:.2f} s {results['hand'][1]:.2%}, "
              f"ratio {results['zoo'][0] / results['hand'][0]:.3f}", flush=True)
    ratio = statistics.median(z[0] / h[0] for z, h in zip(zoo_runs, hand_runs))
    print(f"median wall: zoo {statistics.median(z[0] for z in zoo_runs):.2f} s, by hand "
          f"{statistics.median(h[0] for h in hand_runs):.2f} s; "
          f"median of the rounds' ratios {ratio:.3f} (goal <= 1.05); "
          f"test accuracy zoo {min(z[1] for z in zoo_runs):.2%}-{max(z[1] for z in zoo_runs):.2%}, "
          f"by hand {min(h[1] for h in hand_runs):.2%}-{max(h[1] for h in hand_runs):.2%}; "
          f"busy CPUs at the rounds' starts {min(loads):g}-{max(loads):g}")


if __name__ == "__main__":
    main()
