"""A multi-label data set from real images, as a CSV manifest: scikit-learn's handwritten digits, one to three of
them placed in the cells of a 2 x 2 grid, each picture labelled with every digit it shows.

    python scripts/digit_sets.py data/digit_sets [--train 3000] [--test 600] [--seed 0]

Writes <folder>/images/<split>/<n>.png (32 x 32 gray PNGs: 8 x 8 digits scaled x2 into 16 x 16 cells) and
<folder>/digit_sets.csv with the columns path, label (the digits, `;` between them, e.g. `3;7`) and split. The
1,797 digits are first divided 80/20 by the seed: training pictures are composed of the first part's digits, test
pictures of the second's, so no handwritten digit of a test picture was seen in training. Rows of the training
part carry split `train` (zoo holds data.val_split of them out for validation), the others `test`.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

CELL = 16  # pixels per grid cell: a digit's 8 x 8 scaled x2
MAX_DIGITS = 3


def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits (N x 8 x 8 in 0-16, N labels), from the file scikit-learn ships."""
    spec = importlib.util.find_spec("sklearn")
    folder = Path(next(iter(spec.submodule_search_locations)))
    with gzip.open(folder / "datasets" / "data" / "digits.csv.gz", "rt") as rows:
        table = np.loadtxt(rows, delimiter=",")
    return table[:, :64].reshape(-1, 8, 8), table[:, 64].astype(np.int64)


def compose(images: np.ndarray, labels: np.ndarray, count: int, rng: np.random.Generator
            ) -> list[tuple[Image.Image, list[str]]]:
    """`count` pictures of 1 to MAX_DIGITS digits drawn from `images`, each in its own random cell; with its labels
    (the distinct digits, sorted as text)."""
    pictures = []
    for _ in range(count):
        shown = rng.integers(1, MAX_DIGITS + 1)
        cells = rng.choice(4, size=shown, replace=False)
        chosen = rng.choice(len(images), size=shown, replace=False)
        canvas = np.zeros((2 * CELL, 2 * CELL), dtype=np.uint8)
        for cell, index in zip(cells, chosen):
            digit = np.kron(images[index] * (255 / 16), np.ones((2, 2))).round().astype(np.uint8)
            row, column = divmod(int(cell), 2)
            canvas[row * CELL:(row + 1) * CELL, column * CELL:(column + 1) * CELL] = digit
        pictures.append((Image.fromarray(canvas, mode="L"), sorted({str(labels[index]) for index in chosen})))
    return pictures


def write(folder: Path, train: int, test: int, seed: int) -> Path:
    """The pictures and the manifest under `folder`; returns the manifest's path."""
    rng = np.random.default_rng(seed)
    images, labels = read_digits()
    order = rng.permutation(len(images))
    cut = int(0.8 * len(images))
    parts = {"train": (order[:cut], train), "test": (order[cut:], test)}
    rows = []
    for split, (indices, count) in parts.items():
        (folder / "images" / split).mkdir(parents=True, exist_ok=True)
        for number, (picture, names) in enumerate(compose(images[indices], labels[indices], count, rng)):
            path = Path("images") / split / f"{number}.png"
            picture.save(folder / path)
            rows.append([path.as_posix(), ";".join(names), split])
    manifest = folder / "digit_sets.csv"
    with open(manifest, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["path", "label", "split"])
        writer.writerows(rows)
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--train", type=int, default=3000, help="training pictures (validation held out of them)")
    parser.add_argument("--test", type=int, default=600, help="test pictures")
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    print(write(arguments.folder, arguments.train, arguments.test, arguments.seed))


if __name__ == "__main__":
    main()
