"""The course's transfer-learning lesson, measured: does a LeNet-5 trained on the digits 0-4 help to learn the
digits 5-9 from about 10 images per class, and which layers should it keep frozen?

The lesson used to claim "freeze: backbone beats training from scratch in one epoch on digits 5-9"; measured
(scripts/transfer_digits.py, the fine-tuning issue) it did not hold, because the F6 features of a network trained
on 5 classes collapse. This script redefines the lesson from measurement.

    python scripts/transfer_lesson.py                          # 10 seeds, 1 5 20 50 epochs: about 2 minutes on 2 cores
    python scripts/transfer_lesson.py --seeds 20 --epochs 20   # one budget, more seeds
    python scripts/transfer_lesson.py --epochs 20 50 --lr 0.01 0.05   # a learning-rate grid, the same for every arm

For each seed s (0 .. --seeds - 1):
- Source: LeNet-5 trained by configs/lenet5_digits.yaml on scikit-learn's digits 0-4 (`data.classes: [0,1,2,3,4]`,
  train.seed s, the config's 20 epochs). One source per seed, so that the spread over seeds includes the source
  network's own; the 0-4 images it sees never overlap the 5-9 ones below.
- Target: the digits 5-9 through zoo's own digits path, carved by `data.test_split` (1 - 50/896 of the 896 images,
  stratified, drawn by train.seed s) and `data.val_split: 0`: 10 training images per class, and the other 846
  images of 5-9 as the test split. No validation split, so best.pt is the last epoch: nothing is chosen on test.
- Four arms on the same split, with the same recipe (the config's SGD lr 0.05, momentum 0.9, weight decay 5e-4,
  cosine schedule, batch 32, shifts of up to 2 px; --lr replaces the lr) and the same --epochs: (a) from scratch,
  fine-tuned from the source with (b) `finetune.freeze: until:features` (the two convolutions frozen, C5 and F6
  train), (c) `freeze: none`, (d) `freeze: backbone` (only the new 84 -> 5 head trains). Every arm normalizes with the
  source's statistics (what fine-tuning inherits anyway), so all four see the same input tensors.

Printed: the test accuracy of each arm (mean +- standard error over seeds), the paired differences from scratch
(by seed) with the seeds each arm wins, then why feature extraction loses: the test accuracy on 5-9 of a linear
classifier fitted to convergence (scikit-learn's logistic regression) on each layer's features of the same 10
images per class, and the effective dimension of each layer's features on the 5-9 test images.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported: the machine is shared

import argparse
import contextlib
import io
import math
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from zoo.checkpoint import read_state  # noqa: E402
from zoo.config import Config, load_config  # noqa: E402
from zoo.data import build_datasets  # noqa: E402
from zoo.models.registry import create_model  # noqa: E402
from zoo.training import train  # noqa: E402

CONFIG = ROOT / "configs" / "lenet5_digits.yaml"
SOURCE_CLASSES = (0, 1, 2, 3, 4)
TARGET_CLASSES = (5, 6, 7, 8, 9)
PER_CLASS = 10  # training images per target class
# (label, finetune.freeze); None trains from scratch
ARMS = (("(a) scratch", None), ("(b) freeze until:features", "until:features"), ("(c) freeze none", "none"),
        ("(d) freeze backbone", "backbone"))
LAYERS = ("pixels", "S4: conv output", "C5", "F6")  # the paper's names: C5 is the 400 -> 120 layer


@dataclass
class Measurement:
    seeds: int
    epochs: tuple[int, ...]
    lrs: tuple[float, ...]
    source_accuracy: list[float] = field(default_factory=list)  # on each source's 0-4 test split
    accuracy: dict[tuple[int, float, str], list[float]] = field(default_factory=dict)  # (epochs, lr, arm) -> per seed
    probe: dict[str, list[float]] = field(default_factory=dict)  # layer -> linear probe's test accuracy per seed
    top4: dict[str, list[float]] = field(default_factory=dict)  # layer -> share of variance in 4 directions per seed
    dimension: dict[str, list[float]] = field(default_factory=dict)  # layer -> participation ratio per seed
    widths: dict[str, int] = field(default_factory=dict)
    train_per_class: set[tuple[int, ...]] = field(default_factory=set)  # images per class in the training splits
    test_images: set[int] = field(default_factory=set)
    frozen_intact: bool = True  # every frozen tensor of every fine-tuned run equals the source's


def quietly(config: Config):
    """zoo.train with its progress lines and notes swallowed; shown if the run fails."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            return train(config, quiet=True)
    except BaseException:
        sys.stderr.write(captured.getvalue())
        raise


