"""test_scores.npz in the run directory: the test split's logits on best.pt as the run ended, so that `zoo report`
draws its per-class table and trust figures without the data, without torchvision and without evaluating again.

    write_scores(run_dir, logits, targets, paths, pictures)    rank 0, once, after the test split (zoo train)
    scores = read_scores(run_dir)                                # None: no file (an older run), or one too large

The file is numpy's .npz (no pickle): `logits` N x classes float32 and `targets` N int64, the test split's images
in its own order (every rank's share put back in place); `paths` N text, their files, where the data set reads
files; `wrong` M int64 and `pictures` M x H x W x C uint8, the most confidently wrong images as the network saw
them (zoo.metrics.trust.confidently_wrong's order), where the data set holds tensors. A test split of more than
MAX_VALUES logits (ImageNet's 50,000 x 1,000) is not written: its report evaluates best.pt again.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from zoo.rundir import atomic_write

if TYPE_CHECKING:
    from PIL import Image

FILE = "test_scores.npz"
MAX_VALUES = 5_000_000  # logits kept at most: 20 MB of float32 (CIFAR-100's test split: 1,000,000)


@dataclass(frozen=True)
class Scores:
    """A run's test_scores.npz, read (see the module docstring)."""

    logits: np.ndarray
    targets: np.ndarray
    paths: list[str] | None
    wrong: np.ndarray  # indices into the split, the pictures' samples
    pictures: list[Image.Image] | None  # None: the data set reads files (open `paths`), or has no images


def write_scores(run_dir: Path, logits: np.ndarray, targets: np.ndarray, paths: list[str] | None,
                 wrong: np.ndarray, pictures: list[Image.Image] | None) -> Path | None:
    """Write test_scores.npz atomically; returns its path, or None for a split too large to keep (MAX_VALUES)."""
    if logits.size > MAX_VALUES:
        return None
    arrays = {"logits": logits.astype(np.float32), "targets": targets.astype(np.int64), "wrong": wrong.astype(np.int64)}
    if paths is not None:
        arrays["paths"] = np.array(paths, dtype=str)
    if pictures:
        arrays["pictures"] = np.stack([np.asarray(picture.convert("RGB")) for picture in pictures])
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write(run_dir / FILE, buffer.getvalue())
    return run_dir / FILE


def read_scores(run_dir: Path, count: int | None = None, classes: int | None = None) -> Scores | None:
    """The run's test scores, or None where there is no file, it does not read, or it does not hold `count`
    samples of `classes` classes (what metrics.json and the checkpoint say): the caller evaluates again."""
    from PIL import Image

    try:
        with np.load(run_dir / FILE, allow_pickle=False) as data:
            logits, targets, wrong = data["logits"], data["targets"], data["wrong"]
            paths = data["paths"].tolist() if "paths" in data else None
            pixels = data["pictures"] if "pictures" in data else None
    except (OSError, ValueError, KeyError):
        return None
    if logits.ndim != 2 or targets.shape != (len(logits),) or (count is not None and len(logits) != count) \
            or (classes is not None and logits.shape[1] != classes):
        return None
    pictures = None if pixels is None else [Image.fromarray(picture) for picture in pixels]
    return Scores(logits, targets, paths, wrong, pictures)
