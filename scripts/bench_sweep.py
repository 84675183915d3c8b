"""zoo sweep's three figures, measured side by side in one run (the machine is shared and noisy: ratios, pair by
pair, alternating A B A B):

    workers    trials per hour of one grid with --workers 2 against --workers 1 (--oversubscribed: and 2 workers of
               2 threads each, to show why a worker gets its share of the cores), whole `zoo sweep` commands
    pruning    one Optuna search with the median pruner against the same search without it: epochs trained, and
               the best configuration each found (its mean validation and test top-1)
    overhead   a sweep's trials against the same runs by zoo.train alone, in one process each: the sweep's cost per
               trial (Optuna's storage, the checks of every point, results.csv and the page)

    python scripts/bench_sweep.py                 # all three, LeNet-5 on digits
    python scripts/bench_sweep.py workers --rounds 3
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "lenet5_digits.yaml"
GRID = ["--param", "optimizer.name=sgd,adam", "--param", "init=xavier_uniform,he_normal", "--seeds", "0-1"]
EPOCHS = "train.epochs=5"


def sweep(folder: Path, *args: str, config: Path = CONFIG) -> float:
    """Seconds of one `zoo sweep` command, run to its end (stdout and stderr kept in the folder's log)."""
    start = time.perf_counter()
    with open(f"{folder}.log", "w") as log:
        subprocess.run([sys.executable, "-m", "zoo", "sweep", str(config), *args, "--output", str(folder)],
                       check=True, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    return time.perf_counter() - start


def rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "results.csv", newline="") as file:
        return list(csv.DictReader(file))


def workers(rounds: int, oversubscribed: bool, lesson: Path | None) -> None:
    """The grid at the main job's 20 epochs (a trial of seconds would measure the sweep's fixed costs: starting,
    checking the grid, the comparison page at the end), or a lesson's own sweep."""
    variants = {"1 worker": ["--workers", "1"], "2 workers": ["--workers", "2"]}
    if oversubscribed:
        variants["2 workers x 2 threads"] = ["--workers", "2", "--set", "train.threads=2"]
    times: dict[str, list[float]] = {name: [] for name in variants}
    runs = 0
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        for round_ in range(rounds):
            for name, args in variants.items():
                folder = Path(tmp) / f"{name.replace(' ', '_')}-{round_}"
                times[name].append(sweep(folder, *(args if lesson else [*GRID, *args]), config=lesson or CONFIG))
                runs = len(rows(folder))
    base = times["1 worker"]
    what = (f"the lesson {lesson.name}" if lesson else
            "a 2 x 2 grid over 2 seeds (the main job, LeNet-5 on digits, 20 epochs)")
    print(f"workers: {what}, {runs} runs, {rounds} rounds")
    for name, seconds in times.items():
        ratios = [b / s for b, s in zip(base, seconds)]
        print(f"  {name:22s} {statistics.median(seconds):6.1f} s  {runs * 3600 / statistics.median(seconds):6.0f} "
              f"trials/h  trials/h against 1 worker: {statistics.median(ratios):.2f}x "
              f"(pairs {', '.join(f'{r:.2f}' for r in ratios)})")


def pruning(trials: int) -> None:
    search = ["--param", "optimizer.lr=log:1e-4..1", "--param", "optimizer.name=sgd,adam", "--trials", str(trials),
              "--seeds", "0", "--set", "train.epochs=8"]
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        found = {}
        for name, flag in (("pruned", "--prune"), ("full", "--no-prune")):
            folder = Path(tmp) / name
            seconds = sweep(folder, *search, flag)
            table = rows(folder)
            epochs = sum(int(row["epochs_run"] or 0) for row in table)
            complete = [row for row in table if row["state"] == "complete"]
            best = max(complete, key=lambda row: float(row["val_accuracy"]))
            found[name] = (epochs, seconds, best, sum(row["state"] == "pruned" for row in table), len(table))
    print(f"pruning: one TPE search of {trials} configurations (optimizer.lr log 1e-4..1 x sgd/adam, 8 epochs, seed 0)")
    for name, (epochs, seconds, best, pruned, runs) in found.items():
        print(f"  {name:7s} {epochs:4d} epochs in {seconds:6.1f} s, {pruned} of {runs} runs pruned; best: "
              f"{best['optimizer.name']} lr {float(best['optimizer.lr']):.3g}, val {float(best['val_accuracy']):.2%}, "
              f"test {float(best['test_accuracy']):.2%}")
    print(f"  epochs saved by pruning: {1 - found['pruned'][0] / found['full'][0]:.0%}")


def overhead(rounds: int) -> None:
    """In-process: zoo.train over the grid's 8 configurations against zoo.sweep of the same grid."""
    code = ("import sys, time, zoo; "
            "kind, out = sys.argv[1], sys.argv[2]; args = sys.argv[3:]; start = time.perf_counter()\n"
            "if kind == 'sweep':\n"
            "    zoo.sweep(args[0], ['optimizer.name=sgd,adam', 'init=xavier_uniform,he_normal'], seeds='0-1',"
            " output=out, overrides=[args[1], 'train.threads=1'])\n"
            "else:\n"
            "    for name in ('sgd', 'adam'):\n"
            "        for init in ('xavier_uniform', 'he_normal'):\n"
            "            for seed in (0, 1):\n"
            "                zoo.train(zoo.load_config(args[0], [args[1], 'train.threads=1', f'optimizer.name={name}',"
            " f'init={init}', f'train.seed={seed}', f'train.output_dir={out}']), quiet=True)\n"
            "print(time.perf_counter() - start)\n")
    times: dict[str, list[float]] = {"train": [], "sweep": []}
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        for round_ in range(rounds):
            for kind in times:
                result = subprocess.run([sys.executable, "-c", code, kind, f"{tmp}/{kind}-{round_}", str(CONFIG),
                                         EPOCHS], check=True, capture_output=True, text=True, cwd=ROOT)
                times[kind].append(float(result.stdout.strip().splitlines()[-1]))
    ratios = [s / t for s, t in zip(times["sweep"], times["train"])]
    print(f"overhead: the grid's 8 runs by zoo.sweep against zoo.train alone, in-process, 1 thread, {rounds} rounds")
    print(f"  train {statistics.median(times['train']):.1f} s, sweep {statistics.median(times['sweep']):.1f} s: "
          f"sweep/train {statistics.median(ratios):.3f} (pairs {', '.join(f'{r:.3f}' for r in ratios)}), "
          f"{(statistics.median(times['sweep']) - statistics.median(times['train'])) / 8:.2f} s a trial")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("figure", nargs="?", choices=("workers", "pruning", "overhead", "all"), default="all")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--oversubscribed", action="store_true", help="also 2 workers of 2 threads each (slow)")
    parser.add_argument("--lesson", type=Path, help="workers: this config's own sweep (configs/lessons/...)")
    options = parser.parse_args()
    if options.figure in ("workers", "all"):
        workers(options.rounds, options.oversubscribed, options.lesson)
    if options.figure in ("overhead", "all"):
        overhead(options.rounds)
    if options.figure in ("pruning", "all"):
        pruning(options.trials)


if __name__ == "__main__":
    main()