@cache
def test_fraction() -> float:
    """data.test_split that leaves PER_CLASS training images of each target class (stratified hold-out)."""
    from sklearn.datasets import load_digits

    count = sum(int(t) in TARGET_CLASSES for t in load_digits().target)
    return 1 - PER_CLASS * len(TARGET_CLASSES) / count


def source_run(seed: int, out: Path, epochs: int | None) -> tuple[Path, float]:
    overrides = [f"train.output_dir={out}", f"train.run_name=source_{seed}", f"train.seed={seed}",
                 f"data.classes=[{','.join(map(str, SOURCE_CLASSES))}]"]
    if epochs is not None:
        overrides.append(f"train.epochs={epochs}")
    result = quietly(load_config(CONFIG, overrides))
    return result.run_dir / "checkpoints" / "best.pt", result.metrics["test"]["accuracy"]


def target_config(seed: int, epochs: int, lr: float, out: Path, source: Path, freeze: str | None,
                  run_name: str) -> Config:
    overrides = [f"train.output_dir={out}", f"train.run_name={run_name}", f"train.seed={seed}",
                 f"train.epochs={epochs}", f"optimizer.lr={lr!r}",
                 f"data.classes=[{','.join(map(str, TARGET_CLASSES))}]", "data.val_split=0",
                 f"data.test_split={test_fraction()!r}"]
    if freeze is not None:
        overrides += [f"finetune.source={source}", f"finetune.freeze={freeze}"]
    stats = read_state(source, "evaluate").normalization
    return load_config(CONFIG, overrides).with_normalization(stats.mean, stats.std, 1)


def frozen_unchanged(run_dir: Path, source: Path, freeze: str) -> bool:
    """Whether the frozen layers of a fine-tuned run's best.pt still hold the source's tensors."""
    prefixes = {"until:features": ("features.",),
                "backbone": ("features.", "classifier.0.", "classifier.2.")}.get(freeze, ())
    tuned, original = (read_state(run_dir / "checkpoints" / "best.pt", "weights").model,
                       read_state(source, "weights").model)
    return all(torch.equal(tuned[k], original[k]) for k in original if k.startswith(prefixes))


