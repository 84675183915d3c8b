"""test_scores.npz in the run directory: the test split's logits on best.pt as the run ended, so that `zoo report`
draws its per-class table and trust figures without the data, without torchvision and without evaluating again.

    write_scores(run_dir, logits, targets, paths, pictures)    rank 0, once, after the test split (zoo train)
    scores = read_scores(run_dir, count, classes)              # None: no file (an older run, or one too large)

The file is numpy's .npz (no pickle): `logits` N x classes float32 and `targets` N int64, the test split's images
in its own order (every rank's share put back in place); `paths` N text, their files, where the data set reads
files; `wrong` M int64 and `pictures` M x H x W x 3 uint8, the most confidently wrong images as the network saw
them (zoo.metrics.trust.confidently_wrong's order), where the data set holds tensors; `split` one text, the test
split's fingerprint (`fingerprint`: which images, in which order, with which labels), by which `zoo compare` proves
two runs answered the same images before it pairs them image by image. A test split of more than
MAX_VALUES logits (ImageNet's 50,000 x 1,000) is not written: its report evaluates best.pt again.

read_scores checks what it reads, once, so that nothing downstream meets a value the run cannot have written:
the scores themselves (finite logits, targets that are classes, the counts metrics.json and the checkpoint give)
or DamagedScores, one line naming the file and what is wrong; the optional parts (the files, the pictures) are
left out with a note each when they do not fit the scores, and the report goes on without them.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from zoo.errors import ZooError
from zoo.rundir import atomic_write

if TYPE_CHECKING:
    from PIL import Image

FILE = "test_scores.npz"
MAX_VALUES = 5_000_000  # logits kept at most: 20 MB of float32 (CIFAR-100's test split: 1,000,000)
MAX_SIDE = 4096  # pixels: a stored picture's largest side (the run stores the network's input: 224 for ImageNet)


class DamagedScores(ZooError):
    """test_scores.npz is there but its scores are not what a run writes: the message names the file and the part."""


@dataclass(frozen=True)
class Scores:
    """A run's test_scores.npz, read (see the module docstring)."""

    logits: np.ndarray
    targets: np.ndarray
    paths: list[str] | None
    wrong: np.ndarray  # indices into the split: the most confidently wrong, the pictures' samples
    pictures: list[Image.Image] | None  # None: the data set reads files (open `paths`), or has no images
    notes: tuple[str, ...] = ()  # the optional parts left out because they do not fit the scores, and why
    split: str | None = None  # the test split's fingerprint (None: a run from before zoo kept it)


def fingerprint(dataset: object, targets: np.ndarray, data: dict[str, object]) -> str | None:
    """The test split's fingerprint: SHA-256 of `data` (the data set's name, its class names and what else decides
    its pictures, as JSON), the split's files in order (`dataset.paths`, an image folder's) or else its indices into
    the data set (`dataset.indices`), and the N `targets`. Equal fingerprints: the same images, in the same order,
    with the same labels. None for a data set that gives neither files nor indices (nothing to prove it by)."""
    paths, indices = getattr(dataset, "paths", None), getattr(dataset, "indices", None)
    if paths is None and indices is None:
        return None
    digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode())
    if paths is not None:
        digest.update("\0".join(paths).encode("utf-8", "surrogatepass"))
    else:
        digest.update(np.asarray(indices, dtype=np.int64).tobytes())
    digest.update(b"targets" + np.asarray(targets, dtype=np.int64).tobytes())
    return digest.hexdigest()


def write_scores(run_dir: Path, logits: np.ndarray, targets: np.ndarray, paths: list[str] | None,
                 wrong: np.ndarray, pictures: list[Image.Image] | None, split: str | None = None) -> Path | None:
    """Write test_scores.npz atomically; returns its path, or None for a split too large to keep (MAX_VALUES).
    `split`: the test split's fingerprint."""
    if logits.size > MAX_VALUES:
        return None
    arrays = {"logits": logits.astype(np.float32), "targets": targets.astype(np.int64), "wrong": wrong.astype(np.int64)}
    if split is not None:
        arrays["split"] = np.array(split)
    if paths is not None:
        arrays["paths"] = np.array(paths, dtype=str)
    if pictures:
        arrays["pictures"] = np.stack([np.asarray(picture.convert("RGB")) for picture in pictures])
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write(run_dir / FILE, buffer.getvalue())
    return run_dir / FILE


