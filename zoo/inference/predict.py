"""`zoo predict`: a trained network's top-k classes for image files, folders and glob patterns.

    report = predict_files("runs/.../checkpoints/best.pt", ["photos/", "extra/*.jpg"], top_k=3)
    report.rows[0]  # (Path('photos/cat/1.jpg'), Prediction(classes=('cat', 'dog', 'fox'), ...))

Any source zoo.load opens. Pictures are decoded in DataLoader workers, each through the source's preprocessing
(zoo.data.preprocess: evaluation's transform), and run in batches. A file that cannot be decoded is one warning
line and has no row; the rest go on.
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from zoo.data.images import image_extensions
from zoo.errors import ZooError
from zoo.inference.load import Prediction, Predictor, load, top_predictions

GLOB_CHARACTERS = frozenset("*?[")
SHOWN = 10  # unreadable files named one line each; one more line counts the rest


@dataclass(frozen=True)
class PredictionReport:
    source: str
    classes: list[str]
    rows: list[tuple[Path, Prediction]]  # in input order
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # unreadable files and why
    others: list[Path] = field(default_factory=list)  # files in the folders that are not images
    task: str = "classification"  # the model's (zoo.tasks): a multi-label one's decisions are label sets

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "task": self.task, "images": len(self.rows),
                "predictions": [{"path": str(path), **prediction.to_dict()} for path, prediction in self.rows],
                "skipped": [{"path": str(path), "reason": reason} for path, reason in self.skipped]}


def gather(inputs: Sequence[str | Path]) -> tuple[list[Path], list[Path]]:
    """(image files, other files) named by `inputs`: files as given, folders walked (recursive, sorted, hidden and
    system entries skipped, files of other extensions set aside), glob patterns expanded (sorted; `**` recursive).
    Each file once, in order. Raises ZooError for a path that does not exist or a pattern that matches nothing."""
    from zoo.data.folders import is_hidden

    extensions = image_extensions()
    found: list[Path] = []
    others: list[Path] = []
    for given in inputs:
        text = str(given)
        if GLOB_CHARACTERS & set(text) and not Path(text).exists():
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise ZooError(f"{text!r} matches no file; check the pattern")
            paths = [Path(match) for match in matches]
        elif Path(text).exists():
            paths = [Path(text)]
        else:
            raise ZooError(f"{text} not found; give image files, folders of them or glob patterns")
        for path in paths:
            if not path.is_dir():
                found.append(path)
                continue
            for directory, folders, files in os.walk(path):
                folders[:] = sorted(name for name in folders if not is_hidden(name))
                for name in sorted(files):
                    if is_hidden(name):
                        continue
                    file = Path(directory, name)
                    (found if name.lower().endswith(extensions) else others).append(file)
    unique = list(dict.fromkeys(found))  # a file named twice (a folder and a pattern inside it) is predicted once
    return unique, others


class Pictures(Dataset):
    """Files through a transform: (index, C x H x W tensor or None, why it could not be read)."""

    def __init__(self, paths: Sequence[Path], transform: Callable) -> None:
        self.paths, self.transform = list(paths), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, Tensor | None, str]:
        from zoo.data.images import open_image

        try:
            return index, self.transform(open_image(self.paths[index])), ""
        except ZooError as error:
            return index, None, str(error)


def _collate(items: list[tuple[int, Tensor | None, str]]) -> tuple[list[int], Tensor | None, list[tuple[int, str]]]:
    read = [(index, tensor) for index, tensor, _ in items if tensor is not None]
    failed = [(index, reason) for index, tensor, reason in items if tensor is None]
    return [index for index, _ in read], torch.stack([tensor for _, tensor in read]) if read else None, failed


TOP_K = 5  # classes per image when top_k is not given (all of them for a model of fewer)


def predict_files(source: str | Path, inputs: Sequence[str | Path], *, top_k: int | None = None, batch_size: int = 64,
                  device: str = "auto", workers: int | None = None, progress: bool = False) -> PredictionReport:
    """The top_k classes (None: TOP_K, or every class of a model with fewer; a top_k above the model's classes
    shows them all, with a note) of every image `inputs` name (files, folders, glob patterns; see `gather`), by the
    network at `source` (see zoo.load) on `device`, `batch_size` pictures at a time, decoded by `workers`
    DataLoader processes (None: up to 4, none for a single batch). Unreadable files are warned about on stderr
    once the rest are predicted (one line a file for the first SHOWN, then one line counting the rest) and listed
    in the report's `skipped`.

    Raises ZooError for a missing path, a pattern matching nothing, no readable image, an unknown source,
    top_k or batch_size below 1.
    """
    if (top_k is not None and top_k < 1) or batch_size < 1:
        raise ZooError(f"--{'top-k' if top_k is not None and top_k < 1 else 'batch-size'} must be 1 or more")
    paths, others = gather(inputs)
    if not paths:
        kinds = f" (only {len(others)} {'file' if len(others) == 1 else 'files'} of other kinds)" if others else ""
        raise ZooError(f"no image files in {', '.join(map(str, inputs))}{kinds}; zoo reads "
                       f"{', '.join(image_extensions())}")
    predictor = load(source, device)
    if predictor.preprocessing is not None:
        predictor.preprocessing.check_pictures()  # xor's network: one line before any file is read
    if top_k is None:
        top_k = min(TOP_K, len(predictor.classes))
    elif top_k > len(predictor.classes):  # every class is shown: said, so that 10 columns for -k 20 are no surprise
        print(f"note: --top-k {top_k} is more than the {len(predictor.classes)} classes {source} predicts; showing all "
              f"{len(predictor.classes)}", file=sys.stderr, flush=True)
    if others:  # once the source is known good: a bad one is the only line
        from zoo.data.images import note_others

        note_others(Path(inputs[0]) if len(inputs) == 1 else Path.cwd(), others)
    rows, skipped = _predict(predictor, paths, top_k, batch_size, workers, progress)
    if not rows:
        raise ZooError(f"none of the {len(paths)} image files could be read ({_why(skipped[0][1])}); replace them")
    for _, reason in skipped[:SHOWN]:  # one line a file, as the README promises
        print(f"warning: {_why(reason)}; skipped", file=sys.stderr, flush=True)
    if len(skipped) > SHOWN:
        print(f"warning: {len(skipped) - SHOWN} more of the {len(paths)} image files could not be read and have no "
              "prediction", file=sys.stderr, flush=True)
    return PredictionReport(predictor.source, predictor.classes, [(paths[i], rows[i]) for i in sorted(rows)], skipped,
                            others, predictor.task.name)


def _predict(predictor: Predictor, paths: list[Path], top_k: int, batch_size: int, workers: int | None,
             progress: bool) -> tuple[dict[int, Prediction], list[tuple[Path, str]]]:
    """({index into paths: its Prediction}, [(unreadable file, why)]): the files decoded by `workers` DataLoader
    processes (None: up to 4, none for a single batch) and run `batch_size` at a time."""
    if workers is None:
        from zoo.data.loaders import file_workers

        workers = 0 if len(paths) <= batch_size else file_workers()
    loader = DataLoader(Pictures(paths, predictor.transform), batch_size, num_workers=workers, collate_fn=_collate)
    rows: dict[int, Prediction] = {}
    skipped: list[tuple[Path, str]] = []
    bar = _progress(len(paths)) if progress else None
    for indices, batch, failed in loader:
        skipped += [(paths[index], reason) for index, reason in failed]
        if batch is not None:
            logits = predictor.logits(batch)
            rows.update(zip(indices, top_predictions(logits, predictor.classes, top_k, predictor.task)))
        if bar is not None:
            bar.update(len(indices) + len(failed))
    if bar is not None:
        bar.close()
    return rows, skipped


OUTPUT_FORMATS = {".csv": "csv", ".json": "json"}  # --output's suffix gives the format when --format is not given


def output_format(format: str | None, output: Path | None) -> str:
    """--format, else the one --output's name says (.csv, .json), else table. Raises ZooError for an --output that
    is a folder, or a --format its name contradicts (a .csv holding JSON)."""
    named = OUTPUT_FORMATS.get(output.suffix.lower()) if output is not None else None
    if output is not None and output.is_dir():
        raise ZooError(f"--output {output} is a folder; give a file name, e.g. {output / 'predictions.csv'}")
    if format is not None and named is not None and format != named:
        raise ZooError(f"--output {output} is named for {named} but --format is {format}; name it *.{format} "
                       f"or give --format {named}")
    return format or named or "table"


def write_output(output: Path, text: str) -> None:
    """`text` into `output`, atomically; an unwritable place is one line."""
    from zoo.rundir import atomic_write

    atomic_write(output, (text + "\n").encode(), fix="give --output a file in a writable folder")


def _why(reason: str) -> str:
    """open_image's message without its advice, which the warning or error gives once."""
    return reason.removesuffix("; remove or replace it")


def _progress(total: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="img", desc="predict", file=sys.stderr, dynamic_ncols=True,
                disable=not sys.stderr.isatty())
