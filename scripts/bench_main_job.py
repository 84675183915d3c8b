"""Wall time and test accuracy of the README's main job, `zoo train --config configs/lenet5_digits.yaml`,
run as a user runs it: a fresh process, start-up and imports included (goal: under 30 s, at least 97%).

    python scripts/bench_main_job.py [--runs 3]

Each run writes to a temporary output directory. Read the figures on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def one_run(output_dir: str) -> tuple[float, float, float]:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "zoo", "train", "--config", "configs/lenet5_digits.yaml", "--quiet",
                    "--set", f"train.output_dir={output_dir}"], cwd=ROOT, check=True, capture_output=True)
    wall = time.perf_counter() - start
    metrics = json.loads(next(Path(output_dir).glob("*/*/metrics.json")).read_text())
    return wall, metrics["test"]["accuracy"], metrics["train"]["time_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results = []
    for index in range(args.runs):
        with tempfile.TemporaryDirectory() as output_dir:
            results.append(one_run(output_dir))
        wall, accuracy, train_s = results[-1]
        print(f"run {index + 1}: {wall:.1f} s wall, {train_s:.1f} s in training epochs, test accuracy {accuracy:.2%}")
    walls = [r[0] for r in results]
    print(f"main job: median {statistics.median(walls):.1f} s wall (min {min(walls):.1f}, max {max(walls):.1f}; goal < 30 s), "
          f"test accuracy {min(r[1] for r in results):.2%} to {max(r[1] for r in results):.2%} (goal >= 97%)")


if __name__ == "__main__":
    main()
