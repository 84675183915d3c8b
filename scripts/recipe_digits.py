"""The training recipes on the main job, measured: LeNet-5 on scikit-learn's digits (configs/lenet5_digits.yaml)
over seeds 0-4, as shipped and with one recipe key added at a time (EMA, Mixup, CutMix, TrivialAugment, random
erasing), test accuracy of each seed and the paired difference to the shipped config (mean and standard error).

    python scripts/recipe_digits.py [--seeds 5] [--epochs 20]

Digits are 1,797 8x8 images resized to 32x32; 1,294 train. Small and clean data: a recipe tuned for ImageNet may
well not help here, and the figures say whatever they say. Each run trains in this process (quiet) into a
temporary folder; nothing is left in the repository.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import statistics
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from zoo.config import load_config  # noqa: E402
from zoo.training import train  # noqa: E402

ARMS: dict[str, list[str]] = {
    "shipped (crop 2)": [],
    "+ train.ema decay 0.99": ["train.ema={decay: 0.99, warmup_steps: 100}"],
    "+ mixup_alpha 0.2": ["data.augment.mixup_alpha=0.2"],
    "+ cutmix_alpha 1.0": ["data.augment.cutmix_alpha=1.0"],
    "+ policy trivialaugment": ["data.augment.policy=trivialaugment"],
    "+ random_erasing 0.25": ["data.augment.random_erasing=0.25"],
}


def run(sets: list[str], seed: int, epochs: int, out: Path) -> tuple[float, str]:
    config = load_config(ROOT / "configs" / "lenet5_digits.yaml",
                         [f"train.output_dir={out}", f"train.seed={seed}", f"train.epochs={epochs}", *sets])
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        result = train(config, quiet=True)
    return result.metrics["test"]["accuracy"], result.metrics["best_weights"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = range(args.seeds)
    results: dict[str, list[float]] = {}
    chosen: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as work:
        for name, sets in ARMS.items():
            runs = [run(sets, seed, args.epochs, Path(work) / f"{len(results)}-{seed}") for seed in seeds]
            results[name], chosen[name] = [accuracy for accuracy, _ in runs], [weights for _, weights in runs]
    base = results[next(iter(ARMS))]
    print(f"| recipe | test accuracy, seeds {', '.join(map(str, seeds))} | mean | paired difference (mean ± s.e.) |")
    print("|---|---|---:|---:|")
    for name, accuracies in results.items():
        differences = [a - b for a, b in zip(accuracies, base)]
        error = statistics.stdev(differences) / math.sqrt(len(differences)) if len(differences) > 1 else 0.0
        cells = " / ".join(f"{a:.2%}" for a in accuracies)
        note = f" (best.pt: {', '.join(chosen[name])})" if "ema" in name else ""
        paired = "" if accuracies is base else f"{statistics.mean(differences):+.2%} ± {error:.2%}"
        print(f"| {name}{note} | {cells} | {statistics.mean(accuracies):.2%} | {paired} |")


if __name__ == "__main__":
    main()
