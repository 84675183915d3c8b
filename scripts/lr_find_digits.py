"""zoo lr-find measured on the main job: LeNet-5 on scikit-learn's digits (configs/lenet5_digits.yaml), seeds 0-4.
Each seed sweeps the rate (the default 100 steps, 1e-7 to 10) and trains with three rates: the config's own, the
suggestion (the steepest descent of the centered average, zoo's rule), and the rate the steepest descent of the
moving average would give (fastai's lr_steep, Lightning's suggestion, on the same sweep). It prints each seed's
suggestions and test accuracies, then the means.

    python scripts/lr_find_digits.py [--seeds 5] [--epochs 20]

Every run trains in this process (quiet) into a temporary folder; nothing is left in the repository.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from zoo.config import load_config  # noqa: E402
from zoo.training import train  # noqa: E402
from zoo.training.lr_find import SKIP_START, lr_find  # noqa: E402

CONFIG = ROOT / "configs" / "lenet5_digits.yaml"


def moving_average_rule(lrs: list[float], smoothed: list[float]) -> float:
    """Steepest descent of the moving average against log10(lr), after its first SKIP_START steps, up to its
    lowest point: the rule fastai and Lightning suggest with."""
    lowest = int(np.argmin(smoothed))
    slopes = np.gradient(np.asarray(smoothed), np.log10(np.asarray(lrs)))
    index = SKIP_START + int(np.argmin(slopes[SKIP_START:lowest + 1]))
    return float(f"{lrs[index]:.2g}")


def accuracy(sets: list[str], out: Path) -> float:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return train(load_config(CONFIG, [f"train.output_dir={out}", *sets]), quiet=True).metrics["test"]["accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    shipped = load_config(CONFIG).optimizer.lr
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for seed in range(args.seeds):
            sets = [f"train.seed={seed}", f"train.epochs={args.epochs}"]
            result = lr_find(load_config(CONFIG, [f"train.output_dir={work}", *sets]))
            if result.suggestion is None:
                print(f"seed {seed}: {result.problem}")
                continue
            rates = {"config": shipped, "suggestion": result.suggestion,
                     "moving average": moving_average_rule(result.lrs, result.smoothed)}
            scores = {name: accuracy([*sets, f"optimizer.lr={lr}"], Path(work) / f"{seed}-{name}")
                      for name, lr in rates.items()}
            rows.append((seed, rates, scores))
    print("| seed | config lr: test | suggestion (centered average): test | moving-average rule: test |")
    print("|---:|---|---|---|")
    for seed, rates, scores in rows:
        print(f"| {seed} | " + " | ".join(f"{rates[k]:g}: {scores[k]:.2%}" for k in rates) + " |")
    if rows:
        means = {k: statistics.mean(scores[k] for _, _, scores in rows) for k in rows[0][1]}
        print("| mean | " + " | ".join(f"{means[k]:.2%}" for k in means) + " |")


if __name__ == "__main__":
    main()
