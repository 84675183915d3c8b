"""Issue 31's figures on the README's main job (LeNet-5 on scikit-learn's digits), as zoo trains and predicts.

    python scripts/calibration_digits.py coverage   [--seeds 5]  # prediction sets at 0.9 and 0.99, seed by seed
    python scripts/calibration_digits.py overtrained [--seeds 5]  # temperature scaling, over-trained runs
    python scripts/calibration_digits.py unfamiliar               # pictures of kinds the model never saw

coverage: the main job with train.seed 0..seeds-1 (each seed draws its own validation and test split), then on the
test split the empirical coverage and mean set size of the prediction sets at 0.9 and 0.99, the ECE before and after
temperature scaling and the share flagged unfamiliar; and the means over the seeds.
overtrained: the main job on a quarter of the digits (val_split 0.25, test_split 0.5), 150 epochs without
augmentation, weight decay or a schedule (its training loss goes to 0 and its logits grow), seed by seed: the test
split's ECE before and after temperature scaling, and how many top-1 predictions the temperature changed.
unfamiliar: the main job (seed 0), then zoo.load(...).predict on kinds of pictures it never saw, each as PNG files:
the digits written dark on light (../shared/cases/turn3/h04), crops of scikit-learn's two sample photos, letters drawn
light on dark, uniform noise, blank pictures; and the same digits light on dark (the kind it learnt) for contrast.
Prints each kind's share flagged.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CONFIG = ROOT / "configs" / "lenet5_digits.yaml"


def train(out: Path, *sets: str):
    import zoo

    return zoo.train(zoo.load_config(CONFIG, [f"train.output_dir={out}", *sets]), quiet=True)


def test_split(run_dir: Path):
    """The test split's (logits, labels, pixel statistics) and best.pt's calibration."""
    import torch

    from zoo.checkpoint import read_state
    from zoo.data import SPLITS, build_datasets, build_loaders
    from zoo.evaluation.evaluate import measure
    from zoo.evaluation.source import checkpoint_config, load_model
    from zoo.loop import Compute

    path = run_dir / "checkpoints" / "best.pt"
    state = read_state(path, "evaluate")
    config = checkpoint_config(state, path, [])
    splits = build_datasets(config.data, in_channels=1, input_size=32, seed=config.train.seed)
    loader = dict(zip(SPLITS, build_loaders(splits, config.data, seed=config.train.seed)))["test"]
    features: list = []
    _, logits, labels = measure(load_model(state, config, path), loader, Compute(torch.device("cpu"), "32"),
                                features=features)
    return logits, labels, torch.cat(features), state.calibration


def coverage(seeds: int, out: Path) -> None:
    rows = []
    print(f"{'seed':>4} {'top-1':>7} {'T':>6} {'ECE':>14} {'cov 0.9':>8} {'size':>5} {'cov 0.99':>8} {'size':>5} "
          f"{'flagged':>7}")
    for seed in range(seeds):
        result = train(out / f"seed{seed}", f"train.seed={seed}")
        logits, labels, features, calibration = test_split(result.run_dir)
        at90 = calibration.figures(logits, labels, features, 0.9)
        at99 = calibration.figures(logits, labels, features, 0.99)
        row = (float((logits.argmax(1) == labels).double().mean()), calibration.temperature,
               at90["calibration"]["ece_before"], at90["calibration"]["ece_after"], at90["conformal"]["coverage"],
               at90["conformal"]["mean_set_size"], at99["conformal"]["coverage"], at99["conformal"]["mean_set_size"],
               at90["unfamiliar"]["test_flagged"])
        rows.append(row)
        print(f"{seed:>4} {row[0]:>7.2%} {row[1]:>6.3f} {row[2]:>6.2%}->{row[3]:>6.2%} {row[4]:>8.2%} {row[5]:>5.2f} "
              f"{row[6]:>8.2%} {row[7]:>5.2f} {row[8]:>7.2%}", flush=True)
    mean = [statistics.mean(column) for column in zip(*rows)]
    print(f"{'mean':>4} {mean[0]:>7.2%} {mean[1]:>6.3f} {mean[2]:>6.2%}->{mean[3]:>6.2%} {mean[4]:>8.2%} "
          f"{mean[5]:>5.2f} {mean[6]:>8.2%} {mean[7]:>5.2f} {mean[8]:>7.2%}")


OVERTRAINED = ("train.epochs=150", "data.augment=false", "optimizer.weight_decay=0", "scheduler.name=none",
               "data.val_split=0.25", "data.test_split=0.5")  # a quarter of the digits trained on, 150 epochs


def overtrained(seeds: int, out: Path) -> None:
    print(f"over-trained: {' '.join(OVERTRAINED)}")
    print(f"{'seed':>4} {'top-1':>7} {'T':>6} {'ECE before':>10} {'after':>7} {'top-1 changed':>13}")
    rows = []
    for seed in range(seeds):
        result = train(out / f"over{seed}", *OVERTRAINED, f"train.seed={seed}")
        logits, labels, features, calibration = test_split(result.run_dir)
        figures = calibration.figures(logits, labels, features)["calibration"]
        changed = int((calibration.probabilities(logits).argmax(1) != logits.argmax(1)).sum())
        rows.append((float((logits.argmax(1) == labels).double().mean()), calibration.temperature,
                     figures["ece_before"], figures["ece_after"], changed))
        print(f"{seed:>4} {rows[-1][0]:>7.2%} {rows[-1][1]:>6.3f} {rows[-1][2]:>10.2%} {rows[-1][3]:>7.2%} "
              f"{changed:>6} of {len(labels)}", flush=True)
    mean = [statistics.mean(column) for column in zip(*rows)]
    print(f"{'mean':>4} {mean[0]:>7.2%} {mean[1]:>6.3f} {mean[2]:>10.2%} {mean[3]:>7.2%} {sum(r[4] for r in rows):>6}")


def kinds(folder: Path) -> dict[str, Path]:
    """Folders of PNGs of each kind (see the module's docstring), 64 x 64 RGB as a user's files might be."""
    from PIL import Image, ImageDraw, ImageFont
    from sklearn.datasets import load_digits, load_sample_images

    rng = np.random.default_rng(0)
    made: dict[str, list[Image.Image]] = {}
    digits = load_digits()
    pictures = [(digits.images[i] * 255 / 16).round().astype(np.uint8) for i in range(0, 1797, 6)]
    made["digits, light on dark (learnt)"] = [Image.fromarray(a) for a in pictures]
    made["digits, dark on light"] = [Image.fromarray(255 - a) for a in pictures]
    photos = load_sample_images().images
    made["photo crops"] = [Image.fromarray(photo[y:y + 96, x:x + 96])
                           for photo in photos for y, x in rng.integers(0, 320, (100, 2))]
    font = ImageFont.load_default(size=40)
    letters = []
    for letter in "ABCDEFGHJKLMNPQRSTUVWXYZ" * 8:
        canvas = Image.new("L", (48, 48))
        ImageDraw.Draw(canvas).text((24 + int(rng.integers(-4, 5)), 24 + int(rng.integers(-4, 5))), letter, fill=255,
                                    font=font, anchor="mm")
        letters.append(canvas)
    made["letters, light on dark"] = letters
    made["uniform noise"] = [Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)) for _ in range(100)]
    made["blank (black, gray, white)"] = [Image.new("L", (32, 32), value) for value in (0, 128, 255) for _ in range(10)]
    folders = {}
    for index, (name, images) in enumerate(made.items()):
        target = folder / f"kind{index}"
        target.mkdir(parents=True)
        for number, image in enumerate(images):
            image.resize((64, 64), Image.Resampling.NEAREST).convert("RGB").save(target / f"{number:04d}.png")
        folders[name] = target
    return folders


def unfamiliar(out: Path) -> None:
    import zoo

    result = train(out / "main")
    predictor = zoo.load(result.run_dir)
    _, _, _, calibration = test_split(result.run_dir)
    logits, labels, features, _ = test_split(result.run_dir)
    flagged = calibration.figures(logits, labels, features)["unfamiliar"]["test_flagged"]
    print(f"{'the digits test split (familiar)':<34} {flagged:>7.2%} flagged of {len(labels)}")
    for name, folder in kinds(out / "kinds").items():
        predictions = predictor.predict(sorted(folder.iterdir()))
        share = sum(p.unfamiliar for p in predictions) / len(predictions)
        print(f"{name:<34} {share:>7.2%} flagged of {len(predictions)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("coverage", "overtrained", "unfamiliar"))
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        {"coverage": lambda: coverage(args.seeds, out), "overtrained": lambda: overtrained(args.seeds, out),
         "unfamiliar": lambda: unfamiliar(out)}[args.what]()


if __name__ == "__main__":
    main()
