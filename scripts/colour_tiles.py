"""Colour pictures for the course's colourisation lesson, offline: scikit-learn's two sample photographs (a Chinese
temple, a flower; 427 x 640 JPEGs it ships) cut into non-overlapping square tiles, one class folder per photograph.

    python scripts/colour_tiles.py data/colour_tiles [--side 32]
    zoo train configs/deep_conv_autoencoder_colorize.yaml

Writes <folder>/china/<row>_<column>.png and <folder>/flower/... (8-bit RGB PNGs, `side` pixels a side: 260 of
each at 32). zoo holds data.val_split and data.test_split of them out by train.seed, so test tiles are other parts of
the same two photographs: the lesson measures how well the network learns those two palettes, not colour in general.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--side", type=int, default=32, help="tile side in pixels")
    args = parser.parse_args()
    from sklearn.datasets import load_sample_images

    photos = load_sample_images()
    for name, pixels in zip(("china", "flower"), photos.images):
        folder = args.folder / name
        folder.mkdir(parents=True, exist_ok=True)
        height, width = pixels.shape[:2]
        count = 0
        for top in range(0, height - args.side + 1, args.side):
            for left in range(0, width - args.side + 1, args.side):
                tile = pixels[top:top + args.side, left:left + args.side]
                Image.fromarray(tile, "RGB").save(folder / f"{top // args.side:02d}_{left // args.side:02d}.png")
                count += 1
        print(f"{folder}: {count} tiles of {args.side} x {args.side}")


if __name__ == "__main__":
    main()
