"""The README's main job written by hand in plain PyTorch, as a student would without zoo: the baseline that
scripts/bench_main_job.py times `zoo train --config configs/lenet5_digits.yaml` against.

    python scripts/main_job_by_hand.py [--seed 0] [--epochs 20]

The same task as the config: scikit-learn's 1,797 digits resized to 32 x 32 (bilinear, antialiased), 20% held
out for test and 10% of the rest for validation (1,294 / 144 / 359 images), normalized with the training
pixels' mean and std; LeNet-5 (tanh, average pooling: zoo's lenet5, defined here again); SGD lr 0.05, momentum
0.9, weight decay 5e-4, a per-step cosine schedule to 0; batch 32, shuffled each epoch; each training image
shifted by up to 2 pixels (padding with black, then a random 32 x 32 crop); validation after each epoch and the
best epoch's weights kept, in memory, for the test. It prints the test accuracy and the seconds spent training.

What it leaves out that zoo writes: TensorBoard events, checkpoints to resume from, history.csv, metrics.json,
the confusion matrices, the checks. Its random draws differ from zoo's, so single seeds differ in accuracy.
"""

from __future__ import annotations

import argparse
import copy
import math
import time

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn


def lenet5() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, 10),
    )


def shifted(images: torch.Tensor, generator: torch.Generator, padding: int = 2) -> torch.Tensor:
    """Each image of N x C x H x W moved by up to `padding` pixels: padded with black (the normalized value
    of 0), then cropped at its own random offset, by one gather."""
    n, _, h, w = images.shape
    padded = F.pad(images, [padding] * 4, value=float(images.min()))
    dy, dx = (torch.randint(0, 2 * padding + 1, (n,), generator=generator) for _ in range(2))
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
    return padded[torch.arange(n)[:, None, None, None], torch.arange(images.shape[1])[None, :, None, None], rows, cols]


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(images[i:i + 256]).argmax(1) == labels[i:i + 256]).sum())
                      for i in range(0, len(images), 256))
    model.train()
    return correct / len(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)

    digits = load_digits()
    images = torch.from_numpy(digits.images).float().div(16).unsqueeze(1)
    images = F.interpolate(images, size=(32, 32), mode="bilinear", antialias=True, align_corners=False)
    labels = torch.from_numpy(digits.target).long()
    order = torch.randperm(len(images), generator=generator)
    test_count = round(0.2 * len(images))
    val_count = round(0.1 * (len(images) - test_count))
    test, val, train = order[:test_count], order[test_count:test_count + val_count], order[test_count + val_count:]
    mean, std = images[train].mean(), images[train].std()
    images = (images - mean) / std

    model = lenet5()
    batch, epochs = 32, args.epochs
    steps = epochs * math.ceil(len(train) / batch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    best, best_weights = -1.0, None
    start = time.perf_counter()
    for _ in range(epochs):
        shuffled = train[torch.randperm(len(train), generator=generator)]
        for first in range(0, len(shuffled), batch):
            index = shuffled[first:first + batch]
            loss = F.cross_entropy(model(shifted(images[index], generator)), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        score = accuracy(model, images[val], labels[val])
        if score > best:
            best, best_weights = score, copy.deepcopy(model.state_dict())
    seconds = time.perf_counter() - start
    model.load_state_dict(best_weights)
    print(f"test accuracy {accuracy(model, images[test], labels[test]):.4f}  training {seconds:.2f} s")


if __name__ == "__main__":
    main()
