"""What each data.augment setting costs: the in-memory path's images/s with it on, against torchvision's
per-sample DataLoader path with the same setting, and against the in-memory path with crop and flip alone.

    python scripts/bench_augment.py            # CIFAR-shaped files, 10,000 images, batch 128: a few minutes on 2 cores
    python scripts/bench_augment.py --images 5000 --rounds 2

The in-memory path crops and flips whole batches on the device; the policies, jitter, rotation and random
erasing are torchvision v2 transforms that draw one set of parameters per call, so it runs them image by image
(zoo.data.memory.Pipeline). Mixup/CutMix run on whole batches in the training step; their line times
zoo.data.transforms.batch_mixing on the in-memory batches. Rounds alternate the sides; each line gives the
medians of both sides' images/s and the median of the per-round ratios (this machine is shared and noisy).
CIFAR-shaped data: random bytes in CIFAR-10's own on-disk format, read by torchvision.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from bench import cifar_shaped, loader_rate  # noqa: E402

from zoo.config import AugmentConfig, DataConfig  # noqa: E402
from zoo.data import build_datasets, build_loaders  # noqa: E402
from zoo.data.transforms import batch_mixing  # noqa: E402

SETTINGS: dict[str, AugmentConfig | None] = {
    "crop + flip (augment: true)": AugmentConfig(),
    "color_jitter 0.4": AugmentConfig(color_jitter=0.4),
    "rotation 15": AugmentConfig(rotation=15),
    "policy randaugment": AugmentConfig(policy="randaugment"),
    "policy trivialaugment": AugmentConfig(policy="trivialaugment"),
    "policy autoaugment (cifar10)": AugmentConfig(policy="autoaugment", autoaugment_policy="cifar10"),
    "policy augmix": AugmentConfig(policy="augmix"),
    "random_erasing 0.25": AugmentConfig(random_erasing=0.25),
}


def median_pair(first, second, rounds: int) -> tuple[float, float, float]:
    """Medians of both sides' images/s and of the per-round ratios, the first side alternating."""
    a, b = [], []
    for index in range(rounds):
        if index % 2:
            b.append(second())
            a.append(first())
        else:
            a.append(first())
            b.append(second())
    return statistics.median(a), statistics.median(b), statistics.median(x / y for x, y in zip(a, b))


def mixing_rate(loader, mix, batches: int) -> float:
    """Images/s of the in-memory batches with Mixup/CutMix applied, as the training step applies them."""
    import time

    start, seen = time.perf_counter(), 0
    for index, (images, targets) in enumerate(loader):
        mixed, _ = mix(images, targets)
        seen += len(mixed)
        if index + 1 == batches:
            break
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000, help="CIFAR-shaped training images")
    parser.add_argument("--batches", type=int, default=40, help="batches of 128 timed per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as work:
        patch = cifar_shaped(Path(work), args.images)
        try:
            base = DataConfig(name="cifar10", root=Path(work), download=False, batch_size=128, val_split=0,
                              loader="memory")
            splits = build_datasets(base, in_channels=3, input_size=32)
            crop_flip = build_loaders(splits, base.model_copy(update={"augment": True}))[0]
            print(f"{'setting':32} {'memory img/s':>12} {'DataLoader img/s':>17} {'memory / DataLoader':>20} "
                  f"{'memory / crop+flip':>19}")
            for name, setting in SETTINGS.items():
                memory_cfg = base.model_copy(update={"augment": setting})
                memory = build_loaders(splits, memory_cfg)[0]
                per_sample = build_loaders(splits, memory_cfg.model_copy(update={"loader": "torchvision"}))[0]
                mine, theirs, ratio = median_pair(lambda: loader_rate(memory, args.batches),
                                                  lambda: loader_rate(per_sample, args.batches), args.rounds)
                _, _, own = median_pair(lambda: loader_rate(memory, args.batches),
                                        lambda: loader_rate(crop_flip, args.batches), args.rounds)
                print(f"{name:32} {mine:>12,.0f} {theirs:>17,.0f} {ratio:>20.2f} {own:>19.2f}", flush=True)
            mix = batch_mixing(AugmentConfig(mixup_alpha=0.2, cutmix_alpha=1.0), 10)
            mixed, plain, own = median_pair(lambda: mixing_rate(crop_flip, mix, args.batches),
                                            lambda: loader_rate(crop_flip, args.batches), args.rounds)
            print(f"{'mixup 0.2 + cutmix 1.0 (batched)':32} {mixed:>12,.0f} {'':>17} {'':>20} {own:>19.2f}")
        finally:
            patch.undo()


if __name__ == "__main__":
    main()