def read_scores(run_dir: Path, count: int | None = None, classes: int | None = None,
                temperature: float = 1.0) -> Scores | None:
    """The run's test scores, or None where there is no file. `count` and `classes`: how many samples of how
    many classes it must hold (what metrics.json and the checkpoint say); `temperature`: best.pt's calibration's,
    by whose probabilities the run chose the gallery's images (1: none). Raises DamagedScores for a file that
    does not read as .npz, or whose logits or targets are not N x classes finite numbers and N classes in range;
    paths or pictures that do not fit are left out, each with a note in Scores.notes."""
    from PIL import Image

    path = run_dir / FILE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in ("logits", "targets", "wrong", "paths", "pictures", "split")
                      if name in data}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:  # ValueError: pickled or not an .npz
        raise DamagedScores(f"{path} does not read as numpy's .npz ({error})") from None
    logits, targets = _scores(path, arrays, count, classes)
    notes: list[str] = []
    paths = arrays.get("paths")
    if paths is not None and (paths.dtype.kind != "U" or paths.shape != targets.shape):
        notes.append(f"{path}: its paths are {_shape(paths)}, not {len(targets):,} file names; the images' files "
                     "are left out")
        paths = None
    wrong = most_confidently_wrong(logits / temperature, targets)
    pixels = arrays.get("pictures")
    if pixels is not None:
        problem = _pictures_problem(pixels, arrays.get("wrong"), wrong)
        if problem:
            notes.append(f"{path}: {problem}; the gallery of the most confidently wrong images is left out")
            pixels = None
    pictures = None if pixels is None else [Image.fromarray(picture) for picture in pixels]
    split = arrays.get("split")
    if split is not None and (split.dtype.kind != "U" or split.shape or not re.fullmatch(r"[0-9a-f]{64}", str(split))):
        notes.append(f"{path}: its split is {_shape(split)}, not a SHA-256 fingerprint; it is left out")
        split = None
    return Scores(logits, targets, None if paths is None else paths.tolist(), wrong, pictures, tuple(notes),
                  None if split is None else str(split))


def _scores(path: Path, arrays: dict[str, np.ndarray], count: int | None,
            classes: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The logits (float32) and targets (int64), checked; DamagedScores for anything a run cannot have written."""
    logits, targets = arrays.get("logits"), arrays.get("targets")
    if logits is None or targets is None:
        missing = [name for name in ("logits", "targets") if name not in arrays]
        raise DamagedScores(f"{path} has no {' or '.join(missing)} array; it is not the file a run writes")
    if logits.dtype.kind != "f" or logits.ndim != 2 or not len(logits) or not logits.shape[1]:
        raise DamagedScores(f"{path}: its logits are {_shape(logits)}, not samples x classes numbers")
    if classes is not None and logits.shape[1] != classes:
        raise DamagedScores(f"{path}: its logits have {logits.shape[1]:,} classes, the checkpoint {classes:,}")
    if count is not None and len(logits) != count:
        raise DamagedScores(f"{path}: its logits hold {len(logits):,} images, metrics.json's test split {count:,}")
    if not np.isfinite(logits).all():
        bad = int((~np.isfinite(logits)).any(axis=1).sum())
        raise DamagedScores(f"{path}: the logits of {bad:,} of {len(logits):,} images are not finite (NaN or inf)")
    if targets.dtype.kind not in "iu" or targets.shape != (len(logits),):
        raise DamagedScores(f"{path}: its targets are {_shape(targets)}, not {len(logits):,} class indices")
    outside = (targets < 0) | (targets >= logits.shape[1])
    if outside.any():
        raise DamagedScores(f"{path}: {int(outside.sum()):,} targets are outside the classes 0-{logits.shape[1] - 1} "
                            f"(the first: {int(targets[outside][0])})")
    return logits.astype(np.float32, copy=False), targets.astype(np.int64, copy=False)


def most_confidently_wrong(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The most confidently wrong samples of N x classes `logits` and N `targets` (zoo.metrics.trust's
    confidently_wrong on a float64 softmax): the run's choice when it writes the file, and the check of a file
    read back, from one function so that the two agree."""
    import torch

    from zoo.metrics.trust import confidently_wrong

    return confidently_wrong(torch.from_numpy(logits).double().softmax(dim=1).numpy(), targets)


def _pictures_problem(pixels: np.ndarray, stored: np.ndarray | None, wrong: np.ndarray) -> str:
    """What keeps `pixels` from being the pictures of `wrong` (the run's `stored` choice of them); "" if nothing."""
    if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[3] != 3 or pixels.shape[0] != len(wrong) \
            or not 0 < min(pixels.shape[1:3]) <= max(pixels.shape[1:3]) <= MAX_SIDE:
        return f"its pictures are {_shape(pixels)}, not {len(wrong)} x height x width x 3 uint8"
    if stored is None or stored.shape != wrong.shape or not (stored == wrong).all():
        return "its pictures are not of the most confidently wrong images of its scores"
    return ""


def _shape(array: np.ndarray) -> str:
    """`array`'s shape and type as a message says them: 16 x 8 x 8 x 3 float64, 3 text."""
    kind = "text" if array.dtype.kind in "SU" else str(array.dtype)
    return " x ".join(f"{size:,}" for size in array.shape) + f" {kind}" if array.ndim else f"one {kind}"