@torch.no_grad()
def layer_features(model: torch.nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each probed layer's output for `images`, through LeNet-5's own modules (zoo/models/lenet.py)."""
    conv = model.pool(model.forward_features(images)).flatten(1)
    c5 = model.classifier[1](model.classifier[0](conv))
    f6 = model.classifier[3](model.classifier[2](c5))
    return dict(zip(LAYERS, (images.flatten(1), conv, c5, f6)))


def probe(measurement: Measurement, seed: int, source: Path, config: Config) -> None:
    """The linear probe and feature spectra of the seed's source network on the seed's 5-9 split."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    data = config.data.model_copy(update={"augment": False})  # the same split (the seed and hold-out keys draw it)
    splits = build_datasets(data, in_channels=1, input_size=32, seed=seed)
    state = read_state(source, "evaluate")
    model = create_model("lenet5", num_classes=len(SOURCE_CLASSES))
    model.load_state_dict(state.model)
    model.eval()

    def stacked(split):
        return torch.stack([split[i][0] for i in range(len(split))]), split.labels.numpy()

    (x_train, y_train), (x_test, y_test) = stacked(splits.train), stacked(splits.test)
    measurement.train_per_class.add(tuple(np.bincount(y_train).tolist()))
    measurement.test_images.add(len(y_test))
    train_features, test_features = layer_features(model, x_train), layer_features(model, x_test)
    for layer in LAYERS:
        fit, held = train_features[layer].double().numpy(), test_features[layer].double().numpy()
        accuracy = LogisticRegression(max_iter=5000).fit(fit, y_train).score(held, y_test)
        spectrum = np.clip(np.linalg.eigvalsh(np.cov(held.T))[::-1], 0, None)
        measurement.probe.setdefault(layer, []).append(float(accuracy))
        measurement.top4.setdefault(layer, []).append(float(spectrum[:4].sum() / spectrum.sum()))
        measurement.dimension.setdefault(layer, []).append(float(spectrum.sum() ** 2 / (spectrum ** 2).sum()))
        measurement.widths[layer] = fit.shape[1]


def measure(seeds: int, epochs: tuple[int, ...], out: Path, lrs: tuple[float, ...] = (0.05,),
            source_epochs: int | None = None) -> Measurement:
    """Every run of the experiment, under `out`: for each seed a source, then each arm at each (epochs, lr) on the
    target. `source_epochs`: the source's training (None: the config's 20)."""
    measurement = Measurement(seeds, tuple(epochs), tuple(lrs))
    for seed in range(seeds):
        source, accuracy = source_run(seed, out, source_epochs)
        measurement.source_accuracy.append(accuracy)
        for budget in epochs:
            for lr in lrs:
                for label, freeze in ARMS:
                    name = f"target_{seed}_{budget}_{lr}_{freeze or 'scratch'}".replace(":", "_")
                    result = quietly(target_config(seed, budget, lr, out, source, freeze, name))
                    measurement.accuracy.setdefault((budget, lr, label), []).append(result.metrics["test"]["accuracy"])
                    measurement.test_images.add(result.metrics["test"]["count"])
                    if freeze is not None:
                        measurement.frozen_intact &= frozen_unchanged(result.run_dir, source, freeze)
        probe(measurement, seed, source, target_config(seed, 1, lrs[0], out, source, None, "probe"))
    return measurement


def mean_se(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    """'mean ± standard error' (sample standard deviation / sqrt(n)), in percent by default."""
    mean = statistics.fmean(values) * scale
    se = statistics.stdev(values) * scale / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return f"{mean:.{digits}f} ± {se:.{digits}f}"


def render(m: Measurement) -> str:
    per_class = ", ".join("/".join(map(str, counts)) for counts in sorted(m.train_per_class))
    lines = [f"Source: LeNet-5 on digits 0-4, test accuracy {mean_se(m.source_accuracy)}% over {m.seeds} seeds. "
             f"Target: digits 5-9, training images per class {per_class}, test images "
             f"{', '.join(map(str, sorted(m.test_images)))}; frozen layers unchanged after fine-tuning: "
             f"{'yes' if m.frozen_intact else 'NO'}.", "",
             "| epochs | lr | arm | test accuracy (%) | minus scratch (points, paired) | seeds better than scratch |",
             "|---:|---:|---|---:|---:|---:|"]
    for budget in m.epochs:
        for lr in m.lrs:
            scratch = m.accuracy[(budget, lr, ARMS[0][0])]
            for label, freeze in ARMS:
                values = m.accuracy[(budget, lr, label)]
                if freeze is None:
                    diff, wins = "", ""
                else:
                    differences = [v - s for v, s in zip(values, scratch)]
                    diff, wins = mean_se(differences), f"{sum(d > 0 for d in differences)} of {len(differences)}"
                lines.append(f"| {budget} | {lr:g} | {label} | {mean_se(values)} | {diff} | {wins} |")
    lines += ["", "Why feature extraction loses: each layer of the source network on the same 10 images per class of "
              "5-9 (linear probe: logistic regression to convergence, tested on the rest; spectrum: covariance of the "
              "layer's features on the test images).", "",
              "| features of 5-9 | width | linear probe test accuracy (%) | variance in top 4 directions (%) "
              "| effective dimension (participation ratio) |",
              "|---|---:|---:|---:|---:|"]
    for layer in LAYERS:
        lines.append(f"| {layer} | {m.widths[layer]} | {mean_se(m.probe[layer])} | {mean_se(m.top4[layer], digits=0)} "
                     f"| {mean_se(m.dimension[layer], scale=1.0)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0 .. N-1; each draws a source and a target split")
    parser.add_argument("--epochs", type=int, nargs="+", default=[1, 5, 20, 50],
                        help="training budgets on the target, the same for every arm")
    parser.add_argument("--lr", type=float, nargs="+", default=[0.05],
                        help="optimizer.lr on the target, the same for every arm (default: the config's)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="transfer_lesson_") as out:
        measurement = measure(args.seeds, tuple(args.epochs), Path(out), tuple(args.lr))
    print(render(measurement))
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
